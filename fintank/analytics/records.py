"""Analytics records (CONTRACT.md `candles`, `indicators`, `signals`, `alerts`).

Frozen slotted dataclasses whose fields are declared in the contract's order,
so ``orjson.dumps(record)`` is the wire format as it stands.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Candle:
    """A final OHLC candle of mid prices for one symbol, interval and window start."""

    symbol: str
    interval: str
    start: float
    open: float
    high: float
    low: float
    close: float
    count: int


@dataclass(frozen=True, slots=True)
class Indicator:
    """SMA, EMA and RSI on the closes of one symbol and interval, after one closed candle."""

    symbol: str
    interval: str
    start: float
    close: float
    sma: float | None
    ema: float | None
    rsi: float | None


@dataclass(frozen=True, slots=True)
class Signal:
    """An RSI crossing: BUY below the low threshold, SELL above the high one."""

    symbol: str
    interval: str
    start: float
    signal: str
    reason: str
    rsi: float
    price: float


@dataclass(frozen=True, slots=True)
class Alert:
    """A "hot mover": the mid moved by at least the threshold within the trailing window."""

    symbol: str
    direction: str
    change_pct: float
    window_s: float
    reference_price: float
    price: float
    timestamp: float
