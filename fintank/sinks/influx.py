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
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import islice

from fintank.errors import SinkError
from fintank.sinks.transports import TransientWriteError, Transport

log = logging.getLogger(__name__)


@dataclass(slots=True)
class PersisterStats:
    """Counters a benchmark, a test or a health endpoint can read."""

    written: int = 0
    batches: int = 0
    retries: int = 0
    rejected: int = 0


class InfluxPersister:
    """Buffers line-protocol lines and writes them through a `Transport` in batches."""

    def __init__(
        self,
        transport: Transport,
        batch_size: int = 5000,
        flush_interval: float = 0.5,
        max_buffer: int = 200_000,
        max_backoff: float = 5.0,
    ) -> None:
        if max_buffer < batch_size:
            raise ValueError("max_buffer must be >= batch_size")
        self.transport = transport
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.max_buffer = max_buffer
        self.max_backoff = max_backoff
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
                await self._write_with_retry(batch)
                for _ in range(n):
                    self._buffer.popleft()
                self._done += n
                async with self._progress:
                    self._progress.notify_all()
                if len(self._buffer) < self.max_buffer:
                    self._room.set()

    async def _write_with_retry(self, batch: list[str]) -> None:
        delay = 0.05
        while True:
            try:
                await self.transport.write(batch)
            except TransientWriteError as exc:
                self.stats.retries += 1
                log.warning(
                    "%s write failed, retrying in %.2fs: %s", self.transport.name, delay, exc
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.max_backoff)
                continue
            except SinkError as exc:
                # The server refused the data itself (a bug in a line builder, or a
                # field-type conflict from someone else's writes). Retrying cannot
                # help; log loudly and count, rather than wedging the whole stream.
                self.stats.rejected += len(batch)
                log.error("%s rejected %d points: %s", self.transport.name, len(batch), exc)
                return
            self.stats.written += len(batch)
            self.stats.batches += 1
            return

    async def close(self) -> None:
        """Write what is left, then release the transport."""
        self._closed = True
        self._wake.set()
        await self.flush()
        await self.transport.close()
