"""Indicators against the TA-Lib oracle (SMA, EMA, RSI in classic mode).

The one deliberate difference: RSI is 50 where the average gain and loss are
both 0, i.e. where no close has differed from the first one yet.
"""

from __future__ import annotations

import math

import numpy as np
import orjson
import talib
from hypothesis import given
from hypothesis import strategies as st

from fintank.analytics.indicators import IndicatorState, on_close
from tests.support.analytics import close_series, random_walk, walk_series

REL = 1e-9

Row = tuple[float | None, float | None, float | None]


def ours(closes: list[float], sma: int = 20, ema: int = 20, rsi: int = 14) -> list[Row]:
    state: IndicatorState | None = None
    rows: list[Row] = []
    for close in closes:
        state, s, e, r = on_close(state, close, sma, ema, rsi)
        rows.append((s, e, r))
    return rows


def oracle(closes: list[float], sma: int = 20, ema: int = 20, rsi: int = 14) -> list[Row]:
    """TA-Lib's rows (its default compatibility is classic, unstable periods 0)."""
    values = np.array(closes, dtype=float)
    columns = [talib.SMA(values, sma), talib.EMA(values, ema), talib.RSI(values, rsi)]
    rows: list[Row] = []
    for i in range(len(closes)):
        row = [None if math.isnan(col[i]) else float(col[i]) for col in columns]
        if row[2] == 0.0 and all(c == closes[0] for c in closes[: i + 1]):
            row[2] = 50.0  # fintank's deliberate difference: no change at all is neutral
        rows.append((row[0], row[1], row[2]))
    return rows


def assert_rows_match(actual: list[Row], expected: list[Row]) -> None:
    assert len(actual) == len(expected)
    for i, (got, want) in enumerate(zip(actual, expected, strict=True)):
        for name, g, w in zip(("sma", "ema", "rsi"), got, want, strict=True):
            if w is None:
                assert g is None, f"close {i}: {name} should be null, got {g}"
            else:
                assert g is not None, f"close {i}: {name} is null, TA-Lib says {w}"
                assert math.isclose(g, w, rel_tol=REL, abs_tol=0.0), f"close {i}: {name} {g} != {w}"


@given(st.one_of(close_series, walk_series()))
def test_default_periods_match_talib(closes: list[float]) -> None:
    if len(closes) < 2:  # TA-Lib wants at least one period of data to answer
        closes = closes + [100.0] * (2 - len(closes))
    assert_rows_match(ours(closes), oracle(closes))


@given(walk_series(max_size=60), st.integers(2, 30), st.integers(2, 30), st.integers(2, 30))
def test_any_periods_match_talib(closes: list[float], sma: int, ema: int, rsi: int) -> None:
    closes = closes + [100.0] * max(0, 2 - len(closes))
    assert_rows_match(ours(closes, sma, ema, rsi), oracle(closes, sma, ema, rsi))


def test_a_long_random_walk_matches_talib() -> None:
    closes = random_walk(5000, seed=20251121)

    assert_rows_match(ours(closes), oracle(closes))


def test_a_long_flat_stretch_after_a_move_matches_talib() -> None:
    closes = [100.0, 101.0] + [101.0] * 3000 + [100.5] * 10

    assert_rows_match(ours(closes), oracle(closes))


@given(walk_series(max_size=60), st.integers(0, 60))
def test_state_survives_a_json_round_trip(closes: list[float], cut: int) -> None:
    state: IndicatorState | None = None
    rows: list[Row] = []
    for i, close in enumerate(closes):
        if i == cut and state is not None:
            state = IndicatorState.from_dict(orjson.loads(orjson.dumps(state)))
        state, s, e, r = on_close(state, close)
        rows.append((s, e, r))

    assert rows == ours(closes)
