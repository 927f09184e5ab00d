"""``quix-samejob``: a Quix Streams application doing the tick path's job, timed like fintank-v1.

The job, per record of the preloaded ticks topic:

* parse and validate it exactly as fintank does (`fintank.ticks.parse_tick`);
  an invalid tick is counted and skipped (fintank would dead-letter it);
* one ``bid_ask`` InfluxDB point per valid tick (fintank's own line builder);
* OHLC candles of the mid price per symbol in 1 s and 1 m tumbling windows by
  event time (``tumbling_window(...).reduce(candle_add, candle_start).final()``:
  one custom reducer, which measured faster here than ``.agg(open=Earliest(),
  high=Max(), low=Min(), close=Latest(), count=Count())``; windows closed per key
  by a later tick, as fintank closes them), each final candle one ``candles``
  point (fintank's `candle_line`);
* every point through one batching sink (a `BatchingSink` subclass) that POSTs
  line protocol to InfluxDB 1.x ``/write?db=bench&precision=ns`` in chunks of
  5,000 lines, as fintank's `InfluxV1Transport` does. Quix ships
  ``InfluxDB1Sink``, but it needs the ``influxdb`` package (not installed
  here) and converts dicts to points through that client; writing fintank's
  lines over the same HTTP call keeps the two outputs identical.

State: RocksDB in a temporary dir, changelog topics on. ``commit_interval=0.5``
(Quix's default is 5 s), mirroring fintank's 0.5 s commit interval and 0.5 s
flush interval: Quix flushes sinks at each checkpoint.

Timing mirrors fintank-v1 (`bench.variants._watch`): start = this consumer's
partitions assigned, with their (empty) state stores opened and nothing left to
recover (the end of Quix's ``_on_assign``; if a recovery were still pending,
the first record processed instead); fintank's start is the first /health poll
that finds its worker assigned and recovered. assigned = the beginning of
``_on_assign`` (fintank: the first poll listing assigned partitions, which the
engine records as its assignment callback begins). half / end = the sink has had
N/2 / N bid_ask points confirmed by InfluxDB (HTTP 204); fintank's are the
polls whose persister reports written >= N/2 / N. start-up = assignment to
the first confirmed write.
"""

from __future__ import annotations

import argparse
import atexit
import http.client
import shutil
import tempfile
import time
from typing import Any
from urllib.parse import urlencode, urlparse

from bench.variants import CpuMeter, emit, stack_pids

WRITE_CHUNK = 5000  # fintank's FINTANK_BATCH_SIZE default: points per write
COMMIT_INTERVAL = 0.5  # fintank's FINTANK_COMMIT_INTERVAL and FINTANK_FLUSH_INTERVAL defaults


class Marks:
    """perf_counter marks of one run, set by the application and its sink."""

    def __init__(self, count: int, meter: CpuMeter) -> None:
        self.count = count
        self.meter = meter
        self.assigned = 0.0
        self.start = 0.0
        self.first_write = 0.0
        self.half = 0.0
        self.end = 0.0
        self.cpu: dict[str, float] = {}
        self.invalid = 0

    def started(self) -> None:
        if not self.start:
            self.start = time.perf_counter()
            self.meter.start()

    def confirmed(self, bid_ask: int) -> bool:
        """Mark what ``bid_ask`` confirmed points reach; True once all N are confirmed."""
        now = time.perf_counter()
        if not self.first_write:
            self.first_write = now
        if not self.half and bid_ask >= self.count / 2:
            self.half = now
        if not self.end and bid_ask >= self.count:
            self.end = now
            self.cpu = self.meter.stop()
        return bool(self.end)


def _make_sink_class() -> type:
    from quixstreams.sinks import BatchingSink, SinkBatch

    class InfluxLineSink(BatchingSink):
        """Line-protocol strings -> InfluxDB 1.x ``POST /write`` (keep-alive), 5,000 per request."""

        def __init__(self, url: str, database: str, marks: Marks, on_done: Any) -> None:
            super().__init__()
            parsed = urlparse(url)
            self.host = parsed.hostname or "127.0.0.1"
            self.port = parsed.port or 8086
            self.path = "/write?" + urlencode({"db": database, "precision": "ns"})
            self.marks = marks
            self.on_done = on_done
            self.conn: http.client.HTTPConnection | None = None
            self.bid_ask = 0
            self.lines = 0
            self.requests = 0
            self.seconds = 0.0  # spent in POST /write

        def setup(self) -> None:
            self.conn = http.client.HTTPConnection(self.host, self.port, timeout=10)

        def _post(self, body: bytes) -> None:
            for attempt in (1, 2):  # one reconnect: a keep-alive connection may have been closed
                conn = self.conn or http.client.HTTPConnection(self.host, self.port, timeout=10)
                self.conn = conn
                try:
                    conn.request("POST", self.path, body)
                    resp = conn.getresponse()
                    text = resp.read()
                except (OSError, http.client.HTTPException):
                    conn.close()
                    self.conn = None
                    if attempt == 2:
                        raise
                    continue
                if resp.status != 204:
                    raise RuntimeError(f"InfluxDB /write: HTTP {resp.status}: {text[:300]!r}")
                return

        def write(self, batch: SinkBatch) -> None:
            for chunk in batch.iter_chunks(n=WRITE_CHUNK):
                lines = [item.value for item in chunk]
                started = time.perf_counter()
                self._post("\n".join(lines).encode())
                self.seconds += time.perf_counter() - started
                self.requests += 1
                self.lines += len(lines)
                self.bid_ask += sum(1 for line in lines if line.startswith("bid_ask,"))
                if self.marks.confirmed(self.bid_ask):
                    self.on_done()

    return InfluxLineSink


def _make_app_class() -> type:
    from quixstreams import Application

    class TimedApplication(Application):
        """An Application that marks when its partitions are assigned (and nothing to recover)."""

        marks: Marks | None = None

        def _on_assign(self, consumer: Any, topic_partitions: list[Any]) -> None:
            marks = self.marks
            if marks is None or not topic_partitions or marks.assigned:
                super()._on_assign(consumer, topic_partitions)
                return
            marks.assigned = time.perf_counter()  # as fintank's "assigned" in /health
            super()._on_assign(consumer, topic_partitions)
            if not self._state_manager.recovery_required:
                marks.started()  # as fintank's "ready": assigned, stores open, recovered

    return TimedApplication


# A window's accumulator: [open, high, low, close, count, open's timestamp, close's timestamp].
Candle = list[float]


def candle_start(value: dict[str, Any]) -> Candle:
    mid, ts = value["mid"], value["timestamp"]
    return [mid, mid, mid, mid, 1, ts, ts]


def candle_add(acc: Candle, value: dict[str, Any]) -> Candle:
    """fintank's OHLC: open / close = the mids of the smallest / greatest timestamp (ties:
    earlier / later arrival), high / low = max / min mid, count = ticks."""
    mid, ts = value["mid"], value["timestamp"]
    if ts < acc[5]:
        acc[0], acc[5] = mid, ts
    if ts >= acc[6]:
        acc[3], acc[6] = mid, ts
    if mid > acc[1]:
        acc[1] = mid
    if mid < acc[2]:
        acc[2] = mid
    acc[4] += 1
    return acc


def event_ms(timestamp: float) -> int:
    """A tick's event time in whole ms, floored like fintank's window_start (``int(ts * 1000)``
    could round a tick on a window boundary into the window before)."""
    whole = int(timestamp)
    return whole * 1000 + round((timestamp - whole) * 1_000_000) // 1000


def _candle_line(interval: str) -> Any:
    from fintank.analytics.points import candle_line
    from fintank.analytics.records import Candle as FintankCandle

    def line(window: dict[str, Any], key: Any, _ts: int, _headers: Any) -> str:
        o, h, lo, c, n = window["value"][:5]
        return str(
            candle_line(FintankCandle(key, interval, window["start"] / 1000, o, h, lo, c, n))
        )

    return line


def build(app: Any, topic_name: str, sink: Any, marks: Marks) -> None:
    """The dataframe: parse -> bid_ask points, and 1 s / 1 m candles -> candle points."""
    from fintank.records import Tick
    from fintank.sinks.lines import BidAskLines
    from fintank.ticks import parse_tick

    topic = app.topic(topic_name, value_deserializer="bytes", key_deserializer="str")
    sdf = app.dataframe(topic)
    bid_ask = BidAskLines()

    def parse(raw: bytes) -> dict[str, Any] | None:
        if not marks.start:
            marks.started()  # only if a recovery was pending at assignment
        tick = parse_tick(raw)
        if type(tick) is not Tick:
            marks.invalid += 1
            return None
        # Plain values: Quix copies (pickles) a value for each branch of the dataframe.
        return {
            "symbol": tick.symbol,
            "exchange": tick.exchange,
            "bid": tick.bid,
            "ask": tick.ask,
            "timestamp": tick.timestamp,
            "mid": (tick.bid + tick.ask) / 2,
        }

    def bid_ask_line(v: dict[str, Any]) -> str:
        tick = Tick(v["symbol"], v["exchange"], v["bid"], v["ask"], v["timestamp"])
        return bid_ask.lines((tick,))[0]

    ticks = sdf.apply(parse).filter(lambda v: v is not None)
    ticks = ticks.set_timestamp(lambda v, _k, _ts, _h: event_ms(v["timestamp"]))
    ticks.apply(bid_ask_line).sink(sink)
    for interval, ms in (("1s", 1000), ("1m", 60_000)):
        candles = (
            ticks.tumbling_window(duration_ms=ms, name=f"candles-{interval}")
            .reduce(reducer=candle_add, initializer=candle_start)
            .final()
        )
        candles.apply(_candle_line(interval), metadata=True).sink(sink)


def run(args: argparse.Namespace) -> None:
    from fintank.config import Settings
    from fintank.sinks.query import influx_count

    settings = Settings.from_env({})
    where = f"time >= {int(args.t_min * 1e9) - 1000} AND time <= {int(args.t_max * 1e9) + 1000}"
    before_points = influx_count(settings.influx_url, "bench", "bid_ask", "bid", where)
    state = tempfile.mkdtemp(prefix="fintank-bench-quix-samejob-")
    atexit.register(shutil.rmtree, state, True)
    marks = Marks(args.count, CpuMeter({"self": "self", **stack_pids()}))
    app = _make_app_class()(
        broker_address=args.bootstrap,
        consumer_group=args.group,
        auto_offset_reset="earliest",
        state_dir=state,
        loglevel="WARNING",
        use_changelog_topics=True,
        commit_interval=COMMIT_INTERVAL,
    )
    app.marks = marks
    sink = _make_sink_class()(settings.influx_url, "bench", marks, app.stop)
    build(app, args.topic, sink, marks)
    app.run()
    if not marks.end:
        raise SystemExit(f"quix-samejob stopped after {sink.bid_ask} of {args.count} points")
    got = influx_count(settings.influx_url, "bench", "bid_ask", "bid", where)
    if before_points not in (0, args.count):
        points = f"skipped ({before_points} points of another run in the range)"
    else:
        points = "ok" if got == args.count else f"MISMATCH {got} != {args.count}"
    emit(
        args.variant,
        args.count,
        marks.end - marks.start,
        half_seconds=marks.end - marks.half,
        cpu=marks.cpu,
        startup=round(marks.first_write - marks.assigned, 3),
        points=points,
        written=sink.bid_ask,
        lines=sink.lines,
        write_requests=sink.requests,
        write_seconds=round(sink.seconds, 3),
        invalid=marks.invalid,
    )
