"""The indicator bolt, one rule of CONTRACT.md `indicators` per test."""

from __future__ import annotations

import orjson
import pytest

from fintank.analytics.indicators import IndicatorState, Periods, indicator_for, on_close
from fintank.analytics.records import Indicator
from fintank.errors import ConfigError
from tests.support.analytics import candle


def run(
    closes: list[float], sma: int = 20, ema: int = 20, rsi: int = 14
) -> list[tuple[float | None, float | None, float | None]]:
    state: IndicatorState | None = None
    out = []
    for close in closes:
        state, *values = on_close(state, close, sma, ema, rsi)
        out.append((values[0], values[1], values[2]))
    return out


def test_values_are_null_until_enough_closes() -> None:
    out = run([float(100 + i % 3) for i in range(20)])

    assert [s is not None for s, _, _ in out] == [False] * 19 + [True]
    assert [e is not None for _, e, _ in out] == [False] * 19 + [True]
    assert [r is not None for _, _, r in out] == [False] * 14 + [True] * 6


def test_sma_is_the_mean_of_the_last_n_closes() -> None:
    closes = [1.0, 2.0, 3.0, 4.0, 5.0]

    out = run(closes, sma=3)

    assert [s for s, _, _ in out] == [None, None, 2.0, 3.0, 4.0]


def test_ema_is_seeded_with_the_sma_of_the_first_n_closes() -> None:
    closes = [1.0, 2.0, 3.0, 10.0]

    out = run(closes, ema=3)

    k = 2 / (3 + 1)
    assert [e for _, e, _ in out] == [None, None, 2.0, (10.0 - 2.0) * k + 2.0]


def test_rsi_first_value_uses_the_simple_mean_of_the_first_changes() -> None:
    # Changes +2, -1: average gain 2/2, average loss 1/2.
    out = run([10.0, 12.0, 11.0], rsi=2)

    assert out[-1][2] == pytest.approx(100 * 1.0 / (1.0 + 0.5))


def test_rsi_then_uses_wilder_smoothing() -> None:
    # After the seed (gain 1.0, loss 0.5), a change of +3: gain (1*1+3)/2, loss 0.5/2.
    out = run([10.0, 12.0, 11.0, 14.0], rsi=2)

    gain, loss = (1.0 * 1 + 3.0) / 2, (0.5 * 1) / 2
    assert out[-1][2] == pytest.approx(100 * gain / (gain + loss))


def test_rsi_is_50_when_the_price_never_changes() -> None:
    out = run([100.0] * 20)

    assert [r for _, _, r in out][14:] == [50.0] * 6


def test_rsi_is_100_with_only_gains_and_0_with_only_losses() -> None:
    up = run([float(i) for i in range(1, 17)])
    down = run([float(i) for i in range(17, 1, -1)])

    assert up[-1][2] == 100.0
    assert down[-1][2] == 0.0


def test_indicator_for_builds_the_record_of_a_candle() -> None:
    state = None
    for i in range(19):
        state, _ = indicator_for(candle(start=60.0 * i, open=100.0), state)

    _, record = indicator_for(candle(start=60.0 * 19, open=100.0), state)

    assert record == Indicator("VTI", "1m", 60.0 * 19, 100.0, 100.0, 100.0, 50.0)


def test_periods_outside_talib_range_are_rejected() -> None:
    with pytest.raises(ConfigError, match="sma period"):
        Periods(sma=1)


def test_state_round_trips_through_json() -> None:
    state = None
    for close in [100.0, 101.5, 99.25, 102.0]:
        state, *_ = on_close(state, close, 3, 3, 2)
    assert state is not None

    restored = IndicatorState.from_dict(orjson.loads(orjson.dumps(state)))

    assert restored == state
