"""The alert bolt against a brute-force model that keeps every tick."""

from __future__ import annotations

import math
import random
from unittest.mock import patch

from hypothesis import given
from hypothesis import strategies as st

from fintank.analytics import alerts
from fintank.analytics.alerts import AlertState, on_tick
from fintank.analytics.records import Alert
from fintank.records import Tick
from tests.support.analytics import START, at, reference_alerts, tick_streams

WINDOW = 10.0


def run(ticks: list[Tick], window_s: float, threshold: float, lateness: float) -> list[Alert]:
    state: AlertState | None = None
    out: list[Alert] = []
    for t in ticks:
        state, emitted = on_tick(state, t, window_s, threshold, lateness)
        out.extend(emitted)
    return out


@given(
    tick_streams(max_offset=40.0, max_size=80),
    st.sampled_from([0.0, 0.01, 0.05, 0.1]),
    st.sampled_from([0.0, 2.5, WINDOW, 30.0, math.inf]),
    st.sampled_from([1, 2, 256]),
)
def test_alerts_match_brute_force(
    ticks: list[Tick], threshold: float, lateness: float, load: int
) -> None:
    # A tiny block size makes hypothesis's short streams split and prune blocks too.
    with patch.object(alerts, "_LOAD", load):
        actual = run(ticks, WINDOW, threshold, lateness)

    assert actual == reference_alerts(ticks, WINDOW, threshold, lateness)


@given(tick_streams(max_offset=40.0, max_size=80), st.sampled_from([0.0, 0.05]))
def test_default_lateness_is_one_window(ticks: list[Tick], threshold: float) -> None:
    state: AlertState | None = None
    actual: list[Alert] = []
    for t in ticks:
        state, emitted = on_tick(state, t, WINDOW, threshold)
        actual.extend(emitted)

    assert actual == reference_alerts(ticks, WINDOW, threshold, WINDOW)


@given(tick_streams(max_offset=40.0, max_size=80), st.sampled_from([0.0, 0.02]))
def test_cooldown_holds_per_direction(ticks: list[Tick], threshold: float) -> None:
    emitted = run(ticks, WINDOW, threshold, math.inf)

    for direction in ("UP", "DOWN"):
        times = [a.timestamp for a in emitted if a.direction == direction]
        assert all(b >= a + WINDOW for a, b in zip(times, times[1:], strict=False))


@given(tick_streams(max_offset=100.0, max_size=80), st.sampled_from([1, 2]))
def test_memory_is_bounded_by_window_plus_lateness(ticks: list[Tick], load: int) -> None:
    state: AlertState | None = None
    with patch.object(alerts, "_LOAD", load):
        for t in ticks:
            state, _ = on_tick(state, t, WINDOW, 0.05, WINDOW)
    if state is None:
        return

    cutoff = state.newest - 2 * WINDOW
    kept_after_first_block = [ts for block in state.times[1:] for ts in block]
    assert all(ts > cutoff for ts in kept_after_first_block)
    assert len(state.times[0]) <= 2 * load


def test_a_long_jittery_stream_matches_brute_force() -> None:
    rng = random.Random(42)
    ticks: list[Tick] = []
    mid = 100.0
    for i in range(20_000):
        mid *= 1.0 + rng.uniform(-0.004, 0.004)
        jitter = rng.choice([0.0, 0.0, 0.0, -rng.uniform(0, 3), -rng.uniform(0, 25)])
        ticks.append(at(mid, START + i * 0.05 + jitter))

    actual = run(ticks, WINDOW, 0.01, WINDOW)

    assert actual == reference_alerts(ticks, WINDOW, 0.01, WINDOW)
    assert len(actual) > 10


@given(
    tick_streams(max_offset=40.0, max_size=80),
    st.sampled_from([0.0, 0.01, 0.05]),
    st.sampled_from([2.5, WINDOW, math.inf]),
    st.sampled_from([1, 2, 256]),
    st.lists(st.integers(min_value=1, max_value=20), max_size=10),
)
def test_the_batch_path_alerts_exactly_like_tick_by_tick(
    ticks: list[Tick], threshold: float, lateness: float, load: int, cuts: list[int]
) -> None:
    with patch.object(alerts, "_LOAD", load):
        expected = run(ticks, WINDOW, threshold, lateness)
        state: AlertState | None = None
        actual: list[Alert] = []
        rest = ticks
        for size in [*cuts, len(ticks)]:
            state, emitted = alerts.on_ticks(state, rest[:size], WINDOW, threshold, lateness)
            actual += emitted
            rest = rest[size:]

    assert actual == expected
