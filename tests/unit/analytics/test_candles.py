"""The candle bolt, one rule of CONTRACT.md `candles` per test."""

from __future__ import annotations

import math

import orjson

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
from tests.support.analytics import START, at
from tests.support.ticks import tick

MINUTE = 60


def opened(ticks: list[Tick]) -> CandleState:
    state, _, _ = feed(ticks)
    assert state is not None
    return state


def feed(
    ticks: list[Tick], interval_s: int = MINUTE, name: str = "1m"
) -> tuple[CandleState | None, list[Candle], list[bool]]:
    state: CandleState | None = None
    emitted: list[Candle] = []
    lates: list[bool] = []
    for t in ticks:
        state, out, late = on_tick(state, t, interval_s, name)
        emitted.extend(out)
        lates.append(late)
    return state, emitted, lates


def test_first_tick_opens_a_window_and_emits_nothing() -> None:
    state, emitted, late = on_tick(None, at(100.0, START + 5), MINUTE, "1m")

    assert emitted == []
    assert late is False
    assert open_candle(state) == Candle("VTI", "1m", START, 100.0, 100.0, 100.0, 100.0, 1)


def test_prices_are_mids_of_bid_and_ask() -> None:
    state, _, _ = on_tick(None, tick(bid=109.71, ask=109.74, timestamp=START), MINUTE, "1m")

    assert open_candle(state) == Candle("VTI", "1m", START, 109.725, 109.725, 109.725, 109.725, 1)


def test_windows_are_aligned_to_the_epoch() -> None:
    assert window_start(START + 59.999, 60) == START
    assert window_start(START + 60.0, 60) == START + 60
    assert window_start(START + 0.5, 1) == START


def test_window_start_is_exact_one_ulp_below_a_boundary() -> None:
    ts = math.nextafter(START + 60, 0.0)

    assert window_start(ts, 60) == START
    assert window_start(ts, 1) == START + 59


def test_open_and_close_follow_event_time_not_arrival() -> None:
    ticks = [
        at(101.0, START + 30),
        at(100.0, START + 10),
        at(103.0, START + 50),
        at(99.0, START + 40),
    ]

    state, _, _ = feed(ticks)

    assert open_candle(state) == Candle("VTI", "1m", START, 100.0, 103.0, 99.0, 103.0, 4)


def test_equal_timestamps_open_with_the_earlier_and_close_with_the_later_arrival() -> None:
    ticks = [at(100.0, START + 10), at(101.0, START + 10), at(102.0, START + 10)]

    state, _, _ = feed(ticks)

    candle = open_candle(state)
    assert candle is not None
    assert (candle.open, candle.close) == (100.0, 102.0)


def test_a_tick_in_a_later_window_emits_the_open_candle_final() -> None:
    ticks = [at(100.0, START + 1), at(102.0, START + 2), at(101.0, START + 60)]

    state, emitted, lates = feed(ticks)

    assert emitted == [Candle("VTI", "1m", START, 100.0, 102.0, 100.0, 102.0, 2)]
    assert lates == [False, False, False]
    assert open_candle(state) == Candle("VTI", "1m", START + 60, 101.0, 101.0, 101.0, 101.0, 1)


def test_a_window_without_ticks_produces_no_candle() -> None:
    ticks = [at(100.0, START + 1), at(101.0, START + 185)]

    _, emitted, _ = feed(ticks)

    assert [c.start for c in emitted] == [START]


def test_a_tick_before_the_newest_window_is_late_and_changes_nothing() -> None:
    state, _, _ = feed([at(100.0, START + 1), at(101.0, START + 61)])

    new_state, emitted, late = on_tick(state, at(500.0, START + 59), MINUTE, "1m")

    assert late is True
    assert emitted == []
    assert new_state == state


def test_a_tick_in_a_window_the_clock_already_emitted_is_late() -> None:
    state = opened([at(100.0, START + 1)])
    state, emitted = on_clock(state, START + 62, MINUTE, 2.0)
    assert len(emitted) == 1

    new_state, emitted, late = on_tick(state, at(101.0, START + 30), MINUTE, "1m")

    assert late is True
    assert emitted == []
    assert new_state == state


def test_the_clock_waits_for_window_end_plus_grace() -> None:
    state = opened([at(100.0, START + 1)])

    _, before = on_clock(state, START + 61.999, MINUTE, 2.0)
    closed, at_grace = on_clock(state, START + 62.0, MINUTE, 2.0)

    assert before == []
    assert at_grace == [Candle("VTI", "1m", START, 100.0, 100.0, 100.0, 100.0, 1)]
    assert open_candle(closed) is None


def test_the_clock_emits_a_window_only_once() -> None:
    state = opened([at(100.0, START + 1)])
    state, _ = on_clock(state, START + 70, MINUTE, 2.0)

    _, again = on_clock(state, START + 80, MINUTE, 2.0)

    assert again == []


def test_after_the_clock_a_later_tick_opens_a_window_without_re_emitting() -> None:
    state = opened([at(100.0, START + 1)])
    state, _ = on_clock(state, START + 70, MINUTE, 2.0)

    state, emitted, late = on_tick(state, at(101.0, START + 75), MINUTE, "1m")

    assert (emitted, late) == ([], False)
    assert open_candle(state) == Candle("VTI", "1m", START + 60, 101.0, 101.0, 101.0, 101.0, 1)


def test_one_second_candles_use_one_second_windows() -> None:
    ticks = [at(100.0, START + 0.2), at(101.0, START + 0.9), at(102.0, START + 1.0)]

    _, emitted, _ = feed(ticks, interval_s=1, name="1s")

    assert emitted == [Candle("VTI", "1s", START, 100.0, 101.0, 100.0, 101.0, 2)]


def test_the_batch_entry_point_matches_tick_by_tick() -> None:
    ticks = [at(100.0, START + 1), at(99.0, START + 61), at(98.0, START + 2), at(97.0, START + 130)]
    expected_state, expected, lates = feed(ticks)

    state, emitted, late_count = on_ticks(None, ticks, MINUTE, "1m")

    assert (state, emitted, late_count) == (expected_state, expected, sum(lates))


def test_the_batch_entry_point_with_no_ticks_keeps_the_state() -> None:
    assert on_ticks(None, [], MINUTE, "1m") == (None, [], 0)


def test_state_round_trips_through_json() -> None:
    state, _, _ = feed([at(100.0, START + 1), at(100.1, START + 2)])
    assert state is not None

    restored = CandleState.from_dict(orjson.loads(orjson.dumps(state)))

    assert restored == state
