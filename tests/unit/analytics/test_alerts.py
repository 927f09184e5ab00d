"""The alert bolt, one rule of CONTRACT.md `alerts` per test."""

from __future__ import annotations

import math

import orjson

from fintank.analytics.alerts import AlertState, on_tick
from fintank.analytics.records import Alert
from fintank.records import Tick
from tests.support.analytics import START, at


def feed(ticks: list[Tick], **options: float) -> list[Alert]:
    state: AlertState | None = None
    alerts: list[Alert] = []
    for t in ticks:
        state, out = on_tick(state, t, **options)
        alerts.extend(out)
    return alerts


def test_up_when_the_mid_is_threshold_above_the_window_min() -> None:
    alerts = feed([at(100.0, START), at(105.0, START + 10)])

    assert alerts == [Alert("VTI", "UP", 5.0, 300.0, 100.0, 105.0, START + 10)]


def test_down_when_the_mid_is_threshold_below_the_window_max() -> None:
    alerts = feed([at(100.0, START), at(95.0, START + 10)])

    assert alerts == [Alert("VTI", "DOWN", 5.0, 300.0, 100.0, 95.0, START + 10)]


def test_no_alert_below_the_threshold() -> None:
    assert feed([at(100.0, START), at(104.99, START + 10)]) == []


def test_the_window_excludes_a_tick_exactly_window_s_old() -> None:
    assert feed([at(100.0, START), at(106.0, START + 300)]) == []
    assert len(feed([at(100.0, START), at(106.0, START + 299.5)])) == 1


def test_ticks_seen_earlier_with_later_timestamps_are_not_in_the_window() -> None:
    # The second tick is older: its window (t - 300, t] does not contain the first.
    alerts = feed([at(100.0, START + 100), at(110.0, START + 50)])

    assert alerts == []


def test_out_of_order_ticks_seen_earlier_count_in_a_later_window() -> None:
    alerts = feed([at(100.0, START + 100), at(102.0, START + 50), at(107.1, START + 120)])

    assert [(a.direction, a.reference_price) for a in alerts] == [("UP", 100.0)]


def test_change_pct_is_a_positive_percentage() -> None:
    (alert,) = feed([at(200.0, START), at(180.0, START + 1)])

    assert alert.direction == "DOWN"
    assert math.isclose(alert.change_pct, 10.0)
    assert (alert.reference_price, alert.price) == (200.0, 180.0)


def test_cooldown_suppresses_the_same_direction_for_one_window() -> None:
    ticks = [
        at(100.0, START),
        at(106.0, START + 1),  # UP, t0 = START + 1
        at(100.0, START + 2),
        at(106.0, START + 300.5),  # UP again, but before t0 + 300
        at(106.5, START + 301),  # UP at exactly t0 + 300
    ]

    alerts = feed(ticks)

    assert [a.timestamp for a in alerts if a.direction == "UP"] == [START + 1, START + 301]


def test_cooldown_is_per_direction() -> None:
    ticks = [at(100.0, START), at(106.0, START + 1), at(99.0, START + 2)]

    alerts = feed(ticks)

    assert [a.direction for a in alerts] == ["UP", "DOWN"]


def test_one_tick_can_alert_both_ways() -> None:
    # 90 arrives after 110 but is older: neither is in the other's window.
    ticks = [at(110.0, START + 200), at(90.0, START + 100), at(100.0, START + 250)]

    alerts = feed(ticks)

    assert [(a.direction, a.reference_price, a.timestamp) for a in alerts] == [
        ("UP", 90.0, START + 250),
        ("DOWN", 110.0, START + 250),
    ]


def test_an_older_tick_within_the_cooldown_of_a_newer_alert_does_not_alert() -> None:
    ticks = [at(100.0, START + 200), at(106.0, START + 201), at(100.0, START), at(106.0, START + 1)]

    alerts = feed(ticks)

    assert [a.timestamp for a in alerts] == [START + 201]


def test_a_tick_more_than_max_lateness_behind_does_not_alert() -> None:
    # 90 at +600 is 400 s behind the newest: by the bare contract it is DOWN 10%.
    ticks = [at(100.0, START + 550), at(100.0, START + 1000), at(90.0, START + 600)]

    assert feed(ticks, window_s=300.0, max_lateness_s=300.0) == []
    assert [a.direction for a in feed(ticks, max_lateness_s=math.inf)] == ["DOWN"]


def test_a_too_late_tick_still_counts_in_later_windows() -> None:
    late_but_kept = feed(
        [at(100.0, START + 1000), at(90.0, START + 650), at(94.6, START + 900)],
        window_s=300.0,
        max_lateness_s=300.0,
    )
    assert [(a.direction, a.reference_price) for a in late_but_kept] == [("UP", 90.0)]


def test_infinite_lateness_evaluates_every_tick() -> None:
    ticks = [at(100.0, START + 5000), at(90.0, START + 10), at(95.0, START + 11)]

    alerts = feed(ticks, max_lateness_s=math.inf)

    assert [(a.direction, a.timestamp) for a in alerts] == [("UP", START + 11)]


def test_state_round_trips_through_json() -> None:
    state = None
    for t in [at(100.0, START), at(101.0, START + 1), at(99.0, START + 0.5)]:
        state, _ = on_tick(state, t)
    assert state is not None

    restored = AlertState.from_dict(orjson.loads(orjson.dumps(state)))

    assert restored == state
