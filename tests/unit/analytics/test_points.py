"""Candles as InfluxDB line protocol (CONTRACT.md measurement `candles`)."""

from __future__ import annotations

from fintank.analytics.points import candle_line, start_ns
from tests.support.analytics import candle


def test_golden_candle_line() -> None:
    c = candle(start=1_763_722_800.0, open=109.725, high=109.8, low=109.7, close=109.75, count=3)

    line = candle_line(c)

    assert line == (
        "candles,interval=1m,symbol=VTI "
        "close=109.75,count=3i,high=109.8,low=109.7,open=109.725 1763722800000000000"
    )


def test_tag_values_are_escaped() -> None:
    line = candle_line(candle(symbol="BRK B,=x", interval="1s", open=10.5))

    assert line.startswith("candles,interval=1s,symbol=BRK\\ B\\,\\=x ")


def test_start_converts_to_nanoseconds_exactly() -> None:
    assert start_ns(1_763_722_860.0) == 1_763_722_860_000_000_000
