"""The signal bolt, one rule of CONTRACT.md `signals` per test."""

from __future__ import annotations

from fintank.analytics.records import Signal
from fintank.analytics.signals import next_rsi, on_indicator
from tests.support.analytics import START, indicator


def test_buy_when_rsi_crosses_below_30() -> None:
    signal = on_indicator(30.0, indicator(rsi=29.5, close=99.0))

    assert signal is not None
    assert (signal.signal, signal.rsi, signal.price) == ("BUY", 29.5, 99.0)


def test_sell_when_rsi_crosses_above_70() -> None:
    signal = on_indicator(70.0, indicator(rsi=70.5, close=101.0))

    assert signal is not None
    assert (signal.signal, signal.rsi, signal.price) == ("SELL", 70.5, 101.0)


def test_no_signal_while_rsi_stays_beyond_a_threshold() -> None:
    assert on_indicator(25.0, indicator(rsi=20.0)) is None
    assert on_indicator(75.0, indicator(rsi=80.0)) is None


def test_touching_a_threshold_is_not_crossing_it() -> None:
    assert on_indicator(31.0, indicator(rsi=30.0)) is None
    assert on_indicator(69.0, indicator(rsi=70.0)) is None


def test_the_first_rsi_never_signals() -> None:
    assert on_indicator(None, indicator(rsi=10.0)) is None


def test_no_rsi_no_signal() -> None:
    assert on_indicator(50.0, indicator(rsi=None)) is None


def test_thresholds_are_configurable() -> None:
    signal = on_indicator(21.0, indicator(rsi=19.0), low=20.0, high=80.0)

    assert signal is not None and signal.signal == "BUY"
    assert on_indicator(31.0, indicator(rsi=29.0), low=20.0, high=80.0) is None


def test_the_signal_names_its_candle_and_says_why() -> None:
    signal = on_indicator(35.0, indicator(rsi=25.0, close=98.0))

    assert signal == Signal(
        "VTI", "1m", START, "BUY", "RSI crossed below 30: from 35.0000 to 25.0000", 25.0, 98.0
    )


def test_the_state_keeps_the_last_known_rsi() -> None:
    assert next_rsi(None, indicator(rsi=None)) is None
    assert next_rsi(None, indicator(rsi=42.0)) == 42.0
    assert next_rsi(42.0, indicator(rsi=None)) == 42.0
