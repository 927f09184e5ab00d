"""The analytics engine: the candle, indicator, signal and alert bolts over one batch of ticks.

Like `fintank.trading.engine.RuleEngine` it holds no I/O: the topology hands
it two tables and sends what it returns.

- ``states`` (symbol -> `SymbolState`): per interval the open candle, the
  indicator state and the previous RSI; the alert cooldowns; the partition
  and the offset of the newest tick folded in.
- ``history`` (``symbol|interval|chunk`` -> `CandleChunk`): the emitted candles
  `GET /candles` answers from, in chunks of 60 windows (a minute of 1s
  candles, an hour of 1m candles), so a batch rewrites one small chunk, not a
  symbol's whole history. Chunks older than the longest query
  (`fintank.analytics.http.MAX_MINUTES`) are deleted (changelog tombstones).

Changes are *staged*; the topology publishes them after the batch's outputs
were delivered, so a crash can repeat an output (at least once) but never
lose one. Redelivered ticks (offset at or below the symbol's ``offset``) are
not counted again: each valid tick is in exactly one candle per interval.

The alert bolt's window of recent ticks (`AlertState`) is kept in memory
only: writing minutes of ticks to a changelog on every batch would cost more
than all the rest. Its cooldowns and newest timestamp are durable, and after
a restart the window refills from the redelivered and new ticks, so an alert
is never repeated within its cooldown; one whose move straddles the restart
can be missed.
"""

from __future__ import annotations

import logging
from bisect import bisect_right
from collections.abc import Container, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from fintank.analytics import alerts as alert_bolt
from fintank.analytics import candles as candle_bolt
from fintank.analytics.candles import INTERVALS, CandleState
from fintank.analytics.http import MAX_MINUTES
from fintank.analytics.indicators import IndicatorState, Periods, indicator_for
from fintank.analytics.records import Alert, Candle, Indicator, Signal
from fintank.analytics.signals import next_rsi, on_indicator
from fintank.config import Settings
from fintank.records import Tick

log = logging.getLogger(__name__)

CHUNK_WINDOWS = 60  # candles per history chunk

V = TypeVar("V")


class Table(Protocol[V]):
    """Where the engine keeps state (a `fintank.state.StateTable`)."""

    def get(self, key: str) -> V | None: ...

    def stage(self, partition: int, key: str, value: V) -> None: ...

    def stage_delete(self, partition: int, key: str) -> None: ...

    def all_keys(self) -> list[str]: ...


@dataclass(frozen=True, slots=True)
class AnalyticsConfig:
    """Periods and thresholds (CONTRACT.md defaults)."""

    periods: Periods = Periods()
    grace_s: float = 2.0
    rsi_low: float = 30.0
    rsi_high: float = 70.0
    alert_window_s: float = 300.0
    alert_threshold: float = 0.05

    @classmethod
    def from_settings(cls, settings: Settings) -> AnalyticsConfig:
        return cls(
            Periods(settings.sma_period, settings.ema_period, settings.rsi_period),
            settings.candle_grace,
            settings.rsi_low,
            settings.rsi_high,
            settings.alert_window,
            settings.alert_threshold_pct / 100.0,
        )


@dataclass(slots=True)
class SymbolState:
    """Everything durable analytics keeps for one symbol (mutable, one table value).

    ``offset``: offset (in the ticks partition ``partition``) of the newest tick
    folded in. ``emitted``: per interval, the start of the newest emitted
    candle. ``history_from``: per interval, the oldest history chunk that may
    still exist. ``newest`` / ``last_up`` / ``last_down``: the alert bolt's
    newest timestamp and cooldowns.
    """

    symbol: str
    partition: int
    offset: int = -1
    candles: dict[str, CandleState] = field(default_factory=dict)
    indicators: dict[str, IndicatorState] = field(default_factory=dict)
    rsi: dict[str, float | None] = field(default_factory=dict)
    emitted: dict[str, float] = field(default_factory=dict)
    history_from: dict[str, int] = field(default_factory=dict)
    newest: float = 0.0
    last_up: float | None = None
    last_down: float | None = None

    @classmethod
    def from_dict(cls, obj: Mapping[str, Any]) -> SymbolState:
        """Rebuild a state from its JSON object (as restored from the changelog)."""
        return cls(
            **{
                **obj,
                "candles": {k: CandleState.from_dict(v) for k, v in obj["candles"].items()},
                "indicators": {
                    k: IndicatorState.from_dict(v) for k, v in obj["indicators"].items()
                },
            }
        )


@dataclass(slots=True)
class CandleChunk:
    """Emitted candles of one symbol, interval and chunk of `CHUNK_WINDOWS` windows, oldest first."""

    candles: list[Candle] = field(default_factory=list)

    @classmethod
    def from_dict(cls, obj: Mapping[str, Any]) -> CandleChunk:
        return cls([Candle(**c) for c in obj["candles"]])


@dataclass(slots=True)
class Outputs:
    """What analytics emits for a batch (or a clock tick), in order."""

    candles: list[Candle] = field(default_factory=list)
    indicators: list[Indicator] = field(default_factory=list)
    signals: list[Signal] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)
    late: int = 0


def chunk_key(symbol: str, interval: str, chunk: int) -> str:
    return f"{symbol}|{interval}|{chunk}"


def chunk_of(start: float, interval: str) -> int:
    """The history chunk holding the candle that starts at ``start``."""
    return int(start // (INTERVALS[interval] * CHUNK_WINDOWS))


class Analytics:
    """Bolt: ticks (and the wall clock) -> candles, indicators, signals, alerts."""

    outputs = ("candles", "indicators", "signals", "alerts")

    def __init__(
        self,
        states: Table[SymbolState],
        history: Table[CandleChunk],
        config: AnalyticsConfig = AnalyticsConfig(),
    ) -> None:
        self.states = states
        self.history = history
        self.config = config
        # symbol -> (the state's offset the window is in sync with, the window)
        self._windows: dict[str, tuple[int, alert_bolt.AlertState]] = {}
        self.late_ticks = 0

    # ------------------------------------------------------------ ticks
    def on_ticks(self, partition: int, ticks: Sequence[Tick], offsets: Sequence[int]) -> Outputs:
        """Fold valid ticks of one partition batch (arrival order, with their offsets) in."""
        groups: dict[str, tuple[list[Tick], list[int]]] = {}
        for tick, offset in zip(ticks, offsets, strict=True):
            group = groups.get(tick.symbol)
            if group is None:
                groups[tick.symbol] = ([tick], [offset])
            else:
                group[0].append(tick)
                group[1].append(offset)
        out = Outputs()
        for symbol, (symbol_ticks, symbol_offsets) in groups.items():
            state = self.states.get(symbol) or SymbolState(symbol, partition)
            self._fold(state, symbol_ticks, symbol_offsets, out)
            self.states.stage(partition, symbol, state)
        return out

    def _fold(self, state: SymbolState, ticks: list[Tick], offs: list[int], out: Outputs) -> None:
        fresh = bisect_right(offs, state.offset)  # ticks before it were folded in already
        window = self._window(state)
        cfg = self.config
        for tick in ticks[:fresh]:
            alert_bolt.on_tick(
                window, tick, cfg.alert_window_s, cfg.alert_threshold, evaluate=False
            )
        self._windows[state.symbol] = (state.offset, window)  # keep a refill even with no new tick
        new = ticks[fresh:]
        if not new:
            return
        for name, seconds in INTERVALS.items():
            candle_state, closed, late = candle_bolt.on_ticks(
                state.candles.get(name), new, seconds, name
            )
            assert candle_state is not None
            state.candles[name] = candle_state
            for candle in closed:
                self._closed(state, candle, out)
            if late:
                out.late += late
                self.late_ticks += late
                log.warning(
                    "%d late tick(s) for %s in %s candles (window before %s): persisted, in no candle",
                    late,
                    state.symbol,
                    name,
                    candle_state.newest_start,
                )
        _, alerts = alert_bolt.on_ticks(window, new, cfg.alert_window_s, cfg.alert_threshold)
        out.alerts += alerts
        state.newest, state.last_up, state.last_down = (
            window.newest,
            window.last_up,
            window.last_down,
        )
        state.offset = offs[-1]
        self._windows[state.symbol] = (state.offset, window)

    def _window(self, state: SymbolState) -> alert_bolt.AlertState:
        """The symbol's alert window, or a fresh one if it is not in sync with ``state``."""
        synced = self._windows.get(state.symbol)
        if synced is not None and synced[0] == state.offset:
            return synced[1]
        return alert_bolt.AlertState(state.newest, state.last_up, state.last_down)

    # ------------------------------------------------------------ clock
    def on_clock(self, now: float, partitions: Container[int]) -> Outputs:
        """Close every open window of the given partitions whose end + grace is past ``now``."""
        out = Outputs()
        for symbol in self.states.all_keys():
            state = self.states.get(symbol)
            if state is None or state.partition not in partitions:
                continue
            changed = False
            for name, candle_state in state.candles.items():
                new, closed = candle_bolt.on_clock(
                    candle_state, now, INTERVALS[name], self.config.grace_s
                )
                if closed:
                    state.candles[name] = new
                    changed = True
                    for candle in closed:
                        self._closed(state, candle, out)
            if changed:
                self.states.stage(state.partition, symbol, state)
        return out

    # ------------------------------------------------------------ closed candles
    def _closed(self, state: SymbolState, candle: Candle, out: Outputs) -> None:
        """A final candle: its indicator, maybe a signal, and its place in the history."""
        name = candle.interval
        cfg = self.config
        out.candles.append(candle)
        ind_state, indicator = indicator_for(candle, state.indicators.get(name), cfg.periods)
        state.indicators[name] = ind_state
        out.indicators.append(indicator)
        prev = state.rsi.get(name)
        signal = on_indicator(prev, indicator, cfg.rsi_low, cfg.rsi_high)
        if signal is not None:
            out.signals.append(signal)
        state.rsi[name] = next_rsi(prev, indicator)
        previous = state.emitted.get(name)
        state.emitted[name] = candle.start
        self._remember(state, candle, previous)

    def _remember(self, state: SymbolState, candle: Candle, previous: float | None) -> None:
        """Add ``candle`` to the history; forget chunks no query can reach any more.

        ``previous``: start of the symbol's newest candle before this one. The
        topology writes the history changelog before the state's, so after a
        crash between the two a re-closed candle may already be here: kept once.
        """
        name, symbol, partition = candle.interval, state.symbol, state.partition
        chunk = chunk_of(candle.start, name)
        key = chunk_key(symbol, name, chunk)
        stored = self.history.get(key) or CandleChunk()
        if not stored.candles or stored.candles[-1].start < candle.start:
            stored.candles.append(candle)
            self.history.stage(partition, key, stored)
        # Chunks that may exist: history_from .. the previous candle's. Those
        # before the one holding newest end - MAX_MINUTES go (a time gap is skipped).
        keep_from = chunk_of(candle.start + INTERVALS[name] - MAX_MINUTES * 60, name)
        oldest = state.history_from.get(name, chunk)
        last = chunk_of(previous, name) if previous is not None else oldest - 1
        for old in range(oldest, min(keep_from, last + 1)):
            if self.history.get(chunk_key(symbol, name, old)) is not None:
                self.history.stage_delete(partition, chunk_key(symbol, name, old))
        state.history_from[name] = max(oldest, keep_from)

    # ------------------------------------------------------------ HTTP (a CandleSource)
    def known(self, symbol: str) -> bool:
        """Whether ``symbol`` had a valid tick (on this worker's partitions)."""
        return self.states.get(symbol) is not None

    def emitted(self, symbol: str, interval: str, minutes: int) -> list[Candle]:
        """The symbol's emitted candles of ``interval`` whose start is within ``minutes``
        before the end of the newest one (CONTRACT.md `GET /candles`), oldest first."""
        state = self.states.get(symbol)
        if state is None or interval not in state.emitted:
            return []
        newest = state.emitted[interval]
        cut = newest + INTERVALS[interval] - minutes * 60
        found: list[Candle] = []
        for chunk in range(chunk_of(max(cut, 0.0), interval), chunk_of(newest, interval) + 1):
            stored = self.history.get(chunk_key(symbol, interval, chunk))
            if stored is not None:
                found += (c for c in stored.candles if c.start >= cut)
        return found

    def open_candle(self, symbol: str, interval: str) -> Candle | None:
        """The symbol's still-open candle of ``interval``, if any."""
        state = self.states.get(symbol)
        if state is None:
            return None
        return candle_bolt.open_candle(state.candles.get(interval))
