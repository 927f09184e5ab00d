"""Send records to Kafka at a paced rate with a progress bar (the seeding commands, the demo)."""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TextIO

from fintank.engine import kafka
from fintank.errors import FintankError
from fintank.pacing import NS_PER_MS, NS_PER_S, Alarm, Pacer, Summary, pace

log = logging.getLogger(__name__)
Record = tuple[bytes | None, bytes]

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


class Deliveries:
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


class Sleeper:
    """Sleeps that end within tens of microseconds of the time asked, without blocking the loop.

    asyncio's timers wake on whole milliseconds (epoll waits in ms and Python
    rounds a wait up), so at 1,000 records/s each wake would be up to 1 ms late
    and the lag would walk across the millisecond. The last ``FINE_NS`` of a wait
    are slept in a thread of its own (`time.sleep`, a nanosleep); a longer wait
    first sleeps on the loop until about then (the caller asks again).
    """

    FINE_NS = 2 * NS_PER_MS

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="fintank-pacing")

    async def __call__(self, ns: int) -> None:
        """Sleep about ``ns`` nanoseconds (longer waits: until ``FINE_NS`` before their end)."""
        if ns > self.FINE_NS:
            await asyncio.sleep((ns - self.FINE_NS) / NS_PER_S)
            return
        await asyncio.get_running_loop().run_in_executor(self._pool, time.sleep, ns / NS_PER_S)

    def close(self) -> None:
        self._pool.shutdown(wait=False)


def _reporter(label: str) -> Callable[[Alarm], None]:
    """Logs an overload episode once, CRITICAL, when it opens, and its end as a warning."""

    def report(alarm: Alarm) -> None:
        if alarm.kind == "overload":
            log.critical(
                "overload: %d %s in a row went out late (the last %.1f ms behind its "
                "schedule); sending on",
                alarm.missed,
                label,
                alarm.lag_ns / NS_PER_MS,
            )
        else:
            log.warning(
                "%s back on schedule after %d late in a row (slot %d)",
                label,
                alarm.missed,
                alarm.slot,
            )

    return report


async def send_scheduled(
    connection: kafka.KafkaSettings | str,
    topic: str,
    records: Iterable[Record],
    total: int,
    rate: float = 0,
    label: str = "sending",
    *,
    timeout: float = CONNECT_TIMEOUT,
    duration: float | None = None,
    then: Iterable[Record] = (),
    clock: Callable[[], int] = time.perf_counter_ns,
    sleep: Callable[[int], Awaitable[None]] | None = None,
) -> Summary:
    """Send (key, value) records on a `fintank.pacing.Pacer` schedule; the run's `Summary`.

    ``rate`` > 0: record i is due ``i / rate`` seconds after the first (no drift;
    late ones go at once; an overload episode is logged CRITICAL once); 0: as
    fast as possible. ``duration`` (seconds) ends ``records`` early: at a rate,
    after the slots due within it; at rate 0, when it is over. ``then`` follows
    (the invalid records of a seeding run). ``total`` sizes the progress bar (0:
    none). Each send hands the record to aiokafka's batch and goes on; delivery
    is confirmed by a callback and by the final flush, never awaited per record.

    Raises `FintankError` (one line) if Kafka does not answer within ``timeout``
    seconds, if ``topic`` does not exist, or if a record was not delivered.
    """
    conn = kafka.kafka_settings(connection)  # servers, TLS, SASL; a string: plaintext servers
    bootstrap = conn.bootstrap
    producer = kafka.producer(conn, linger_ms=5)
    progress: Progress | None = None
    deliveries = Deliveries()
    sleeper: Sleeper | None = None
    if sleep is None:
        sleep = sleeper = Sleeper()
    pacer: Pacer | None = None
    try:
        await _start(producer, conn, topic, timeout)
        progress = Progress(total, label)

        async def send(record: Record) -> None:
            future = await producer.send(topic, value=record[1], key=record[0])
            future.add_done_callback(deliveries)

        duration_ns = None if duration is None else round(duration * NS_PER_S)
        pacer = Pacer(rate, clock(), duration_ns=duration_ns)
        await pace(
            pacer,
            records,
            send,
            clock=clock,
            sleep=sleep,
            alarm=_reporter(label),
            progress=progress.update,
            then=then,
        )
        await producer.flush()
    except kafka.KafkaError as exc:
        sent = 0 if progress is None else progress.done
        raise FintankError(
            f"sending to {topic!r} at kafka {bootstrap} failed after {sent} records: {exc}"
        ) from exc
    finally:
        if progress is not None:
            progress.close()
        if sleeper is not None:
            sleeper.close()
        await producer.stop()
    assert pacer is not None  # set before the sends; a failure raised above
    summary = pacer.summary()
    if deliveries.failed:
        raise FintankError(
            f"{deliveries.failed} of {summary.sent} records were not delivered to {topic!r} "
            f"at kafka {bootstrap}: {deliveries.first!r}"
        )
    return summary


async def send_paced(
    connection: kafka.KafkaSettings | str,
    topic: str,
    records: Iterable[Record],
    total: int,
    rate: float = 0,
    label: str = "sending",
    *,
    timeout: float = CONNECT_TIMEOUT,
) -> int:
    """Send (key, value) records; ``rate`` > 0 paces them per second. Returns how many were sent.

    `send_scheduled` without the summary; the same errors.
    """
    summary = await send_scheduled(connection, topic, records, total, rate, label, timeout=timeout)
    return summary.sent


async def _start(
    producer: kafka.AIOKafkaProducer, conn: kafka.KafkaSettings, topic: str, timeout: float
) -> None:
    """Connect ``producer`` and make sure ``topic`` exists; `FintankError` in bounded time if not."""
    try:
        await asyncio.wait_for(producer.start(), timeout)
    except TimeoutError:
        raise FintankError(
            f"kafka at {conn.bootstrap} did not answer within {timeout:g} s"
        ) from None
    except (kafka.KafkaError, OSError):
        raise FintankError(await kafka.unreachable(conn)) from None
    try:
        await asyncio.wait_for(producer.partitions_for(topic), min(timeout, TOPIC_TIMEOUT))
    except (TimeoutError, kafka.KafkaError):
        raise FintankError(
            f"topic {topic!r} does not exist at kafka {conn.bootstrap} "
            "(create fintank's topics: `fintank topics create`)"
        ) from None
