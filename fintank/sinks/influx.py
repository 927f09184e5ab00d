"""The InfluxDB persister: add lines, flush by size or time, write with retries.

Shape (after Quix Streams' sinks): `add` is synchronous and cheap, so the
tick agent never awaits I/O per tick; a background `run` loop flushes a
batch when ``batch_size`` lines are waiting or ``flush_interval`` has passed;
`write` retries transient failures with capped exponential backoff, keeping
the batch at the head of the buffer so nothing is lost during an outage. The
buffer is bounded: once it holds ``max_buffer`` lines, `wait_for_room`
blocks the caller (backpressure all the way to Kafka, whose offsets are then
not committed) instead of growing memory or dropping points.

The engine asks "is everything up to here written?" with `mark` (lines
added so far) and `written` (wait until that many are done): a commit of
input offsets waits for the lines those inputs produced.

What a failed write leads to depends on its kind (`fintank.sinks.transports`):

* transient (server down or frozen, 5xx, timeouts) and refused (401, 403,
  404: credentials, permissions, a missing database): the batch stays at the
  head of the buffer and is retried with backoff until the server takes it;
  nothing is acknowledged past it. Each episode is logged once when it
  starts (ERROR for a refusal, saying what to fix) and once when writes
  succeed again; ``problem`` says what is wrong meanwhile (``GET /health``).
* rejected for content (400, 413, 422): the lines the server names, or else
  the halves of the batch written again until each refused line is alone,
  go to ``deadletter`` with the server's reason; every other line is
  written. Lines do not carry the input record they came from, so a dead
  letter holds the line itself, with ``source_topic`` ``influxdb:<measurement>``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from itertools import islice

from fintank.counters import WRITE_BUCKETS, Histogram
from fintank.errors import SinkError
from fintank.records import DeadLetter
from fintank.sinks.lines import measurement_of
from fintank.sinks.transports import RefusedWriteError, TransientWriteError, Transport

log = logging.getLogger(__name__)

#: Sends dead letters and returns once they are delivered (the runtime's: to ``deadletters``).
DeadLetterSink = Callable[[list[DeadLetter]], Awaitable[None]]


@dataclass(slots=True)
class PersisterStats:
    """Counters a benchmark, a test or a health endpoint can read."""

    written: int = 0
    batches: int = 0
    retries: int = 0
    #: points the server refused for their content (dead-lettered, given a deadletters stream)
    rejected: int = 0
    #: seconds per successful write (one per batch, for GET /metrics)
    write_seconds: Histogram = field(default_factory=lambda: Histogram(WRITE_BUCKETS))


class InfluxPersister:
    """Buffers line-protocol lines and writes them through a `Transport` in batches."""

    def __init__(
        self,
        transport: Transport,
        batch_size: int = 5000,
        flush_interval: float = 0.5,
        max_buffer: int = 200_000,
        max_backoff: float = 5.0,
        deadletter: DeadLetterSink | None = None,
    ) -> None:
        if max_buffer < batch_size:
            raise ValueError("max_buffer must be >= batch_size")
        self.transport = transport
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.max_buffer = max_buffer
        self.max_backoff = max_backoff
        #: where points the server refuses for their content go (None: logged and dropped)
        self.deadletter = deadletter
        #: what keeps writes from succeeding now, in words (None while they succeed)
        self.problem: str | None = None
        self._episode: str | None = None  # the kind of failure being retried, logged once
        self._failing_since = 0.0
        self._episode_retries = 0
        self.stats = PersisterStats()
        self._buffer: deque[str] = deque()
        self._added = 0  # lines ever added
        self._done = 0  # lines ever written (or rejected by the server)
        self._progress = asyncio.Condition()
        self._wake = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._write_lock = asyncio.Lock()
        self._closed = False

    def __len__(self) -> int:
        return len(self._buffer)

    def add(self, lines: Iterable[str]) -> None:
        """Queue lines for writing. Never blocks: call `wait_for_room` once per batch after it."""
        if self._closed:
            raise SinkError("persister is closed")
        before = len(self._buffer)
        self._buffer.extend(lines)
        size = len(self._buffer)
        self._added += size - before
        if size >= self.batch_size:
            self._wake.set()
        if size >= self.max_buffer:
            self._room.clear()

    def mark(self) -> int:
        """How many lines were ever added: pass it to `written` later."""
        return self._added

    async def written(self, mark: int) -> None:
        """Return once the first ``mark`` lines ever added are written (or rejected)."""
        if self._done >= mark:
            return
        async with self._progress:
            await self._progress.wait_for(lambda: self._done >= mark)

    async def wait_for_room(self) -> None:
        """Return at once while the buffer has room; otherwise wait until writes drain it."""
        if not self._room.is_set():
            await self._room.wait()

    async def run(self) -> None:
        """Flush forever: whenever a batch is full, or ``flush_interval`` after the last flush."""
        while not self._closed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.flush_interval)
            self._wake.clear()
            await self.flush()

    async def flush(self) -> None:
        """Write everything buffered now, in batches, retrying transient failures until done."""
        async with self._write_lock:
            while self._buffer:
                n = min(self.batch_size, len(self._buffer))
                batch = list(islice(self._buffer, n))  # (deque[i] walks from the nearer end)
                await self._write_all(batch)
                for _ in range(n):
                    self._buffer.popleft()
                self._done += n
                async with self._progress:
                    self._progress.notify_all()
                if len(self._buffer) < self.max_buffer:
                    self._room.set()

    async def _write_all(self, batch: list[str]) -> None:
        """Write ``batch``; dead-letter exactly the lines the server refuses for their content.

        A refusal the server attributes to named lines takes those lines out;
        otherwise the part is halved, and a refused single line is the culprit.
        Rewriting a line that a partial write already stored is harmless: the
        same series and time overwrite the same point.
        """
        parts = [batch]
        while parts:
            part = parts.pop()
            try:
                await self._write_with_retry(part)
            except SinkError as exc:  # not transient: refused for content
                reason = str(getattr(exc, "reason", "") or exc)
                in_part = set(part)
                named = {k: v for k, v in getattr(exc, "named", {}).items() if k in in_part}
                if len(part) == 1 and not named:
                    named = {part[0]: reason}
                if not named:
                    half = len(part) // 2
                    parts += [part[half:], part[:half]]  # the first half is written first
                    continue
                rest = [line for line in part if line not in named]
                self.stats.rejected += len(part) - len(rest)
                await self._reject(named)
                if rest:
                    parts.append(rest)

    async def _write_with_retry(self, batch: list[str]) -> None:
        """Write ``batch`` once it succeeds; retry transient failures and refusals; raise
        `SinkError` if the server refuses the points for their content."""
        delay = 0.05
        while True:
            started = time.perf_counter()
            try:
                await self.transport.write(batch)
            except TransientWriteError as exc:
                self.stats.retries += 1
                self._failed(exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.max_backoff)
                continue
            self.stats.write_seconds.observe(time.perf_counter() - started)
            self.stats.written += len(batch)
            self.stats.batches += 1
            self._succeeded()
            return

    def _failed(self, exc: TransientWriteError) -> None:
        """Log a failure once per episode (again only when its kind changes), and keep it in
        ``problem``: a refusal says what to fix, an outage that the server is not answering."""
        refused = isinstance(exc, RefusedWriteError)
        kind = str(exc) if refused else "unavailable"
        self.problem = str(exc)
        self._episode_retries += 1
        if kind == self._episode:
            return
        if self._episode is None:
            self._failing_since = time.monotonic()
            self._episode_retries = 1
        self._episode = kind
        if refused:
            log.error(
                "%s; %d points kept and retried until the server accepts them "
                "(their input offsets are not committed)",
                exc,
                len(self._buffer),
            )
        else:
            log.warning(
                "%s write failed, retrying with backoff (up to %.1fs): %s; %d points kept "
                "(their input offsets are not committed)",
                self.transport.name,
                self.max_backoff,
                exc,
                len(self._buffer),
            )

    def _succeeded(self) -> None:
        if self._episode is None:
            return
        log.warning(
            "%s writes succeed again after %.1fs of failures (%d retries); %d points waiting",
            self.transport.name,
            time.monotonic() - self._failing_since,
            self._episode_retries,
            len(self._buffer),
        )
        self._episode = self.problem = None

    async def _reject(self, named: dict[str, str]) -> None:
        """Dead-letter lines the server refused, each with its reason; retried until delivered."""
        now = time.time()
        letters = [
            DeadLetter(
                source_topic=f"influxdb:{measurement_of(line)}",
                reason=f"{self.transport.name} refused the point: {reason}",
                payload=line,
                timestamp=now,
            )
            for line, reason in named.items()
        ]
        first = letters[0]
        log.error(
            "%s refused %d point(s) for their content; %s: %s (%s)",
            self.transport.name,
            len(letters),
            "dead-lettered" if self.deadletter else "DROPPED (no deadletters stream)",
            first.reason,
            first.payload[:200],
        )
        if self.deadletter is None:
            return
        delay = 0.05
        while True:
            try:
                await self.deadletter(letters)
                return
            except Exception as exc:  # noqa: BLE001 - delivery is retried, not given up
                log.warning("dead letters of refused points not delivered (%r); retrying", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.max_backoff)

    async def close(self) -> None:
        """Write what is left, then release the transport."""
        self._closed = True
        self._wake.set()
        await self.flush()
        await self.transport.close()
