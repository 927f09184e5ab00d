"""Signals fire exactly at RSI crossings, never elsewhere."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from fintank.analytics.indicators import IndicatorState, Periods, indicator_for
from fintank.analytics.records import Signal
from fintank.analytics.signals import next_rsi, on_indicator
from tests.support.analytics import candle, indicator, walk_series

rsis = st.one_of(
    st.sampled_from([0.0, 29.999, 30.0, 30.001, 50.0, 69.999, 70.0, 70.001, 100.0]),
    st.floats(min_value=0.0, max_value=100.0),
)


@given(
    st.integers(0, 5), st.lists(rsis, max_size=60), st.sampled_from([(30.0, 70.0), (20.0, 80.0)])
)
def test_signals_exactly_at_crossings(
    warmup: int, values: list[float], thresholds: tuple[float, float]
) -> None:
    low, high = thresholds
    series: list[float | None] = [None] * warmup + list(values)
    prev: float | None = None
    for rsi in series:
        signal = on_indicator(prev, indicator(rsi=rsi), low, high)

        buy = prev is not None and rsi is not None and prev >= low > rsi
        sell = prev is not None and rsi is not None and prev <= high < rsi
        assert (signal is not None and signal.signal == "BUY") == buy
        assert (signal is not None and signal.signal == "SELL") == sell
        prev = next_rsi(prev, indicator(rsi=rsi))


@given(walk_series(max_size=150))
def test_same_side_signals_are_separated_by_a_return_across_the_threshold(
    closes: list[float],
) -> None:
    state: IndicatorState | None = None
    prev: float | None = None
    history: list[tuple[float, Signal | None]] = []
    for i, close in enumerate(closes):
        state, ind = indicator_for(candle(start=60.0 * i, open=close), state, Periods())
        signal = on_indicator(prev, ind)
        prev = next_rsi(prev, ind)
        if ind.rsi is not None:
            history.append((ind.rsi, signal))

    last_buy = last_sell = None
    for i, (rsi, signal) in enumerate(history):
        if signal is None:
            continue
        assert i > 0, "the first RSI never signals"
        assert signal.rsi == rsi
        if signal.signal == "BUY":
            if last_buy is not None:
                assert any(r >= 30.0 for r, _ in history[last_buy + 1 : i])
            last_buy = i
        else:
            if last_sell is not None:
                assert any(r <= 70.0 for r, _ in history[last_sell + 1 : i])
            last_sell = i
