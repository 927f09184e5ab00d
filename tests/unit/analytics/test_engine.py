"""The analytics engine over real `StateTable`s whose storage keeps a changelog.

Each test drives `Analytics` as the topology does: a batch of ticks with their
offsets, then `publish` once the outputs were delivered. A "restart" is a new
engine over tables recovered from the changelogs (`AnalyticsWorker.restarted`),
so unpublished changes and in-memory state are lost as in a real crash.
"""

from __future__ import annotations

import orjson
import pytest

from fintank.analytics import candles as candle_bolt
from fintank.analytics.engine import (
    AnalyticsConfig,
    CandleChunk,
    Outputs,
    SymbolState,
    chunk_key,
    chunk_of,
)
from fintank.analytics.indicators import Periods, indicator_for
from fintank.analytics.records import Candle, Indicator, Signal
from fintank.analytics.signals import next_rsi, on_indicator
from fintank.config import Settings
from fintank.records import Tick
from tests.support.analytics import START, AnalyticsWorker, at, offsets_from, random_walk

DAY = 1440 * 60


def feed(worker: AnalyticsWorker, ticks: list[Tick], first: int = 0, partition: int = 0) -> Outputs:
    """One batch of ``ticks`` at consecutive offsets from ``first``."""
    return worker.engine.on_ticks(partition, ticks, offsets_from(first, ticks))


# Two batches: seconds 0-3 of the first minute, then seconds 1-3 of the next.
FIRST = [at(100.0 + i % 3, START + 0.4 * i) for i in range(10)]
SECOND = [at(101.0 - 0.25 * i, START + 61 + 0.5 * i) for i in range(6)]


# --- candles and indicators ----------------------------------------------------


def test_ticks_across_two_one_second_windows_emit_the_first_one_second_candle() -> None:
    worker = AnalyticsWorker.start()
    ticks = [at(100.0, START + 0.2), at(101.0, START + 0.7), at(99.5, START + 1.1)]

    out = feed(worker, ticks)

    _, expected, _ = candle_bolt.on_ticks(None, ticks, 1, "1s")
    assert out.candles == expected == [Candle("VTI", "1s", START, 100.0, 101.0, 100.0, 101.0, 2)]
    assert out.indicators == [Indicator("VTI", "1s", START, 101.0, None, None, None)]
    assert (out.signals, out.alerts, out.late) == ([], [], 0)
    assert worker.engine.emitted("VTI", "1s", 1) == expected
    assert worker.engine.open_candle("VTI", "1s") == Candle(
        "VTI", "1s", START + 1, 99.5, 99.5, 99.5, 99.5, 1
    )
    # The minute is still open: nothing emitted for 1m, the open one holds all three ticks.
    assert worker.engine.emitted("VTI", "1m", 30) == []
    assert worker.engine.open_candle("VTI", "1m") == Candle(
        "VTI", "1m", START, 100.0, 101.0, 99.5, 99.5, 3
    )


def test_each_closed_candle_gets_its_indicator_and_the_signal_bolts_answer() -> None:
    periods = Periods(sma=3, ema=3, rsi=2)
    worker = AnalyticsWorker.start(AnalyticsConfig(periods=periods, alert_threshold=1.0))
    closes = random_walk(40, seed=3, step=0.02)
    ticks = [at(c, START + 60 * i) for i, c in enumerate(closes)]

    out = feed(worker, ticks)

    minutes = [c for c in out.candles if c.interval == "1m"]
    expected_indicators: list[Indicator] = []
    expected_signals: list[Signal] = []
    state, prev = None, None
    for candle in minutes:
        state, ind = indicator_for(candle, state, periods)
        expected_indicators.append(ind)
        signal = on_indicator(prev, ind)
        if signal is not None:
            expected_signals.append(signal)
        prev = next_rsi(prev, ind)
    assert [c.close for c in minutes] == closes[:-1]
    assert [i for i in out.indicators if i.interval == "1m"] == expected_indicators
    assert [s for s in out.signals if s.interval == "1m"] == expected_signals
    assert expected_signals  # the walk crosses the thresholds at least once


def test_a_symbol_is_known_once_it_had_a_valid_tick() -> None:
    worker = AnalyticsWorker.start()
    feed(worker, [at(100.0, START)])

    assert worker.engine.known("VTI")
    assert not worker.engine.known("IVE")
    assert worker.engine.emitted("IVE", "1m", 30) == []
    assert worker.engine.open_candle("IVE", "1m") is None


# --- the wall clock ----------------------------------------------------------------


def test_the_clock_closes_a_window_only_once_its_end_plus_grace_has_passed() -> None:
    worker = AnalyticsWorker.start()
    feed(worker, [at(100.0, START + 1.5)])
    second = Candle("VTI", "1s", START + 1, 100.0, 100.0, 100.0, 100.0, 1)
    minute = Candle("VTI", "1m", START, 100.0, 100.0, 100.0, 100.0, 1)

    assert worker.engine.on_clock(START + 3.999, {0}) == Outputs()
    at_grace = worker.engine.on_clock(START + 4.0, {0})  # 1s window ends at +2, grace 2 s
    assert worker.engine.on_clock(START + 61.999, {0}) == Outputs()
    minute_out = worker.engine.on_clock(START + 62.0, {0})
    assert worker.engine.on_clock(START + 600.0, {0}) == Outputs()  # each is emitted once

    assert at_grace.candles == [second]
    assert at_grace.indicators == [Indicator("VTI", "1s", START + 1, 100.0, None, None, None)]
    assert minute_out.candles == [minute]
    assert worker.engine.emitted("VTI", "1s", 1) == [second]
    assert worker.engine.emitted("VTI", "1m", 1) == [minute]
    assert worker.engine.open_candle("VTI", "1m") is None


def test_the_clock_waits_for_the_configured_grace() -> None:
    worker = AnalyticsWorker.start(AnalyticsConfig(grace_s=0.5))
    feed(worker, [at(100.0, START + 1.5)])

    assert worker.engine.on_clock(START + 2.499, {0}).candles == []
    assert [c.interval for c in worker.engine.on_clock(START + 2.5, {0}).candles] == ["1s"]


def test_the_clock_closes_windows_only_of_the_partitions_it_is_given() -> None:
    worker = AnalyticsWorker.start()
    worker.engine.on_ticks(0, [at(100.0, START + 1, "VTI")], [0])
    worker.engine.on_ticks(1, [at(50.0, START + 1, "IVE")], [0])

    theirs = worker.engine.on_clock(START + 100, {1})
    ours = worker.engine.on_clock(START + 100, {0, 1})

    assert sorted((c.symbol, c.interval) for c in theirs.candles) == [("IVE", "1m"), ("IVE", "1s")]
    assert sorted((c.symbol, c.interval) for c in ours.candles) == [("VTI", "1m"), ("VTI", "1s")]


def test_a_tick_in_a_window_the_clock_closed_is_late_and_in_no_candle() -> None:
    worker = AnalyticsWorker.start()
    feed(worker, [at(100.0, START + 1.5)])
    closed = worker.engine.on_clock(START + 62, {0}).candles

    out = feed(worker, [at(100.5, START + 1.7)], first=1)

    assert out.late == 2  # late for 1s and for 1m: counted once per interval
    assert worker.engine.late_ticks == 2
    assert out.candles == out.indicators == []
    assert worker.engine.open_candle("VTI", "1s") is None
    assert worker.engine.open_candle("VTI", "1m") is None
    # It opened nothing: a later tick has no window to close.
    assert feed(worker, [at(101.0, START + 125)], first=2).candles == []
    assert worker.engine.emitted("VTI", "1m", 30) == [c for c in closed if c.interval == "1m"]


def test_a_tick_before_the_newest_window_is_late_for_that_interval_only() -> None:
    worker = AnalyticsWorker.start()
    feed(worker, [at(100.0, START + 10), at(101.0, START + 12)])

    out = feed(worker, [at(102.0, START + 11)], first=2)  # an older second, the same minute

    assert out.late == 1
    minute = worker.engine.open_candle("VTI", "1m")
    assert minute is not None and minute.count == 3


# --- redelivery and restarts ---------------------------------------------------


def one_pass(*batches: list[Tick]) -> tuple[AnalyticsWorker, list[Outputs]]:
    """A worker that sees each batch once, at consecutive offsets, publishing after each."""
    worker = AnalyticsWorker.start()
    outs, first = [], 0
    for batch in batches:
        outs.append(feed(worker, batch, first))
        worker.publish()
        first += len(batch)
    return worker, outs


def assert_same_candle_state(worker: AnalyticsWorker, reference: AnalyticsWorker) -> None:
    for interval in ("1s", "1m"):
        assert worker.engine.emitted("VTI", interval, 1440) == reference.engine.emitted(
            "VTI", interval, 1440
        )
        assert worker.engine.open_candle("VTI", interval) == reference.engine.open_candle(
            "VTI", interval
        )


@pytest.mark.parametrize("one_batch", [False, True], ids=["redelivery-then-next", "mixed-batch"])
def test_after_a_restart_redelivered_ticks_emit_nothing_twice(one_batch: bool) -> None:
    reference, (ref_first, ref_second) = one_pass(FIRST, SECOND)
    worker = AnalyticsWorker.start()
    before = feed(worker, FIRST)
    worker.publish()

    worker = worker.restarted()  # redelivery from offset 0
    if one_batch:
        after = [feed(worker, FIRST + SECOND)]
    else:
        after = [feed(worker, FIRST), feed(worker, SECOND, first=len(FIRST))]
        assert after[0] == Outputs()

    emitted = before.candles + [c for out in after for c in out.candles]
    assert emitted == ref_first.candles + ref_second.candles
    assert len(set(emitted)) == len(emitted)
    indicators = before.indicators + [i for out in after for i in out.indicators]
    assert indicators == ref_first.indicators + ref_second.indicators
    assert sum(out.late for out in after) == 0
    assert_same_candle_state(worker, reference)


def test_redelivery_without_a_restart_adds_nothing() -> None:
    reference, _ = one_pass(FIRST, SECOND)
    worker, _ = one_pass(FIRST, SECOND)

    again = feed(worker, FIRST + SECOND)

    assert again == Outputs()
    assert worker.engine.late_ticks == 0
    assert_same_candle_state(worker, reference)


def test_a_crash_before_publishing_repeats_the_same_candles_and_nothing_more() -> None:
    worker, _ = one_pass(FIRST)
    lost = feed(worker, SECOND, first=len(FIRST))  # delivered, then the worker dies

    worker = worker.restarted()
    again = feed(worker, SECOND, first=len(FIRST))

    assert lost.candles  # the batch did emit something
    assert (again.candles, again.indicators, again.signals) == (
        lost.candles,
        lost.indicators,
        lost.signals,
    )
    reference, _ = one_pass(FIRST, SECOND)
    assert_same_candle_state(worker, reference)


# --- alerts across a restart -----------------------------------------------------


def test_alert_cooldowns_survive_a_restart() -> None:
    worker = AnalyticsWorker.start()
    first = feed(worker, [at(100.0, START), at(106.0, START + 1)])
    worker.publish()
    worker = worker.restarted()  # committed offset 2: nothing is redelivered
    move = [at(100.0, START + 2), at(107.0, START + 3)]

    inside = feed(worker, move, first=2)
    after = feed(worker, [at(107.0, START + 301)], first=4)

    assert [(a.direction, a.timestamp) for a in first.alerts] == [("UP", START + 1)]
    assert inside.alerts == []  # the cooldown (until START + 301) held through the restart
    assert [a.direction for a in feed(AnalyticsWorker.start(), move).alerts] == ["UP"]
    assert [(a.direction, a.timestamp) for a in after.alerts] == [("UP", START + 301)]


@pytest.mark.parametrize("together", [False, True], ids=["own-batch", "with-new-ticks"])
def test_after_a_restart_redelivered_ticks_refill_the_alert_window_without_alerting(
    together: bool,
) -> None:
    worker = AnalyticsWorker.start()
    old = [at(100.0, START), at(106.0, START + 1)]
    assert [a.direction for a in feed(worker, old).alerts] == ["UP"]
    worker.publish()
    worker = worker.restarted()  # redelivery from offset 0
    new = [at(100.5, START + 2)]  # 5.2 % below the redelivered 106

    if together:
        alerts = feed(worker, old + new).alerts
    else:
        assert feed(worker, old).alerts == []
        alerts = feed(worker, new, first=2).alerts

    assert [(a.direction, a.reference_price, a.price) for a in alerts] == [("DOWN", 106.0, 100.5)]


# --- the candle history behind GET /candles -----------------------------------------

# One tick a minute for 1590 minutes (more than a day), then one every 0.5 s for 2 minutes.
SPARSE = [at(100.0 + (i % 7) * 0.1, START + 60 * i + 0.5) for i in range(1590)]
DENSE = [at(100.0 + (j % 5) * 0.1, START + 60 * 1590 + 0.5 * j) for j in range(240)]


@pytest.fixture(scope="module")
def long_history() -> AnalyticsWorker:
    worker = AnalyticsWorker.start()
    ticks = SPARSE + DENSE
    for first in range(0, len(ticks), 200):
        feed(worker, ticks[first : first + 200], first)
        worker.publish()
    return worker


def closed(interval: str) -> list[Candle]:
    _, candles, _ = candle_bolt.on_ticks(
        None, SPARSE + DENSE, candle_bolt.INTERVALS[interval], interval
    )
    return candles


@pytest.mark.parametrize("interval", ["1s", "1m"])
def test_a_day_query_returns_exactly_the_candles_from_the_newest_end_back_a_day(
    long_history: AnalyticsWorker, interval: str
) -> None:
    every = closed(interval)
    cut = every[-1].start + candle_bolt.INTERVALS[interval] - DAY

    day = long_history.engine.emitted("VTI", interval, 1440)

    assert day == [c for c in every if c.start >= cut]  # oldest first, cut inclusive
    assert len(day) < len(every)  # the older ones exist but are out of reach


def test_the_day_cut_is_inclusive(long_history: AnalyticsWorker) -> None:
    cut = closed("1m")[-1].start + 60 - DAY  # a minute with a candle starts exactly here

    day = long_history.engine.emitted("VTI", "1m", 1440)

    assert (day[0].start, len(day)) == (cut, 1440)


def test_a_one_minute_query_returns_the_last_minute_or_the_last_sixty_seconds(
    long_history: AnalyticsWorker,
) -> None:
    assert long_history.engine.emitted("VTI", "1m", 1) == closed("1m")[-1:]
    last_seconds = long_history.engine.emitted("VTI", "1s", 1)
    assert last_seconds == closed("1s")[-60:]
    assert len(last_seconds) == 60


@pytest.mark.parametrize("interval", ["1s", "1m"])
def test_chunks_older_than_the_longest_query_are_deleted_with_tombstones(
    long_history: AnalyticsWorker, interval: str
) -> None:
    every = closed(interval)
    keep_from = chunk_of(every[-1].start + candle_bolt.INTERVALS[interval] - DAY, interval)
    existed = sorted({chunk_of(c.start, interval) for c in every})
    prefix = f"VTI|{interval}|"

    tombstones = [k for k in long_history.history_log.tombstones() if k.startswith(prefix)]
    live = {k for k in long_history.history_log.data if k.startswith(prefix)}

    assert tombstones == [chunk_key("VTI", interval, k) for k in existed if k < keep_from]
    assert live == {chunk_key("VTI", interval, k) for k in existed if k >= keep_from}


def test_the_history_survives_a_restart(long_history: AnalyticsWorker) -> None:
    restarted = long_history.restarted()

    assert set(restarted.history_log.data) == set(long_history.history_log.data)
    assert_same_candle_state(restarted, long_history)


# --- state as JSON and configuration -------------------------------------------------


def busy_worker() -> AnalyticsWorker:
    """A worker whose VTI state has every part filled in: indicators, RSI, cooldowns."""
    worker = AnalyticsWorker.start(AnalyticsConfig(periods=Periods(3, 3, 2)))
    closes = random_walk(8, seed=5, step=0.04)
    feed(worker, [at(c, START + 61 * i + 0.25) for i, c in enumerate(closes)])
    feed(worker, [at(120.0, START + 61 * 8)], first=8)
    return worker


def test_symbol_state_round_trips_through_json() -> None:
    state = busy_worker().states.get("VTI")
    assert state is not None
    assert state.indicators["1m"].ema is not None and state.rsi["1m"] is not None
    assert state.last_up is not None and state.history_from

    assert SymbolState.from_dict(orjson.loads(orjson.dumps(state))) == state


def test_candle_chunk_round_trips_through_json() -> None:
    chunk = busy_worker().history.get(chunk_key("VTI", "1m", chunk_of(START, "1m")))
    assert isinstance(chunk, CandleChunk) and len(chunk.candles) == 8

    assert CandleChunk.from_dict(orjson.loads(orjson.dumps(chunk))) == chunk


def test_config_from_default_settings_is_the_contract_defaults() -> None:
    config = AnalyticsConfig.from_settings(Settings())

    assert config == AnalyticsConfig()
    assert (
        config.periods,
        config.grace_s,
        config.rsi_low,
        config.rsi_high,
        config.alert_window_s,
        config.alert_threshold,
    ) == (Periods(20, 20, 14), 2.0, 30.0, 70.0, 300.0, 0.05)


def test_config_from_settings_takes_every_analytics_setting() -> None:
    settings = Settings.from_env(
        {
            "FINTANK_SMA_PERIOD": "10",
            "FINTANK_EMA_PERIOD": "12",
            "FINTANK_RSI_PERIOD": "7",
            "FINTANK_CANDLE_GRACE": "0.5",
            "FINTANK_RSI_LOW": "25",
            "FINTANK_RSI_HIGH": "75",
            "FINTANK_ALERT_WINDOW": "60",
            "FINTANK_ALERT_THRESHOLD_PCT": "2.5",
        }
    )

    assert AnalyticsConfig.from_settings(settings) == AnalyticsConfig(
        Periods(10, 12, 7), 0.5, 25.0, 75.0, 60.0, 0.025
    )


def test_the_engine_alerts_with_its_configured_window_and_threshold() -> None:
    config = AnalyticsConfig(alert_window_s=10.0, alert_threshold=0.01)
    ticks = [
        at(100.0, START),
        at(101.0, START + 9.5),
        at(99.9, START + 10.5),
        at(101.0, START + 20),
    ]

    alerts = feed(AnalyticsWorker.start(config), ticks).alerts

    assert [(a.direction, a.reference_price, a.timestamp, a.window_s) for a in alerts] == [
        ("UP", 100.0, START + 9.5, 10.0),
        ("DOWN", 101.0, START + 10.5, 10.0),
        ("UP", 99.9, START + 20, 10.0),  # cooled down at START + 19.5; 100.0 left the window
    ]
    assert feed(AnalyticsWorker.start(), ticks).alerts == []  # 5 % by default


def test_a_crash_between_the_history_and_the_state_changelogs_keeps_each_candle_once() -> None:
    worker = AnalyticsWorker.start()
    feed(worker, [at(100.0, START + 1)])
    worker.publish()
    closing = feed(worker, [at(101.0, START + 61)], first=1)  # closes the first minute
    worker.history.publish()  # the history reached Kafka, the state did not

    worker = worker.restarted()
    again = feed(worker, [at(101.0, START + 61)], first=1)

    minute = [c for c in closing.candles if c.interval == "1m"]
    assert [c for c in again.candles if c.interval == "1m"] == minute
    assert worker.engine.emitted("VTI", "1m", 30) == minute


def test_a_time_gap_costs_no_walk_over_the_chunks_in_between() -> None:
    worker = AnalyticsWorker.start()
    feed(worker, [at(100.0, 1.0)])  # 1970: a valid timestamp, 50 years of 1s chunks ago

    feed(worker, [at(100.0, START), at(100.0, START + 1)], first=1)  # was a 29 M-step loop

    assert [c.start for c in worker.engine.emitted("VTI", "1s", 1)] == [START]
    assert worker.engine.emitted("VTI", "1s", 1440)[0].start == START
