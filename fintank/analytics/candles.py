"""The candle bolt: valid ticks -> final OHLC candles per symbol and interval.

CONTRACT.md `candles`: OHLC of the mid (bid+ask)/2, tumbling windows aligned to
the epoch by event time. A window is emitted once, final, when a tick of the
same symbol falls in a later window, or when the wall clock passes its end
plus a grace period (`on_clock`). A tick whose window starts before the newest
window the symbol has had, or *in* that window once it was emitted by the
clock, is late: it is reported, never put in a candle, so an emitted candle
never changes and no window opens in the past.

State is one small frozen `CandleState` per (symbol, interval); it holds plain
numbers so orjson can store it in a Faust table (`CandleState.from_dict`
rebuilds it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from fintank.analytics.records import Candle
from fintank.records import Tick

# Interval name on the wire -> length in seconds (CONTRACT.md: "1s" | "1m").
INTERVALS: dict[str, int] = {"1s": 1, "1m": 60}


@dataclass(frozen=True, slots=True)
class CandleState:
    """One symbol's candle state for one interval.

    ``newest_start`` is the start of the newest window the symbol has had. While
    ``is_open`` that window is still collecting ticks and the OHLC fields are its
    running values; ``open_ts`` / ``close_ts`` are the timestamps of the ticks
    that gave ``open`` / ``close`` (to pick the smallest / greatest timestamp,
    ties going to the earlier / later arrival). Once the clock has emitted the
    window, ``is_open`` is false and the OHLC fields are stale.
    """

    symbol: str
    interval: str
    newest_start: float
    is_open: bool
    open_ts: float
    close_ts: float
    open: float
    high: float
    low: float
    close: float
    count: int

    @classmethod
    def from_dict(cls, obj: Mapping[str, Any]) -> CandleState:
        """Rebuild a state from its JSON object (as stored by orjson in a table)."""
        return cls(**obj)


def window_start(timestamp: float, interval_s: int) -> float:
    """Start of the epoch-aligned window of ``interval_s`` seconds holding ``timestamp``.

    Exact, with no division to round: ``ts % interval`` is exact in IEEE
    arithmetic (fmod), and ``ts - (ts % interval)`` is a multiple of the interval
    no greater than ``ts``, hence representable and computed exactly. So
    ``start <= ts < start + interval`` holds to the last bit, also for a
    timestamp one ULP below a window boundary.
    """
    return timestamp - timestamp % interval_s


def open_candle(state: CandleState | None) -> Candle | None:
    """The still-open window as a (non-final) candle, or None if no window is open."""
    if state is None or not state.is_open:
        return None
    return _candle(state)


def on_tick(
    state: CandleState | None, tick: Tick, interval_s: int, interval_name: str
) -> tuple[CandleState, list[Candle], bool]:
    """Fold one valid tick into its symbol's state: (new state, candles emitted now, late?)."""
    ts = tick.timestamp
    start = window_start(ts, interval_s)
    mid = (tick.bid + tick.ask) / 2
    if state is None:
        return _opened(tick.symbol, interval_name, start, ts, mid), [], False
    newest = state.newest_start
    if start > newest:
        emitted = [_candle(state)] if state.is_open else []
        return _opened(state.symbol, state.interval, start, ts, mid), emitted, False
    if start < newest or not state.is_open:
        return state, [], True
    return (
        CandleState(
            state.symbol,
            state.interval,
            newest,
            True,
            ts if ts < state.open_ts else state.open_ts,
            ts if ts >= state.close_ts else state.close_ts,
            mid if ts < state.open_ts else state.open,
            mid if mid > state.high else state.high,
            mid if mid < state.low else state.low,
            mid if ts >= state.close_ts else state.close,
            state.count + 1,
        ),
        [],
        False,
    )


def on_ticks(
    state: CandleState | None, ticks: Sequence[Tick], interval_s: int, interval_name: str
) -> tuple[CandleState | None, list[Candle], int]:
    """`on_tick` over many ticks of ONE symbol, in arrival order: (state, candles, late count).

    The hot path: the state is unpacked once and rebuilt once per batch. The
    result is exactly that of calling `on_tick` tick by tick. Returns None as
    state only when given None and no ticks.
    """
    if not ticks:
        return state, [], 0
    candles: list[Candle] = []
    late = 0
    first = 0
    if state is None:
        head = ticks[0]
        symbol, interval = head.symbol, interval_name
        ts = head.timestamp
        newest = ts - ts % interval_s
        mid = (head.bid + head.ask) / 2
        is_open, open_ts, close_ts, o, h, lo, c, n = True, ts, ts, mid, mid, mid, mid, 1
        first = 1
    else:
        symbol, interval, newest, is_open = (
            state.symbol,
            state.interval,
            state.newest_start,
            state.is_open,
        )
        open_ts, close_ts, n = state.open_ts, state.close_ts, state.count
        o, h, lo, c = state.open, state.high, state.low, state.close
    for i in range(first, len(ticks)):
        tick = ticks[i]
        ts = tick.timestamp
        start = ts - ts % interval_s
        if start == newest:
            if not is_open:
                late += 1
                continue
            mid = (tick.bid + tick.ask) / 2
            n += 1
            if mid > h:
                h = mid
            elif mid < lo:
                lo = mid
            if ts < open_ts:
                open_ts, o = ts, mid
            if ts >= close_ts:
                close_ts, c = ts, mid
        elif start > newest:
            if is_open:
                candles.append(Candle(symbol, interval, newest, o, h, lo, c, n))
            mid = (tick.bid + tick.ask) / 2
            newest, is_open = start, True
            open_ts, close_ts, o, h, lo, c, n = ts, ts, mid, mid, mid, mid, 1
        else:
            late += 1
    new_state = CandleState(symbol, interval, newest, is_open, open_ts, close_ts, o, h, lo, c, n)
    return new_state, candles, late


def on_clock(
    state: CandleState, now: float, interval_s: int, grace_s: float
) -> tuple[CandleState, list[Candle]]:
    """Emit the open window once wall-clock ``now`` is at or past its end plus ``grace_s``.

    The window stays the symbol's newest, so later ticks in it are late.
    """
    if state.is_open and now >= state.newest_start + interval_s + grace_s:
        return replace(state, is_open=False), [_candle(state)]
    return state, []


def _opened(symbol: str, interval: str, start: float, ts: float, mid: float) -> CandleState:
    return CandleState(symbol, interval, start, True, ts, ts, mid, mid, mid, mid, 1)


def _candle(state: CandleState) -> Candle:
    return Candle(
        state.symbol,
        state.interval,
        state.newest_start,
        state.open,
        state.high,
        state.low,
        state.close,
        state.count,
    )
