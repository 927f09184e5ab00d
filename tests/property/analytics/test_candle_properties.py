"""Invariants of the candle bolt over random tick streams (out of order, ties, bounds)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from fintank.analytics.candles import (
    CandleState,
    on_clock,
    on_tick,
    on_ticks,
    open_candle,
    window_start,
)
from fintank.analytics.records import Candle
from fintank.records import Tick
from tests.support.analytics import Clock, candle_events, reference_candles, tick_streams

INTERVALS = st.sampled_from([(1, "1s"), (60, "1m")])
GRACE = 2.0


def run(
    events: list[Tick | Clock], interval_s: int, name: str
) -> tuple[list[Candle], list[Tick], Candle | None]:
    """Feed the bolt: (candles emitted, late ticks, the open candle)."""
    emitted, late, still_open = run_indexed(events, interval_s, name)
    late_ticks = [e for i, e in enumerate(events) if i in late and isinstance(e, Tick)]
    return emitted, late_ticks, still_open


def on_time_ticks(events: list[Tick | Clock], late: list[int]) -> list[Tick]:
    return [e for i, e in enumerate(events) if isinstance(e, Tick) and i not in late]


def run_indexed(
    events: list[Tick | Clock], interval_s: int, name: str
) -> tuple[list[Candle], list[int], Candle | None]:
    """Feed the bolt: (candles emitted, positions of the late ticks, the open candle)."""
    state: CandleState | None = None
    emitted: list[Candle] = []
    late: list[int] = []
    for i, event in enumerate(events):
        if isinstance(event, Clock):
            if state is not None:
                state, out = on_clock(state, event.now, interval_s, GRACE)
                emitted.extend(out)
            continue
        state, out, is_late = on_tick(state, event, interval_s, name)
        emitted.extend(out)
        if is_late:
            late.append(i)
    return emitted, late, open_candle(state)


@given(candle_events(), INTERVALS)
def test_candles_match_the_brute_force_model(
    events: list[Tick | Clock], interval: tuple[int, str]
) -> None:
    assert run(events, *interval) == reference_candles(events, *interval, GRACE)


@given(candle_events(), INTERVALS)
def test_every_on_time_tick_is_in_exactly_one_candle(
    events: list[Tick | Clock], interval: tuple[int, str]
) -> None:
    interval_s, name = interval
    emitted, late, still_open = run_indexed(events, interval_s, name)
    candles = emitted + ([still_open] if still_open else [])
    on_time = on_time_ticks(events, late)

    assert sum(c.count for c in candles) == len(on_time)
    for c in candles:
        members = [t for t in on_time if window_start(t.timestamp, interval_s) == c.start]
        assert c.count == len(members)


@given(candle_events(), INTERVALS)
def test_ohlc_are_ordered_and_open_close_are_the_earliest_and_latest_mids(
    events: list[Tick | Clock], interval: tuple[int, str]
) -> None:
    interval_s, name = interval
    emitted, late, still_open = run_indexed(events, interval_s, name)
    on_time = on_time_ticks(events, late)

    for c in emitted + ([still_open] if still_open else []):
        assert c.high >= max(c.open, c.close) >= min(c.open, c.close) >= c.low
        members = [t for t in on_time if window_start(t.timestamp, interval_s) == c.start]
        earliest = min(t.timestamp for t in members)
        latest = max(t.timestamp for t in members)
        assert c.open in [t.mid for t in members if t.timestamp == earliest]
        assert c.close in [t.mid for t in members if t.timestamp == latest]
        assert (c.high, c.low) == (max(t.mid for t in members), min(t.mid for t in members))


@given(candle_events(), INTERVALS)
def test_candles_are_emitted_once_in_increasing_start_order(
    events: list[Tick | Clock], interval: tuple[int, str]
) -> None:
    emitted, _, still_open = run(events, *interval)

    starts = [c.start for c in emitted] + ([still_open.start] if still_open else [])
    assert starts == sorted(set(starts))


@given(tick_streams(), INTERVALS, st.lists(st.integers(1, 10), max_size=10))
def test_batches_give_what_tick_by_tick_gives(
    ticks: list[Tick], interval: tuple[int, str], cuts: list[int]
) -> None:
    expected_state: CandleState | None = None
    expected: list[Candle] = []
    expected_late = 0
    for t in ticks:
        expected_state, out, late = on_tick(expected_state, t, *interval)
        expected.extend(out)
        expected_late += late

    state: CandleState | None = None
    emitted: list[Candle] = []
    late_count = 0
    rest = list(ticks)
    for size in [*cuts, len(rest)]:
        batch, rest = rest[:size], rest[size:]
        state, out, n = on_ticks(state, batch, *interval)
        emitted.extend(out)
        late_count += n

    assert (state, emitted, late_count) == (expected_state, expected, expected_late)


@given(
    st.floats(min_value=1e-6, max_value=4e9, allow_nan=False),
    st.sampled_from([1, 60]),
)
def test_window_start_holds_its_timestamp(ts: float, interval_s: int) -> None:
    start = window_start(ts, interval_s)

    assert start <= ts < start + interval_s
    assert start % interval_s == 0
