"""Tick factories and strategies: give only the fields a test cares about."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import strategies as st

from fintank.records import Tick

T0 = 1_763_722_800.0  # 2025-11-21T11:00:00Z, a round event time for examples


def tick(
    symbol: str = "VTI",
    bid: float = 109.71,
    ask: float = 109.74,
    timestamp: float = T0,
    exchange: str = "NYSE",
) -> Tick:
    """A valid Tick with sensible defaults."""
    return Tick(symbol, exchange, float(bid), float(ask), float(timestamp))


def tick_json(**overrides: Any) -> bytes:
    """The wire bytes of a tick; ``overrides`` replace or add fields (``None`` removes one)."""
    obj: dict[str, Any] = {
        "symbol": "VTI",
        "exchange": "NYSE",
        "bid": 109.71,
        "ask": 109.74,
        "timestamp": T0,
    }
    for key, value in overrides.items():
        if value is None:
            obj.pop(key, None)
        else:
            obj[key] = value
    return orjson.dumps(obj)


symbols = st.sampled_from(["VTI", "IVE", "IWS", "SPY", "QQQ"])
prices = st.floats(min_value=0.01, max_value=10_000, allow_nan=False, allow_infinity=False)


@st.composite
def valid_ticks(draw: st.DrawFn, symbol: st.SearchStrategy[str] = symbols) -> Tick:
    """Any valid tick (bid <= ask, positive, finite)."""
    bid = draw(prices)
    spread = draw(st.floats(min_value=0, max_value=5, allow_nan=False))
    ts = draw(st.floats(min_value=1, max_value=2e9, allow_nan=False))
    return Tick(draw(symbol), draw(st.sampled_from(["NYSE", "NASDAQ", ""])), bid, bid + spread, ts)
