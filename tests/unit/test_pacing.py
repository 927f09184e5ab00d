"""The paced sender's schedule (fintank.pacing) with a fake clock: no broker, no real time.

`pace` is driven with a clock that only moves when the test moves it: a sleep
advances it by what was asked (or by a drawn part of it, a sleep that ends
early), and a send advances it by a drawn send duration.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterable, Sequence
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fintank.pacing import (
    MIN_SLACK_NS,
    NS_PER_MS,
    NS_PER_S,
    OVERLOAD_AFTER,
    Alarm,
    Lags,
    Pacer,
    pace,
    slots_within,
)

START = 1_000 * NS_PER_S  # the fake clock's start: any point of a monotonic clock
MS = NS_PER_MS


class Run:
    """A fake world for `pace`: a clock, a sleep that advances it, a send that takes time.

    ``costs[i]`` is how long the i-th send takes (the last one repeats; none: 0).
    ``wake_early[j]`` (0..1) is the share of its wait the j-th sleep skips (a
    sleep that ends early; the pacer must sleep again rather than send early).
    """

    def __init__(self, costs: Sequence[int] = (), wake_early: Sequence[float] = ()) -> None:
        self.now = START
        self.costs = list(costs)
        self.wake_early = list(wake_early)
        self.clock_reads = 0
        self.sleeps: list[int] = []
        self.sent_at: list[int] = []
        self.sent: list[object] = []
        self.lags: list[int] = []
        self.alarms: list[Alarm] = []

    def clock(self) -> int:
        self.clock_reads += 1
        return self.now

    async def sleep(self, ns: int) -> None:
        assert ns > 0
        self.sleeps.append(ns)
        early = (
            self.wake_early[(len(self.sleeps) - 1) % len(self.wake_early)] if self.wake_early else 0
        )
        self.now += max(1, ns - int(ns * early))

    async def send(self, record: object) -> None:
        self.sent_at.append(self.now)
        self.sent.append(record)
        if self.costs:
            self.now += self.costs[min(len(self.sent) - 1, len(self.costs) - 1)]

    def go(self, pacer: Pacer, records: Iterable[object], then: Iterable[object] = ()) -> int:
        def progress(n: int) -> None:
            self.lags.append(pacer.last_lag_ns)

        return asyncio.run(
            pace(
                pacer,
                records,
                self.send,
                clock=self.clock,
                sleep=self.sleep,
                alarm=self.alarms.append,
                progress=progress,
                then=then,
            )
        )


def pacer(rate: float, **kw: int) -> Pacer:
    return Pacer(rate, START, **kw)


# ----------------------------------------------------------------- the schedule


def test_slots_are_due_one_period_apart_from_the_start() -> None:
    p = pacer(1000)

    assert [p.due_ns(i) - START for i in range(4)] == [0, MS, 2 * MS, 3 * MS]
    assert p.due_ns(1_000_000) - START == 1000 * NS_PER_S  # computed, not summed


def test_an_on_time_run_sends_each_slot_exactly_when_it_is_due() -> None:
    run, p = Run(costs=[50_000]), pacer(1000)  # each send takes 50 µs

    sent = run.go(p, range(10))

    assert sent == 10
    assert run.sent_at == [p.due_ns(i) for i in range(10)]
    assert run.lags == [0] * 10
    assert p.missed == 0 and run.alarms == []


def test_a_slow_cycle_does_not_shift_later_slots() -> None:
    # Send 3 takes 5.5 ms: slots 4..8 fall behind; slot 9 onwards keep their due times.
    run, p = Run(costs=[10_000] * 3 + [5_500_000] + [10_000]), pacer(1000)

    run.go(p, range(20))

    assert run.sent_at[:4] == [p.due_ns(i) for i in range(4)]
    assert run.sent_at[9:] == [p.due_ns(i) for i in range(9, 20)]  # no cumulative drift
    assert all(run.sent_at[i] > p.due_ns(i) for i in range(4, 9))


def test_after_a_stall_the_late_slots_go_at_once_with_their_lag() -> None:
    stall = 50 * MS
    run, p = Run(costs=[0] * 10 + [stall] + [0]), pacer(1000)

    run.go(p, range(100))

    back = START + 10 * MS + stall  # when send 10 returned
    late = range(11, 61)  # due before the stall ended
    assert [run.sent_at[i] for i in late] == [back] * len(late)  # no sleep in between
    assert [run.lags[i] for i in late] == [back - p.due_ns(i) for i in late]
    assert run.lags[11] == 49 * MS and run.lags[60] == 0
    assert run.sent_at[61:] == [p.due_ns(i) for i in range(61, 100)]
    assert p.lags.max_ns == 49 * MS


def test_slack_is_a_period_and_at_least_a_millisecond() -> None:
    assert pacer(10).slack_ns == 100 * MS
    assert pacer(1000).slack_ns == MS
    assert pacer(100_000).slack_ns == MIN_SLACK_NS == MS
    assert pacer(1000, slack_ns=5).slack_ns == 5


def test_sending_before_the_due_time_is_a_bug() -> None:
    p = pacer(1000)
    p.sent(START)

    with pytest.raises(ValueError, match="slot 1 sent 1 ns before it was due"):
        p.sent(START + MS - 1)


# ----------------------------------------------------------------- the alarm


def late(p: Pacer) -> Alarm | None:
    """Send the next slot 2 ms late (a miss at 1,000/s)."""
    return p.sent(p.due_ns(p.next) + 2 * MS)


def on_time(p: Pacer) -> Alarm | None:
    return p.sent(p.due_ns(p.next))


def test_the_alarm_comes_after_exactly_100_missed_slots_in_a_row() -> None:
    p = pacer(1000)
    on_time(p)

    first_99 = [late(p) for _ in range(99)]
    hundredth = late(p)

    assert first_99 == [None] * 99
    assert hundredth == Alarm("overload", slot=100, lag_ns=2 * MS, missed=100)
    assert OVERLOAD_AFTER == 100


def test_the_alarm_is_raised_once_per_episode() -> None:
    p = pacer(1000)
    alarms = [late(p) for _ in range(1000)]

    assert [a for a in alarms if a is not None] == [Alarm("overload", 99, 2 * MS, 100)]
    assert p.episodes == 1 and p.missed == 1000 and p.overloaded


def test_99_misses_then_one_on_time_never_alarm() -> None:
    p = pacer(1000)
    alarms = []
    for _ in range(5):
        alarms += [late(p) for _ in range(99)]
        alarms.append(on_time(p))

    assert set(alarms) == {None}
    assert p.episodes == 0 and p.missed == 495


def test_after_recovery_a_new_episode_alarms_again() -> None:
    p = pacer(1000)
    first = [late(p) for _ in range(150)]
    recovered = on_time(p)
    calm = [late(p) for _ in range(99)]
    second = late(p)

    assert [a.kind for a in first if a] == ["overload"]
    assert recovered == Alarm("recovered", slot=150, lag_ns=0, missed=150)
    assert set(calm) == {None}
    assert second == Alarm("overload", slot=250, lag_ns=2 * MS, missed=100)
    assert p.episodes == 2


def test_a_slot_exactly_at_the_slack_is_on_time() -> None:
    p = pacer(1000)
    on_time(p)
    alarms = [p.sent(p.due_ns(p.next) + p.slack_ns) for _ in range(200)]

    assert set(alarms) == {None} and p.missed == 0


def test_a_sender_too_slow_for_its_rate_alarms_once_and_goes_on() -> None:
    run, p = Run(costs=[2 * MS]), pacer(1000)  # each send takes 2 ms at 1 ms apart

    sent = run.go(p, range(500))

    assert sent == 500  # it keeps going
    assert [a.kind for a in run.alarms] == ["overload"]
    # Slot i (i >= 1) goes out at 2i ms, i ms late; misses start where the lag passes 1 ms.
    assert run.alarms[0].slot == 101 and run.alarms[0].lag_ns == 101 * MS
    assert run.sleeps == []  # never ahead of the schedule, never asleep


# ----------------------------------------------------------------- rate 0, float rates, duration


def test_rate_0_sends_as_fast_as_possible_and_reads_the_clock_twice() -> None:
    run, p = Run(costs=[1000]), pacer(0)

    sent = run.go(p, range(10_000), then=["bad"])

    summary = p.summary()
    assert sent == 10_001 and run.sent[-1] == "bad"
    assert run.sleeps == [] and run.clock_reads == 2  # no clock read per record
    assert summary.lag_ms is None and summary.missed == 0
    assert summary.seconds == pytest.approx(10_001 * 1000 / NS_PER_S)
    assert p.wait_ns(START) == 0


@pytest.mark.parametrize("rate", [0.5, 3.0, 333.3, 1000.0, 2500.5, 44_100.0])
def test_float_rates_keep_their_exact_schedule(rate: float) -> None:
    run, p = Run(), pacer(rate)

    run.go(p, range(2000))

    period = Fraction(NS_PER_S) / Fraction(repr(rate))
    assert all(abs(p.due_ns(i) - START - period * i) < 1 for i in range(2000))
    assert run.sent_at == [p.due_ns(i) for i in range(2000)]
    assert p.summary().achieved_rate == pytest.approx(rate, rel=1e-6)


def test_a_duration_at_a_rate_sends_the_slots_due_within_it() -> None:
    run, p = Run(), pacer(1000, duration_ns=250 * MS)

    sent = run.go(p, iter(range(10**9)), then=["x", "y"])

    assert sent == 252 and run.sent[-3:] == [249, "x", "y"]
    assert run.sent_at[-1] == p.due_ns(251)  # the invalid ones keep to the schedule


def test_a_duration_at_rate_0_ends_by_the_clock() -> None:
    run, p = Run(costs=[MS]), pacer(0, duration_ns=10 * MS)

    sent = run.go(p, iter(range(10**9)), then=["bad"])

    assert sent == 11 and run.sent[-2:] == [9, "bad"]
    assert p.summary().lag_ms is None


@pytest.mark.parametrize(
    ("rate", "seconds", "slots"),
    [(1000, 3, 3000), (0.1, 30, 3), (333.3, 1, 334), (1000, 0.0015, 2), (3, 1, 3), (7, 1e-9, 1)],
)
def test_slots_within_a_duration(rate: float, seconds: float, slots: int) -> None:
    assert slots_within(rate, seconds) == slots


@given(
    rate=st.floats(0.01, 1e6, allow_nan=False),
    seconds=st.floats(1e-6, 100, allow_nan=False),
)
def test_slots_within_counts_the_due_times_before_the_end(rate: float, seconds: float) -> None:
    p = pacer(rate, duration_ns=round(seconds * NS_PER_S))
    n = slots_within(rate, seconds)

    assert n >= 1
    assert p.end_ns is not None
    assert p.due_ns(n - 1) < p.end_ns <= p.due_ns(n)


def test_bad_rates_are_refused() -> None:
    for rate in (-1.0, math.nan, math.inf):
        with pytest.raises(ValueError):
            Pacer(rate, 0)


# ----------------------------------------------------------------- lags and the summary


@given(st.lists(st.integers(0, 10 * NS_PER_S), min_size=1, max_size=300), st.floats(0.001, 1))
def test_lag_percentiles_are_nearest_rank_to_the_microsecond(lags: list[int], q: float) -> None:
    recorded = Lags()
    for lag in lags:
        recorded.add(lag)

    ranked = sorted(lags)
    want = ranked[max(1, math.ceil(q * len(lags))) - 1] // 1000 * 1000
    assert recorded.percentile_ns(q) == want
    assert recorded.max_ns == max(lags)
    assert recorded.percentile_ns(0.5) <= recorded.percentile_ns(0.99) <= recorded.max_ns


def test_the_summary_in_words_and_as_json() -> None:
    run, p = Run(costs=[0] * 5 + [3 * MS] + [0]), pacer(1000)
    run.go(p, range(1001))

    s = p.summary()
    doc = s.as_dict()

    assert doc == {
        "sent": 1001,
        "target_rate": 1000,
        "achieved_rate": 1000.0,
        "seconds": 1.0,
        "lag_ms": {"p50": 0.0, "p99": 0.0, "max": 2.0},
        "missed": 1,
        "overloads": 0,
    }
    assert s.line() == (
        "rate 1,000.0/s (target 1,000/s) over 1.000 s; schedule lag p50 0.000 ms, "
        "p99 0.000 ms, max 2.000 ms; 1 missed, 0 overloads"
    )


def test_a_summary_of_nothing() -> None:
    s = pacer(1000).summary()

    assert s.sent == 0 and s.achieved_rate == 0.0 and s.lag_ms is None


# ----------------------------------------------------------------- properties


durations = st.lists(st.integers(0, 5 * MS), min_size=1, max_size=300)
rates = st.sampled_from([1.0, 7.5, 333.3, 1000.0, 2000.0, 10_000.0, 123_456.7])


@settings(max_examples=200, deadline=None)
@given(rate=rates, costs=durations)
def test_slot_i_goes_at_its_due_time_or_as_soon_as_the_sender_is_free(
    rate: float, costs: list[int]
) -> None:
    run, p = Run(costs=costs), pacer(rate)

    run.go(p, range(len(costs)))

    free = START  # when the previous send returned
    for i, at in enumerate(run.sent_at):
        due = p.due_ns(i)
        assert at >= due  # never before its due time
        assert at == max(due, free)  # and never later than it has to
        assert run.lags[i] == at - due
        free = at + costs[i]


@settings(max_examples=200, deadline=None)
@given(
    rate=rates,
    costs=durations,
    early=st.lists(st.floats(0, 0.999), min_size=1, max_size=20),
)
def test_sleeps_that_end_early_never_make_a_slot_early(
    rate: float, costs: list[int], early: list[float]
) -> None:
    run, p = Run(costs=costs, wake_early=early), pacer(rate)

    sent = run.go(p, range(len(costs)))

    assert sent == len(costs)
    for i, at in enumerate(run.sent_at):
        assert at >= p.due_ns(i)
        assert run.lags[i] == at - p.due_ns(i)
    assert p.lags.n == len(costs)
    assert p.lags.max_ns == max(run.lags)


@settings(max_examples=200, deadline=None)
@given(misses=st.lists(st.booleans(), max_size=600))
def test_alarms_follow_the_runs_of_misses(misses: list[bool]) -> None:
    """An overload for each run of >= 100 misses (at its 100th), a recovery after it."""
    p = pacer(1000)
    got = [late(p) if miss else on_time(p) for miss in misses]

    want: list[tuple[str, int]] = []
    streak, open_ = 0, False
    for slot, miss in enumerate(misses):
        if miss:
            streak += 1
            if streak == 100:
                want.append(("overload", slot))
                open_ = True
        else:
            if open_:
                want.append(("recovered", slot))
            streak, open_ = 0, False
    assert [(a.kind, a.slot) for a in got if a is not None] == want
