"""A taxpayer's position, summed from fills (CONTRACT.md ``GET /positions/{taxpayer_id}``).

The topology keeps one `Position` per taxpayer in a table keyed by
`fintank.trading.records.taxpayer_key` (so 42 and "42" share one). A
`Position` is a frozen dataclass of a float and a tuple, so orjson writes it
as ``{"cash": ..., "shares": [["VTI", 1.5], ...]}`` and `position_from_json`
reads it back.

Sums are rounded with ``round(x, 6)`` after each fill: every delta is already
a 6-decimal value, so rounding only removes binary noise (0.1 + 0.2), makes
the result independent of fill order, and turns a position sold down to
nothing into exactly 0, which is then dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fintank.trading.records import Fill, TaxpayerId


@dataclass(frozen=True, slots=True)
class Position:
    """Cash and shares per symbol (sorted by symbol, no zero holdings)."""

    cash: float = 0.0
    shares: tuple[tuple[str, float], ...] = ()


EMPTY_POSITION = Position()


def apply_fill(position: Position, fill: Fill) -> Position:
    """The position after ``fill``: cash += delta_cash, shares[symbol] += delta_shares.

    Not idempotent: the caller applies each ``fill_id`` once (see `fintank.trading`).
    """
    cash = round(position.cash + fill.delta_cash_position, 6)
    symbol = fill.symbol
    holdings = dict(position.shares)
    held = round(holdings.get(symbol, 0.0) + fill.delta_shares_position, 6)
    if held == 0:
        holdings.pop(symbol, None)
    else:
        holdings[symbol] = held
    return Position(cash + 0.0, tuple(sorted(holdings.items())))  # + 0.0: no -0.0 cash


def position_json(taxpayer_id: TaxpayerId, position: Position) -> dict[str, Any]:
    """The ``GET /positions/{taxpayer_id}`` body: ``{"taxpayer_id", "cash", "positions"}``."""
    return {
        "taxpayer_id": taxpayer_id,
        "cash": position.cash,
        "positions": dict(position.shares),
    }


def position_from_json(obj: dict[str, Any]) -> Position:
    """A `Position` from its JSON object (as ``orjson.loads(orjson.dumps(position))``)."""
    return Position(
        float(obj["cash"]), tuple((symbol, float(shares)) for symbol, shares in obj["shares"])
    )
