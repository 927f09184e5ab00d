"""Trading records: portfolio orders, their components, executions and fills.

Frozen slotted dataclasses whose field order is the JSON field order of
CONTRACT.md, so ``orjson.dumps(record)`` is the wire format. Prices, amounts
and shares are floats; ids are strings; ``taxpayer_id`` is echoed as given
(an int or a string). The ``*_from_json`` functions read back table values,
which only fintank writes, so they trust the shape; records on topics (which
anyone with access can write) go through `fintank.trading.internal` instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

BUY = "BUY"
SELL = "SELL"

TaxpayerId = int | str


def taxpayer_key(taxpayer_id: TaxpayerId) -> str:
    """The one key of a taxpayer: ``42`` and ``"42"`` are the same taxpayer (CONTRACT.md)."""
    return taxpayer_id if type(taxpayer_id) is str else str(taxpayer_id)


@dataclass(frozen=True, slots=True)
class PortfolioEntry:
    """One line of a portfolio order: a symbol, its weight, and an optional limit price."""

    symbol: str
    weight: float
    limit_price: float | None = None


@dataclass(frozen=True, slots=True)
class PortfolioOrder:
    """A valid portfolio order (CONTRACT.md `orders`)."""

    taxpayer_id: TaxpayerId
    portfolio_order_id: str
    order_type: str  # BUY or SELL
    amount: float
    priority: int
    timestamp: float
    portfolio: tuple[PortfolioEntry, ...]


@dataclass(frozen=True, slots=True)
class ComponentOrder:
    """One symbol's share of a portfolio order (internal topic ``fintank-components``, key=symbol)."""

    taxpayer_id: TaxpayerId
    portfolio_order_id: str
    component_order_id: str
    order_type: str
    symbol: str
    amount: float
    priority: int
    limit_price: float | None
    timestamp: float  # event time: the portfolio order's timestamp
    # Where the Orders bolt read the portfolio order (orders partition, offset): how a
    # Market partition tells a re-sent component from a new one (fintank.trading.sources).
    source_partition: int | None = None
    source_offset: int | None = None


@dataclass(frozen=True, slots=True)
class Execution:
    """A component executed at a quote (CONTRACT.md `executions`, key=symbol)."""

    taxpayer_id: TaxpayerId
    portfolio_order_id: str
    component_order_id: str
    market_order_id: str
    execution_id: str
    order_type: str
    symbol: str
    requested_amount: float
    requested_shares: float
    requested_price: float
    quote_timestamp: float
    timestamp: float


@dataclass(frozen=True, slots=True)
class Fill:
    """The (v1: full) fill of an execution (CONTRACT.md `fills`, key=symbol)."""

    taxpayer_id: TaxpayerId
    portfolio_order_id: str
    component_order_id: str
    market_order_id: str
    execution_id: str
    fill_id: str
    order_type: str
    symbol: str
    filled_amount: float
    filled_shares: float
    filled_price: float
    delta_shares_position: float
    delta_cash_position: float
    timestamp: float


def component_from_json(obj: dict[str, Any]) -> ComponentOrder:
    """A `ComponentOrder` from its JSON object (as ``orjson.loads(orjson.dumps(component))``)."""
    limit = obj["limit_price"]
    return ComponentOrder(
        obj["taxpayer_id"],
        obj["portfolio_order_id"],
        obj["component_order_id"],
        obj["order_type"],
        obj["symbol"],
        float(obj["amount"]),
        obj["priority"],
        None if limit is None else float(limit),
        float(obj["timestamp"]),
        obj.get("source_partition"),
        obj.get("source_offset"),
    )


def execution_from_json(obj: dict[str, Any]) -> Execution:
    """An `Execution` from its contract JSON object."""
    return Execution(*(obj[name] for name in Execution.__dataclass_fields__))


def fill_from_json(obj: dict[str, Any]) -> Fill:
    """A `Fill` from its contract JSON object."""
    return Fill(*(obj[name] for name in Fill.__dataclass_fields__))
