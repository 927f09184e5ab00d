"""Analytics factories, strategies and brute-force reference models.

The reference models restate CONTRACT.md as plainly as possible (keep every
tick, recompute everything) so property tests can hold the streaming bolts
to them.
"""

from __future__ import annotations

import math
import random
from bisect import bisect_right, insort
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st

from fintank import codec
from fintank.analytics.engine import Analytics, AnalyticsConfig, CandleChunk, SymbolState
from fintank.analytics.records import Alert, Candle, Indicator
from fintank.records import Tick
from tests.support.ticks import T0

# A round minute: windows of 1 s and 1 min both start here.
START = T0


def at(mid: float, timestamp: float, symbol: str = "VTI") -> Tick:
    """A tick whose mid is exactly ``mid`` (bid == ask), at event time ``timestamp``."""
    return Tick(symbol, "NYSE", float(mid), float(mid), float(timestamp))


def candle(
    start: float = START,
    open: float = 100.0,
    high: float | None = None,
    low: float | None = None,
    close: float | None = None,
    count: int = 1,
    symbol: str = "VTI",
    interval: str = "1m",
) -> Candle:
    """A candle with sensible defaults: high/low/close follow open unless given."""
    close = open if close is None else close
    high = max(open, close) if high is None else high
    low = min(open, close) if low is None else low
    return Candle(symbol, interval, float(start), open, high, low, close, count)


def indicator(
    rsi: float | None,
    close: float = 100.0,
    start: float = START,
    symbol: str = "VTI",
    interval: str = "1m",
) -> Indicator:
    """An indicator record carrying the RSI a test cares about."""
    return Indicator(symbol, interval, float(start), close, None, None, rsi)


def random_walk(n: int, seed: int = 7, start: float = 100.0, step: float = 0.01) -> list[float]:
    """``n`` closes of a multiplicative random walk (deterministic for a seed)."""
    rng = random.Random(seed)
    closes = [start]
    for _ in range(n - 1):
        closes.append(closes[-1] * (1.0 + rng.uniform(-step, step)))
    return closes


# --- strategies --------------------------------------------------------------

closes = st.floats(min_value=1.0, max_value=1000.0, allow_nan=False, allow_infinity=False)
close_series = st.lists(
    st.one_of(closes, st.sampled_from([10.0, 10.5, 11.0])), min_size=0, max_size=80
)


@st.composite
def walk_series(draw: st.DrawFn, max_size: int = 120) -> list[float]:
    """Close series that move like prices, with flat stretches and repeated values."""
    n = draw(st.integers(min_value=0, max_value=max_size))
    price = draw(closes)
    out: list[float] = []
    moves = st.one_of(
        st.just(0.0),
        st.floats(min_value=-0.05, max_value=0.05, allow_nan=False),
    )
    for _ in range(n):
        out.append(price)
        price = max(1.0, min(1000.0, price * (1.0 + draw(moves))))
    return out


def _offsets(max_offset: float) -> st.SearchStrategy[float]:
    """Event-time offsets from START: a coarse grid (ties, exact window bounds) and any float."""
    grid = st.integers(min_value=0, max_value=int(max_offset * 2)).map(lambda k: k / 2)
    anywhere = st.floats(min_value=0.0, max_value=max_offset, allow_nan=False)
    # One ULP below a whole second: the last instant of a window.
    below = st.integers(min_value=1, max_value=int(max_offset)).map(
        lambda k: math.nextafter(START + k, 0.0) - START
    )
    return st.one_of(grid, grid, anywhere, below)


mids = st.one_of(
    st.sampled_from([95.0, 99.5, 100.0, 100.5, 104.0, 105.0, 110.0]),
    st.floats(min_value=90.0, max_value=115.0, allow_nan=False),
)


@st.composite
def tick_streams(
    draw: st.DrawFn, max_offset: float = 200.0, max_size: int = 60, symbol: str = "VTI"
) -> list[Tick]:
    """Ticks of one symbol in arrival order, timestamps in any order (ties, bounds, jitter)."""
    offsets = draw(st.lists(_offsets(max_offset), max_size=max_size))
    return [at(draw(mids), START + off, symbol) for off in offsets]


@dataclass(frozen=True)
class Clock:
    """A wall-clock reading fed to the candle bolt between ticks."""

    now: float


@st.composite
def candle_events(draw: st.DrawFn, max_offset: float = 200.0) -> list[Tick | Clock]:
    """Ticks of one symbol interleaved with wall-clock readings (clock time never goes back)."""
    ticks = draw(tick_streams(max_offset=max_offset))
    events: list[Tick | Clock] = []
    now = START
    for t in ticks:
        if draw(st.integers(0, 3)) == 0:
            now += draw(st.sampled_from([0.0, 0.5, 1.0, 2.0, 3.0, 30.0, 61.0, 62.0]))
            events.append(Clock(now))
        events.append(t)
    return events


# --- reference models ----------------------------------------------------------


def reference_candles(
    events: Iterable[Tick | Clock], interval_s: int, interval: str, grace_s: float
) -> tuple[list[Candle], list[Tick], Candle | None]:
    """CONTRACT.md `candles` by brute force: (candles emitted in order, late ticks, open one)."""
    emitted: list[Candle] = []
    late: list[Tick] = []
    windows: dict[float, list[tuple[int, Tick]]] = {}  # start -> (arrival, tick)
    done: set[float] = set()
    newest: float | None = None
    for arrival, event in enumerate(events):
        if isinstance(event, Clock):
            due = newest is not None and event.now >= newest + interval_s + grace_s
            if newest is not None and due and newest not in done:
                emitted.append(_ohlc(newest, windows[newest], interval))
                done.add(newest)
            continue
        k = math.floor(event.timestamp / interval_s)
        while k * interval_s > event.timestamp:
            k -= 1
        while (k + 1) * interval_s <= event.timestamp:
            k += 1
        start = float(k * interval_s)
        if newest is not None and (start < newest or start in done):
            late.append(event)
            continue
        if newest is not None and start > newest and newest not in done:
            emitted.append(_ohlc(newest, windows[newest], interval))
            done.add(newest)
        newest = start
        windows.setdefault(start, []).append((arrival, event))
    still_open = None
    if newest is not None and newest not in done:
        still_open = _ohlc(newest, windows[newest], interval)
    return emitted, late, still_open


def _ohlc(start: float, members: list[tuple[int, Tick]], interval: str) -> Candle:
    ticks = [tick for _, tick in members]
    first = min(members, key=lambda m: (m[1].timestamp, m[0]))[1]
    last = max(members, key=lambda m: (m[1].timestamp, m[0]))[1]
    return Candle(
        first.symbol,
        interval,
        start,
        first.mid,
        max(t.mid for t in ticks),
        min(t.mid for t in ticks),
        last.mid,
        len(ticks),
    )


def reference_alerts(
    ticks: Sequence[Tick],
    window_s: float,
    threshold: float,
    max_lateness_s: float,
) -> list[Alert]:
    """CONTRACT.md `alerts` by brute force over every tick seen, one symbol.

    Plus fintank's one retention rule: a tick more than ``max_lateness_s``
    behind the newest timestamp does not alert (``math.inf``: the bare contract).
    """
    seen: list[tuple[float, float]] = []  # every tick, sorted by timestamp
    newest = 0.0
    last: dict[str, float] = {}
    out: list[Alert] = []
    for tick in ticks:
        t, m = tick.timestamp, tick.mid
        insort(seen, (t, m))
        newest = max(newest, t)
        if t < newest - max_lateness_s:
            continue
        lo = bisect_right(seen, t - window_s, key=_first)
        hi = bisect_right(seen, t, key=_first)
        window = [mid for ts, mid in seen[lo:hi]]
        assert all(t - window_s < ts <= t for ts, _ in seen[lo:hi])
        low, high = min(window), max(window)
        for direction, ratio, ref in (
            ("UP", (m - low) / low, low),
            ("DOWN", (high - m) / high, high),
        ):
            if ratio >= threshold and (direction not in last or t >= last[direction] + window_s):
                out.append(Alert(tick.symbol, direction, ratio * 100.0, window_s, ref, m, t))
                last[direction] = t
    return out


def _first(pair: tuple[float, float]) -> float:
    return pair[0]


class MemoryCandles:
    """A `fintank.analytics.http.CandleSource` over plain dicts keyed by (symbol, interval)."""

    def __init__(
        self,
        symbols: set[str],
        emitted: dict[tuple[str, str], list[Candle]] | None = None,
        open_candles: dict[tuple[str, str], Candle] | None = None,
    ) -> None:
        self.symbols = symbols
        self._emitted = emitted or {}
        self._open = open_candles or {}

    def known(self, symbol: str) -> bool:
        return symbol in self.symbols

    def emitted(self, symbol: str, interval: str, minutes: int) -> list[Candle]:
        return self._emitted.get((symbol, interval), [])

    def open_candle(self, symbol: str, interval: str) -> Candle | None:
        return self._open.get((symbol, interval))


# --- the analytics engine over changelogged storage -----------------------------

Record = tuple[int, str, bytes | None]  # (partition, key, value bytes or None: a tombstone)


class ChangelogTable:
    """A state table in memory with the changelog it writes, in write order.

    It behaves like the engine's `fintank.engine.store.PartitionStore` (a write
    is staged; `publish` serialises every staged key's value as it is now and
    appends it, or a tombstone), across several partitions at once, so that
    `restored` can rebuild the table the way the engine restores it from its
    changelog. Nothing of Kafka is modelled.
    """

    def __init__(
        self,
        from_json: Any,
        kind: type,
        data: dict[str, Any] | None = None,
        changelog: list[Record] | None = None,
    ) -> None:
        self.from_json = from_json
        self.kind = kind
        self.data: dict[str, Any] = {} if data is None else data
        self.changelog: list[Record] = [] if changelog is None else changelog
        self.staged: dict[str, int] = {}

    def get(self, key: str) -> Any:
        value = self.data.get(key)
        if value is None or type(value) is self.kind:
            return value
        record = self.from_json(value)
        self.data[key] = record
        return record

    def all_keys(self) -> list[str]:
        return list(self.data)

    def stage(self, partition: int, key: str, value: Any) -> None:
        self.data[key] = value
        self.staged[key] = partition

    def stage_delete(self, partition: int, key: str) -> None:
        self.data.pop(key, None)
        self.staged[key] = partition

    def publish(self) -> None:
        """Append every staged key (its value now, or a tombstone) to the changelog."""
        staged, self.staged = self.staged, {}
        for key, partition in staged.items():
            value = self.data.get(key)
            self.changelog.append((partition, key, None if value is None else codec.dumps(value)))

    def tombstones(self) -> list[str]:
        """Keys deleted in the changelog, in order."""
        return [key for _, key, raw in self.changelog if raw is None]

    def restored(self) -> ChangelogTable:
        """A new table recovered from this changelog: the last value per key, as JSON.

        A key whose last record is a tombstone is absent. The changelog itself
        (a topic: it outlives the worker) carries over, so later writes append to it.
        """
        data: dict[str, Any] = {}
        for _, key, raw in self.changelog:
            if raw is None:
                data.pop(key, None)
            else:
                data[key] = codec.loads(raw)
        return ChangelogTable(self.from_json, self.kind, data, list(self.changelog))


@dataclass
class AnalyticsWorker:
    """The real `Analytics` over `ChangelogTable` storage: one worker."""

    states: ChangelogTable
    history: ChangelogTable
    engine: Analytics
    config: AnalyticsConfig = field(default_factory=AnalyticsConfig)

    @classmethod
    def start(
        cls,
        config: AnalyticsConfig | None = None,
        states: ChangelogTable | None = None,
        history: ChangelogTable | None = None,
    ) -> AnalyticsWorker:
        """A worker whose tables hold ``states`` / ``history`` (empty by default)."""
        config = AnalyticsConfig() if config is None else config
        states = ChangelogTable(SymbolState.from_dict, SymbolState) if states is None else states
        history = ChangelogTable(CandleChunk.from_dict, CandleChunk) if history is None else history
        return cls(states, history, Analytics(states, history, config), config)

    @property
    def state_log(self) -> ChangelogTable:
        return self.states

    @property
    def history_log(self) -> ChangelogTable:
        return self.history

    def publish(self) -> None:
        """What the engine does at a commit point, once outputs were delivered."""
        self.history.publish()
        self.states.publish()

    def restarted(self) -> AnalyticsWorker:
        """A new worker recovered from the changelogs: unpublished changes and memory are gone."""
        return AnalyticsWorker.start(
            self.config, self.state_log.restored(), self.history_log.restored()
        )


def offsets_from(first: int, ticks: Sequence[Tick]) -> list[int]:
    """Consecutive partition offsets for ``ticks``, starting at ``first``."""
    return list(range(first, first + len(ticks)))


_forward = st.sampled_from([0.0, 0.25, 0.5, 0.75, 1.0, 2.5, 30.0, 59.5, 61.0])
_backward = st.sampled_from([-0.25, -1.0, -2.0, -45.0, -90.0])


@st.composite
def market_ticks(draw: st.DrawFn, max_size: int = 40) -> list[Tick]:
    """Ticks of 1 to 3 symbols in arrival (offset) order.

    Event time mostly moves forward, in steps that stay in, cross or skip 1 s
    and 1 min windows; now and then a tick arrives behind the newest (out of
    order, often late for one interval or both).
    """
    names = draw(
        st.lists(st.sampled_from(["VTI", "IVE", "IWS"]), min_size=1, max_size=3, unique=True)
    )
    now = START
    out: list[Tick] = []
    for _ in range(draw(st.integers(min_value=0, max_value=max_size))):
        step = draw(st.one_of(_forward, _forward, _forward, _backward))
        if step >= 0:
            now += step
        out.append(at(draw(mids), now + min(step, 0.0), draw(st.sampled_from(names))))
    return out
