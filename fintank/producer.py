"""Send records to Kafka at a paced rate with a progress bar (the seeding commands, the demo)."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any, TextIO

from fintank.engine import kafka
from fintank.errors import FintankError

# How long seeding waits for Kafka to answer (bootstrap) before giving up, and
# for the target topic to show up in the cluster's metadata (auto-creation is off).
CONNECT_TIMEOUT = 10.0
TOPIC_TIMEOUT = 3.0


class Progress:
    """A one-line progress bar on a terminal, plain lines at every 10% elsewhere.

    ``update`` is meant to be called once per record, so it costs one integer
    comparison on most calls. On a terminal the clock is read every ``stride``
    records, the stride adapted to the measured rate (about four readings per
    ``interval``; it at most doubles per reading and stays <= ``MAX_STRIDE``, so
    a rate that drops is noticed soon), and the bar is redrawn when ``interval``
    seconds have passed since the last draw, and at the end.
    Elsewhere a line is written each time another tenth of ``total`` is done.
    """

    MAX_STRIDE = 256

    def __init__(
        self,
        total: int,
        label: str,
        out: TextIO | None = None,
        *,
        interval: float = 0.2,
        clock: Callable[[], float] = time.monotonic,
        tty: bool | None = None,
    ) -> None:
        self.total, self.label = total, label
        self.out: TextIO = sys.stderr if out is None else out
        self.tty = self.out.isatty() if tty is None else tty
        self.interval = interval
        self.clock = clock
        self.started = clock()
        self.done = 0
        self.draws = 0  # how many times the bar was drawn or a line written
        self._shown = 0  # the count last drawn or written
        self._stride = 1
        self._seen = (0, self.started)  # (count, time) of the last clock reading
        self._draw_at = self.started
        # The count at which update() next does any work.
        self._check_at = 1 if self.tty else self._next_tenth(0)

    def update(self, done: int) -> None:
        """``done`` records of ``total`` are through: redraw if it is time."""
        self.done = done
        if done < self._check_at or self.total <= 0:
            return
        if not self.tty:
            self._line(done)
            self._check_at = self._next_tenth(done)
            return
        now = self.clock()
        seen_done, seen_at = self._seen
        if now > seen_at and done > seen_done:
            per_s = (done - seen_done) / (now - seen_at)
            wanted = int(per_s * self.interval / 4)
            self._stride = max(1, min(wanted, 2 * self._stride, self.MAX_STRIDE))
        self._seen = (done, now)
        self._check_at = done + self._stride
        if now >= self._draw_at or done >= self.total:
            self._draw(done, now)
            self._draw_at = now + self.interval

    def close(self) -> None:
        """Show the final count (if not shown yet) and end the bar's line."""
        if self.total <= 0:
            return
        if self.tty:
            if self.done != self._shown:
                self._draw(self.done, self.clock())
            if self.draws:
                self.out.write("\n")
                self.out.flush()
        elif self.done != self._shown:
            self._line(self.done)

    def _next_tenth(self, done: int) -> int:
        """The smallest count past ``done`` that completes another tenth of ``total``."""
        if self.total <= 0:
            return sys.maxsize
        tenth = done * 10 // self.total + 1
        return max(done + 1, -(-self.total * tenth // 10))

    def _line(self, done: int) -> None:
        self.out.write(f"{self.label}: {done}/{self.total}\n")
        self.out.flush()
        self._shown, self.draws = done, self.draws + 1

    def _draw(self, done: int, now: float) -> None:
        bar = "#" * int(min(done / self.total, 1.0) * 30)
        rate = done / max(now - self.started, 1e-9)
        # \x1b[K clears what a longer previous line left on the right.
        self.out.write(f"\r{self.label} [{bar:<30}] {done}/{self.total} {rate:,.0f}/s\x1b[K")
        self.out.flush()
        self._shown, self.draws = done, self.draws + 1


class _Deliveries:
    """Counts records Kafka did not accept (a done-callback per send; it retrieves the error)."""

    def __init__(self) -> None:
        self.failed = 0
        self.first: BaseException | None = None

    def __call__(self, future: asyncio.Future[Any]) -> None:
        if future.cancelled():
            self.failed += 1
            return
        exc = future.exception()
        if exc is not None:
            self.failed += 1
            self.first = self.first or exc


async def send_paced(
    bootstrap: str,
    topic: str,
    records: Iterable[tuple[bytes | None, bytes]],
    total: int,
    rate: float = 0,
    label: str = "sending",
    *,
    timeout: float = CONNECT_TIMEOUT,
) -> int:
    """Send (key, value) records; ``rate`` > 0 paces them per second. Returns how many were sent.

    Raises `FintankError` (one line) if Kafka does not answer within ``timeout``
    seconds, if ``topic`` does not exist, or if a record was not delivered.
    """
    producer = kafka.producer(kafka.KafkaSettings(bootstrap, ""), linger_ms=5)
    progress: Progress | None = None
    deliveries = _Deliveries()
    sent = 0
    try:
        await _start(producer, bootstrap, topic, timeout)
        progress = Progress(total, label)
        update = progress.update
        started = time.monotonic()
        for key, value in records:
            future = await producer.send(topic, value=value, key=key)
            future.add_done_callback(deliveries)
            sent += 1
            if rate > 0:
                ahead = sent / rate - (time.monotonic() - started)
                if ahead > 0:
                    await asyncio.sleep(ahead)
            update(sent)
        await producer.flush()
    except kafka.KafkaError as exc:
        raise FintankError(
            f"sending to {topic!r} at kafka {bootstrap} failed after {sent} records: {exc}"
        ) from exc
    finally:
        if progress is not None:
            progress.close()
        await producer.stop()
    if deliveries.failed:
        raise FintankError(
            f"{deliveries.failed} of {sent} records were not delivered to {topic!r} "
            f"at kafka {bootstrap}: {deliveries.first!r}"
        )
    return sent


async def _start(
    producer: kafka.AIOKafkaProducer, bootstrap: str, topic: str, timeout: float
) -> None:
    """Connect ``producer`` and make sure ``topic`` exists; `FintankError` in bounded time if not."""
    try:
        await asyncio.wait_for(producer.start(), timeout)
    except TimeoutError:
        raise FintankError(f"kafka at {bootstrap} did not answer within {timeout:g} s") from None
    except (kafka.KafkaError, OSError):
        raise FintankError(
            f"cannot reach kafka at {bootstrap} (is it running? see `fintank status`)"
        ) from None
    try:
        await asyncio.wait_for(producer.partitions_for(topic), min(timeout, TOPIC_TIMEOUT))
    except (TimeoutError, kafka.KafkaError):
        raise FintankError(
            f"topic {topic!r} does not exist at kafka {bootstrap} "
            "(create fintank's topics: `fintank topics create`)"
        ) from None
