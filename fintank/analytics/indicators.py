"""The indicator bolt: closed candles -> SMA, EMA and RSI (CONTRACT.md `indicators`).

Streaming and O(1) per close (the SMA sums its window of ``sma`` closes). The
numbers are those of TA-Lib's SMA, EMA and RSI in classic mode, computed with
TA-Lib's own operations in TA-Lib's order where that order matters:

- SMA(n): mean of the last n closes. The window is summed afresh with
  ``math.fsum`` rather than kept as a running total, so no error accumulates
  over months of closes (TA-Lib's running total drifts by a few ULPs; that
  stays far inside 1e-9 relative).
- EMA(n): None for the first n-1 closes; at close n the mean of the first n
  closes (summed left to right as TA-Lib does); then
  ``ema = (close - ema) * k + ema`` with ``k = 2 / (n + 1)``.
- RSI(n), Wilder: the first n changes are summed (gains and losses apart) and
  divided by n, giving the first value after n+1 closes; then
  ``avg = (avg * (n - 1) + change) / n``; RSI = 100 * gain / (gain + loss).
  The one deliberate difference from TA-Lib: when both averages are exactly
  0 (no price change at all), RSI is 50, where TA-Lib says 0.

State is a small frozen `IndicatorState` of plain numbers (orjson-serialisable).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fintank.analytics.records import Candle, Indicator
from fintank.errors import ConfigError

# TA-Lib accepts periods 2..100000 for SMA, EMA and RSI.
MIN_PERIOD = 2
MAX_PERIOD = 100_000


@dataclass(frozen=True, slots=True)
class Periods:
    """Indicator periods (CONTRACT.md defaults: SMA 20, EMA 20, RSI 14)."""

    sma: int = 20
    ema: int = 20
    rsi: int = 14

    def __post_init__(self) -> None:
        for name in ("sma", "ema", "rsi"):
            value = getattr(self, name)
            if type(value) is not int or not MIN_PERIOD <= value <= MAX_PERIOD:
                raise ConfigError(
                    f"{name} period must be an integer {MIN_PERIOD}..{MAX_PERIOD}, got {value!r}"
                )


@dataclass(frozen=True, slots=True)
class IndicatorState:
    """Indicator state for one symbol and interval, tied to one set of periods.

    ``window``: the last ``sma`` closes, oldest first. ``ema_sum``: running sum
    of the first ``ema`` closes (the EMA's seed) until ``ema`` is set.
    ``gain`` / ``loss``: sums of the first ``rsi`` gains / losses while
    ``count <= rsi``, Wilder's averages after that.
    """

    count: int = 0
    window: tuple[float, ...] = ()
    ema: float | None = None
    ema_sum: float = 0.0
    prev_close: float | None = None
    gain: float = 0.0
    loss: float = 0.0

    @classmethod
    def from_dict(cls, obj: Mapping[str, Any]) -> IndicatorState:
        """Rebuild a state from its JSON object (orjson turns the window tuple into a list)."""
        return cls(**{**obj, "window": tuple(obj["window"])})


def on_close(
    state: IndicatorState | None,
    close: float,
    sma_period: int = 20,
    ema_period: int = 20,
    rsi_period: int = 14,
) -> tuple[IndicatorState, float | None, float | None, float | None]:
    """Fold one close price in: (new state, sma, ema, rsi), each None until enough closes."""
    if state is None:
        state = IndicatorState()
    count = state.count + 1

    window = (*state.window[1 - sma_period :], close) if sma_period > 1 else (close,)
    sma = math.fsum(window) / sma_period if len(window) == sma_period else None

    ema, ema_sum = state.ema, state.ema_sum
    if ema is not None:
        ema = ((close - ema) * (2.0 / (ema_period + 1))) + ema
    else:
        ema_sum += close
        if count == ema_period:
            ema = ema_sum / ema_period

    gain, loss, rsi = state.gain, state.loss, None
    prev = state.prev_close
    if prev is not None:
        change = close - prev
        changes = count - 1
        if changes <= rsi_period:
            if change < 0.0:
                loss -= change
            else:
                gain += change
            if changes == rsi_period:
                loss /= rsi_period
                gain /= rsi_period
                rsi = _rsi(gain, loss)
        else:
            loss *= rsi_period - 1
            gain *= rsi_period - 1
            if change < 0.0:
                loss -= change
            else:
                gain += change
            loss /= rsi_period
            gain /= rsi_period
            rsi = _rsi(gain, loss)

    new_state = IndicatorState(count, window, ema, ema_sum, close, gain, loss)
    return new_state, sma, ema, rsi


def indicator_for(
    candle: Candle, state: IndicatorState | None, periods: Periods = Periods()
) -> tuple[IndicatorState, Indicator]:
    """The bolt: one closed candle -> (new state, its `Indicator` record)."""
    new_state, sma, ema, rsi = on_close(state, candle.close, periods.sma, periods.ema, periods.rsi)
    indicator = Indicator(candle.symbol, candle.interval, candle.start, candle.close, sma, ema, rsi)
    return new_state, indicator


def _rsi(gain: float, loss: float) -> float:
    total = gain + loss
    if total == 0.0:
        return 50.0  # no price change at all: neutral (TA-Lib says 0 here)
    return 100.0 * (gain / total)
