"""`fintank replay`: a recorded file -> ``ticks``, paced, with progress, dead letters and a summary.

The edge of the replay: it reads the file (plain or gzip, told by its magic
bytes), reads the clocks, sleeps and sends; `fintank.replay.formats` and
`fintank.replay.pacing` decide everything else. Ticks go to ``ticks`` keyed
by symbol; a line that cannot be converted goes, raw, to ``deadletters``
with ``source_topic`` ``replay:<file name>`` (it came from that file, not
from a topic; the line number leads the reason), and the replay goes on.
"""

from __future__ import annotations

import asyncio
import gzip
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from io import BufferedReader
from pathlib import Path
from typing import Any, Protocol, TextIO

from fintank.codec import dumps, payload_text
from fintank.engine import kafka
from fintank.errors import FintankError
from fintank.producer import Deliveries, Progress
from fintank.replay.formats import Bad, Skip, Ticks, convert, encode
from fintank.replay.pacing import Retimer, Schedule
from fintank.ticks import parse_tick

GZIP_MAGIC = b"\x1f\x8b"
SHOWN_ERRORS = 20  # bad lines reported one by one on stderr; the rest are only counted
SOURCE_PREFIX = "replay:"
# What reading a file can raise: a missing or unreadable file, a truncated or corrupt gzip stream.
_READ_ERRORS = (OSError, EOFError, zlib.error)


class ReplayError(FintankError):
    """The replay cannot go on (unreadable file, Kafka); the message is one line."""


# ----------------------------------------------------------------------- the file


def _is_gzip(path: Path) -> bool:
    with path.open("rb") as f:
        return f.read(2) == GZIP_MAGIC


def open_recording(path: Path) -> gzip.GzipFile | BufferedReader:
    """The file's bytes, decompressed when it starts with gzip's magic bytes (whatever its name)."""
    if _is_gzip(path):
        return gzip.open(path, "rb")
    return path.open("rb")


def count_lines(path: Path) -> int:
    """How many lines the file has (a last line without a newline counts)."""
    n, last = 0, b"\n"
    try:
        with open_recording(path) as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                n += chunk.count(b"\n")
                last = chunk[-1:]
    except _READ_ERRORS as exc:
        raise ReplayError(f"cannot read {path}: {exc}") from None
    return n + (last != b"\n")


def read_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """(line number from 1, the line without its line ending)."""
    try:
        with open_recording(path) as f:
            for number, raw in enumerate(f, 1):
                if raw.endswith(b"\n"):
                    raw = raw[:-1]
                if raw.endswith(b"\r"):
                    raw = raw[:-1]
                yield number, raw
    except _READ_ERRORS as exc:
        raise ReplayError(f"cannot read {path}: {exc}") from None


# ---------------------------------------------------------------------- the sinks


class Sink(Protocol):
    """Where converted ticks and dead letters go."""

    async def tick(self, key: bytes, value: bytes) -> None: ...

    async def deadletter(self, key: bytes, value: bytes) -> bool:
        """Send a dead letter; False if this sink drops them (a dry run)."""
        ...


class PrintSink:
    """``--dry-run``: each tick's JSON on its own line; dead letters only reported."""

    def __init__(self, out: TextIO) -> None:
        self.out = out

    async def tick(self, key: bytes, value: bytes) -> None:
        self.out.write(value.decode("utf-8") + "\n")

    async def deadletter(self, key: bytes, value: bytes) -> bool:
        return False


class KafkaSink:
    """Sends to the ticks and dead-letter topics with fintank's producer (acks=all, idempotent)."""

    def __init__(
        self, connection: kafka.KafkaSettings | str, ticks: str, deadletters: str, timeout: float
    ) -> None:
        # Servers, TLS and SASL (`KafkaSettings.from_settings`); a string: plaintext servers.
        self.connection = kafka.kafka_settings(connection)
        self.bootstrap, self.ticks, self.deadletters = self.connection.bootstrap, ticks, deadletters
        self.timeout = timeout
        self.producer = kafka.producer(self.connection, linger_ms=5)
        self.deliveries = Deliveries()
        self.sent = 0

    async def start(self) -> None:
        """Connect and check both topics exist; `ReplayError` within about ``timeout`` if not."""
        try:
            await asyncio.wait_for(self.producer.start(), self.timeout)
        except TimeoutError:
            raise ReplayError(
                f"kafka at {self.bootstrap} did not answer within {self.timeout:g} s"
            ) from None
        except (kafka.KafkaError, OSError):
            raise ReplayError(await kafka.unreachable(self.connection)) from None
        for topic in (self.ticks, self.deadletters):
            try:
                await asyncio.wait_for(self.producer.partitions_for(topic), min(self.timeout, 3.0))
            except (TimeoutError, kafka.KafkaError):
                raise ReplayError(
                    f"topic {topic!r} does not exist at kafka {self.bootstrap} "
                    "(create fintank's topics: `fintank topics create`)"
                ) from None

    async def _send(self, topic: str, key: bytes, value: bytes) -> None:
        try:
            future = await self.producer.send(topic, value=value, key=key)
        except kafka.KafkaError as exc:
            raise ReplayError(
                f"sending to {topic!r} at kafka {self.bootstrap} failed after "
                f"{self.sent} records: {exc}"
            ) from None
        future.add_done_callback(self.deliveries)
        self.sent += 1

    async def tick(self, key: bytes, value: bytes) -> None:
        await self._send(self.ticks, key, value)

    async def deadletter(self, key: bytes, value: bytes) -> bool:
        await self._send(self.deadletters, key, value)
        return True

    async def close(self, flush: bool = True) -> None:
        """Wait until every record is delivered (``flush``), stop; `ReplayError` if any was not."""
        try:
            if flush:
                await self.producer.flush()
        finally:
            await self.producer.stop()
        if self.deliveries.failed:
            raise ReplayError(
                f"{self.deliveries.failed} of {self.sent} records were not delivered "
                f"at kafka {self.bootstrap}: {self.deliveries.first!r}"
            )


# --------------------------------------------------------------------- the replay


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


@dataclass
class Summary:
    """What a replay did; `lines` is the report printed at the end."""

    file: str
    format: str
    speed: float
    lines_read: int = 0
    ticks: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    errors: int = 0
    deadlettered: int = 0
    clock_stamped: int = 0  # ticks whose line had no recorded time: stamped with the replay clock
    first: float | None = None  # earliest and latest recorded time of a sent line
    last: float | None = None
    wall: float = 0.0
    shifted_from: tuple[float, float] | None = None  # --shift-to-now: (recorded, wall) anchor

    def sent(self, result: Ticks) -> None:
        """Count a converted line's ticks as sent."""
        self.ticks += len(result.ticks)
        recorded = result.recorded
        if recorded is None:
            self.clock_stamped += len(result.ticks)
            return
        self.first = recorded if self.first is None else min(self.first, recorded)
        self.last = recorded if self.last is None else max(self.last, recorded)

    def lines(self, ticks_topic: str | None, deadletters_topic: str | None) -> list[str]:
        where = f"to {ticks_topic!r}" if ticks_topic else "(dry run: nothing sent)"
        kinds = ", ".join(f"{what}: {n}" for what, n in sorted(self.skipped.items()))
        skipped = f"{sum(self.skipped.values())}" + (f" ({kinds})" if kinds else "")
        letters = f"{self.deadlettered} dead-lettered" + (
            f" to {deadletters_topic!r}" if deadletters_topic else ""
        )
        if self.first is None or self.last is None:
            span = "none (no line had a recorded time)"
        else:
            span = f"{self.last - self.first:.3f} s ({_iso(self.first)} to {_iso(self.last)})"
        speed = "as fast as possible" if self.speed == 0 else f"speed {self.speed:g}"
        out = [
            f"replay of {self.file} ({self.format}) {where}",
            f"  lines read      {self.lines_read}",
            f"  ticks sent      {self.ticks}" if ticks_topic else f"  ticks           {self.ticks}",
            f"  skipped         {skipped}",
            f"  errors          {self.errors} ({letters})",
            f"  recorded span   {span}",
            f"  wall time       {self.wall:.3f} s ({speed})",
        ]
        if self.shifted_from is not None:
            recorded, wall = self.shifted_from
            out.append(f"  shifted to now  recorded {_iso(recorded)} carried as {_iso(wall)}")
        if self.clock_stamped:
            out.append(
                f"  replay clock    {self.clock_stamped} ticks had no recorded time "
                "and carry the wall clock of their sending"
            )
        return out


class _Errors:
    """Reports bad lines on stderr: the first `SHOWN_ERRORS` one by one, then only a count."""

    def __init__(self, err: TextIO, progress: Progress) -> None:
        self.err, self.progress = err, progress
        self.count = 0

    def report(self, number: int, reason: str) -> None:
        self.count += 1
        if self.count > SHOWN_ERRORS:
            return
        clear = "\r\x1b[K" if self.progress.tty and self.progress.draws else ""
        self.err.write(f"{clear}replay: line {number}: {reason}\n")
        self.err.flush()

    def close(self) -> None:
        if self.count > SHOWN_ERRORS:
            self.err.write(f"replay: {self.count - SHOWN_ERRORS} more bad lines not shown\n")
            self.err.flush()


def _retimed(result: Ticks, retimer: Retimer, wall: float) -> Ticks | Bad:
    """``result`` with its ticks' times shifted to the replay's wall clock (checked again)."""
    if result.recorded is None:
        return result  # stamped with the replay clock already
    retimer.start(result.recorded, wall)
    ticks = []
    for tick in result.ticks:
        checked = parse_tick(encode(replace(tick, timestamp=retimer.shift(tick.timestamp))))
        if isinstance(checked, str):
            return Bad(f"shifted to now: {checked}")
        ticks.append(checked)
    return Ticks(tuple(ticks), result.recorded)


async def replay(
    lines: Iterator[tuple[int, bytes]],
    fmt: str,
    sink: Sink,
    *,
    source: str,
    speed: float,
    symbols: Mapping[str, str],
    total: int,
    err: TextIO,
    summary: Summary,
    shift_to_now: bool = False,
    clock: Callable[[], float] = time.monotonic,
    wall: Callable[[], float] = time.time,
    sleep: Callable[[float], Any] = asyncio.sleep,
) -> Summary:
    """Convert and send every line, paced; fill and return ``summary``.

    ``source``: the dead letters' ``source_topic`` (and key). ``clock`` is
    monotonic (pacing), ``wall`` the epoch clock (dead letters' time, ticks
    without a recorded time, and with ``shift_to_now`` every tick's: see
    `Retimer`).
    """
    schedule = Schedule(speed)
    retimer = Retimer(speed) if shift_to_now else None
    progress = Progress(total, "replay", err)
    errors = _Errors(err, progress)
    started = clock()
    try:
        for number, line in lines:
            summary.lines_read += 1
            result = convert(fmt, line, wall(), symbols)
            if type(result) is Ticks:
                delay = schedule.wait(result.recorded, clock())
                if retimer is not None:
                    result = _retimed(result, retimer, wall())
                    summary.shifted_from = retimer.anchor
            if type(result) is Ticks:
                if delay > 0:
                    await sleep(delay)
                for tick in result.ticks:
                    await sink.tick(tick.symbol.encode("utf-8"), encode(tick))
                summary.sent(result)
            elif type(result) is Skip:
                summary.skipped[result.what] += 1
            else:
                assert type(result) is Bad
                summary.errors += 1
                errors.report(number, result.reason)
                letter = {
                    "source_topic": source,
                    "reason": f"line {number}: {result.reason}",
                    "payload": payload_text(line),
                    "timestamp": wall(),
                }
                if await sink.deadletter(source.encode("utf-8"), dumps(letter)):
                    summary.deadlettered += 1
            progress.update(summary.lines_read)
    finally:
        summary.wall = clock() - started
        progress.close()
        errors.close()
    return summary


async def replay_file(
    path: Path,
    fmt: str,
    *,
    speed: float,
    symbols: Mapping[str, str],
    err: TextIO,
    sink: Sink,
    total: int | None = None,
    shift_to_now: bool = False,
) -> Summary:
    """`replay` over the lines of ``path`` (``total``: its line count, for the progress bar)."""
    return await replay(
        read_lines(path),
        fmt,
        sink,
        source=SOURCE_PREFIX + path.name,
        speed=speed,
        symbols=symbols,
        total=count_lines(path) if total is None else total,
        err=err,
        summary=Summary(path.name, fmt, speed),
        shift_to_now=shift_to_now,
    )


async def replay_to_kafka(
    path: Path,
    fmt: str,
    *,
    bootstrap: kafka.KafkaSettings | str,
    ticks_topic: str,
    deadletters_topic: str,
    speed: float,
    symbols: Mapping[str, str],
    err: TextIO,
    timeout: float,
    shift_to_now: bool = False,
) -> Summary:
    """Replay ``path`` into Kafka: ticks keyed by symbol, bad lines to the dead-letter topic.

    ``bootstrap``: `KafkaSettings.from_settings` (servers, TLS, SASL), or plaintext servers.
    """
    total = count_lines(path)  # an unreadable file fails before Kafka is asked anything
    sink = KafkaSink(bootstrap, ticks_topic, deadletters_topic, timeout)
    try:
        await sink.start()
    except BaseException:
        await sink.producer.stop()
        raise
    done = False
    try:
        summary = await replay_file(
            path,
            fmt,
            speed=speed,
            symbols=symbols,
            err=err,
            sink=sink,
            total=total,
            shift_to_now=shift_to_now,
        )
        done = True
    finally:
        await sink.close(flush=done)
    return summary
