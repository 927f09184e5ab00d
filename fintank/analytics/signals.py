"""The signal bolt: indicators -> RSI crossing signals (CONTRACT.md `signals`).

BUY when the RSI crosses below the low threshold (previous >= low, current <
low), SELL when it crosses above the high one (previous <= high, current >
high). The state is the previous RSI of the symbol and interval (None before
the first non-null RSI, which therefore never signals).
"""

from __future__ import annotations

from fintank.analytics.records import Indicator, Signal

BUY = "BUY"
SELL = "SELL"


def on_indicator(
    prev_rsi: float | None, ind: Indicator, low: float = 30.0, high: float = 70.0
) -> Signal | None:
    """The signal the indicator ``ind`` triggers after ``prev_rsi``, or None.

    The caller keeps ``ind.rsi`` as the next ``prev_rsi`` (see `next_rsi`).
    """
    rsi = ind.rsi
    if prev_rsi is None or rsi is None:
        return None
    if prev_rsi >= low and rsi < low:
        reason = f"RSI crossed below {low:g}: from {prev_rsi:.4f} to {rsi:.4f}"
        return Signal(ind.symbol, ind.interval, ind.start, BUY, reason, rsi, ind.close)
    if prev_rsi <= high and rsi > high:
        reason = f"RSI crossed above {high:g}: from {prev_rsi:.4f} to {rsi:.4f}"
        return Signal(ind.symbol, ind.interval, ind.start, SELL, reason, rsi, ind.close)
    return None


def next_rsi(prev_rsi: float | None, ind: Indicator) -> float | None:
    """The state to keep after ``ind``: its RSI, or the previous one while it has none."""
    return prev_rsi if ind.rsi is None else ind.rsi
