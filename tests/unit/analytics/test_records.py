"""Analytics records serialise to exactly the JSON of CONTRACT.md."""

from __future__ import annotations

import orjson

from fintank.analytics.records import Alert, Candle, Indicator, Signal
from tests.support.ticks import T0


def test_candle_serialises_to_the_contract_bytes() -> None:
    # Arrange
    candle = Candle("VTI", "1m", T0, 109.725, 109.8, 109.7, 109.75, 3)

    # Act
    wire = orjson.dumps(candle)

    # Assert
    assert wire == (
        b'{"symbol":"VTI","interval":"1m","start":1763722800.0,'
        b'"open":109.725,"high":109.8,"low":109.7,"close":109.75,"count":3}'
    )


def test_indicator_serialises_missing_values_as_null() -> None:
    indicator = Indicator("VTI", "1s", T0, 101.5, None, None, None)

    wire = orjson.dumps(indicator)

    assert wire == (
        b'{"symbol":"VTI","interval":"1s","start":1763722800.0,'
        b'"close":101.5,"sma":null,"ema":null,"rsi":null}'
    )


def test_signal_fields_are_in_contract_order() -> None:
    signal = Signal("VTI", "1m", T0, "BUY", "RSI crossed below 30", 28.5, 99.0)

    keys = list(orjson.loads(orjson.dumps(signal)))

    assert keys == ["symbol", "interval", "start", "signal", "reason", "rsi", "price"]


def test_alert_fields_are_in_contract_order() -> None:
    alert = Alert("VTI", "UP", 5.0, 300, 100.0, 105.0, T0)

    keys = list(orjson.loads(orjson.dumps(alert)))

    assert keys == [
        "symbol",
        "direction",
        "change_pct",
        "window_s",
        "reference_price",
        "price",
        "timestamp",
    ]
