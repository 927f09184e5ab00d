"""Trading factories and strategies: give only the fields a test cares about."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson
from hypothesis import strategies as st

from fintank.trading.records import ComponentOrder, PortfolioEntry, PortfolioOrder
from tests.support.ticks import T0

DROP = object()  # an override that removes a field (``None`` writes JSON null)


def example_order_obj() -> dict[str, Any]:
    """The portfolio order of CONTRACT.md `orders`, as a JSON object."""
    return {
        "taxpayer_id": 42,
        "portfolio_order_id": "po-1",
        "order_type": "BUY",
        "amount": 1000.0,
        "priority": 1,
        "timestamp": T0 + 0.5,
        "portfolio": [
            {"symbol": "VTI", "weight": 0.5},
            {"symbol": "IVE", "weight": 0.3, "limit_price": 94.0},
            {"symbol": "IWS", "weight": 0.2},
        ],
    }


def order_json(**overrides: Any) -> bytes:
    """Wire bytes of the contract's example order; overrides replace fields (`DROP` removes)."""
    obj = example_order_obj()
    for key, value in overrides.items():
        if value is DROP:
            obj.pop(key, None)
        else:
            obj[key] = value
    return orjson.dumps(obj)


def portfolio_json(*entries: dict[str, Any], **overrides: Any) -> bytes:
    """Wire bytes of the example order with ``entries`` as its portfolio."""
    return order_json(portfolio=list(entries), **overrides)


def entry(
    symbol: str = "VTI", weight: float = 1.0, limit_price: float | None = None
) -> PortfolioEntry:
    """A portfolio entry (default: all of the order in VTI, no limit)."""
    return PortfolioEntry(symbol, weight, limit_price)


def order(
    *entries: PortfolioEntry,
    order_type: str = "BUY",
    amount: float = 1000.0,
    portfolio_order_id: str = "po-1",
    taxpayer_id: int | str = 42,
    priority: int = 1,
    timestamp: float = T0 + 0.5,
) -> PortfolioOrder:
    """A valid portfolio order; without entries, the contract's example portfolio."""
    portfolio = entries or (
        PortfolioEntry("VTI", 0.5),
        PortfolioEntry("IVE", 0.3, 94.0),
        PortfolioEntry("IWS", 0.2),
    )
    return PortfolioOrder(
        taxpayer_id, portfolio_order_id, order_type, amount, priority, timestamp, tuple(portfolio)
    )


def component(
    symbol: str = "VTI",
    order_type: str = "BUY",
    amount: float = 500.0,
    limit_price: float | None = None,
    component_order_id: str | None = None,
    portfolio_order_id: str = "po-1",
    taxpayer_id: int | str = 42,
    priority: int = 1,
    timestamp: float = T0 + 0.5,
) -> ComponentOrder:
    """A component order (default: a 500.0 market BUY of VTI)."""
    return ComponentOrder(
        taxpayer_id,
        portfolio_order_id,
        component_order_id or f"{portfolio_order_id}/{symbol}",
        order_type,
        symbol,
        amount,
        priority,
        limit_price,
        timestamp,
    )


# --- strategies -------------------------------------------------------------------

sides = st.sampled_from(["BUY", "SELL"])
amounts = st.floats(min_value=0.01, max_value=1e9, allow_nan=False, allow_infinity=False)
limit_prices = st.none() | st.floats(min_value=0.01, max_value=10_000, allow_nan=False)
taxpayer_ids = st.integers(min_value=-(2**63), max_value=2**64 - 1) | st.text(min_size=1)
ids = st.text(min_size=1, max_size=20) | st.sampled_from(["a", "a/0", "a/1", "a/0/1", "1"])


@st.composite
def weights(draw: st.DrawFn, n: int) -> list[float]:
    """``n`` weights >= 0 summing to 1 (exactly, up to float rounding), zeros allowed."""
    parts = draw(st.lists(st.integers(0, 1000), min_size=n, max_size=n))
    if sum(parts) == 0:
        parts[draw(st.integers(0, n - 1))] = 1
    total = sum(parts)
    return [p / total for p in parts]


@st.composite
def portfolio_order_objs(draw: st.DrawFn) -> dict[str, Any]:
    """Any valid portfolio order as a JSON object (distinct symbols, weights sum to 1)."""
    symbols = draw(
        st.lists(
            st.text(min_size=1, max_size=8) | st.sampled_from(["0", "1", "0/1", "1/X", "X"]),
            min_size=1,
            max_size=6,
            unique=True,
        )
    )
    portfolio: list[dict[str, Any]] = []
    for symbol, weight in zip(symbols, draw(weights(len(symbols))), strict=True):
        item: dict[str, Any] = {"symbol": symbol, "weight": weight}
        limit = draw(st.sampled_from(["absent", "null", "number"]))
        if limit == "null":
            item["limit_price"] = None
        elif limit == "number":
            item["limit_price"] = draw(st.floats(min_value=1e-6, max_value=1e6))
        portfolio.append(item)
    return {
        "taxpayer_id": draw(taxpayer_ids),
        "portfolio_order_id": draw(ids),
        "order_type": draw(sides),
        "amount": draw(amounts | st.integers(1, 10**9)),
        "priority": draw(st.integers(-(2**63), 2**64 - 1)),
        "timestamp": draw(st.floats(min_value=1e-3, max_value=4e9)),
        "portfolio": portfolio,
    }


@st.composite
def portfolio_orders(draw: st.DrawFn) -> PortfolioOrder:
    """Any valid `PortfolioOrder` (as `parse_order` would build it)."""
    obj = draw(portfolio_order_objs())
    return PortfolioOrder(
        obj["taxpayer_id"],
        obj["portfolio_order_id"],
        obj["order_type"],
        float(obj["amount"]),
        obj["priority"],
        float(obj["timestamp"]),
        tuple(
            PortfolioEntry(e["symbol"], float(e["weight"]), e.get("limit_price"))
            for e in obj["portfolio"]
        ),
    )


@st.composite
def components(draw: st.DrawFn, symbol: str = "VTI", cid: str | None = None) -> ComponentOrder:
    """Any component order (market or limit) of ``symbol``."""
    return component(
        symbol=symbol,
        order_type=draw(sides),
        amount=round(draw(amounts), 6),
        limit_price=draw(limit_prices),
        component_order_id=cid or draw(ids),
    )


@dataclass
class RecordingTable:
    """A state table double: ``get`` what was written last; every write kept in order.

    Bolts write through ``stage`` (books) or ``set`` (accounts): the same here.
    """

    data: dict[str, Any] = field(default_factory=dict)
    writes: list[tuple[int, str, Any]] = field(default_factory=list)

    def get(self, key: str) -> Any:
        return self.data.get(key)

    def stage(self, partition: int, key: str, value: Any) -> None:
        self.data[key] = value
        self.writes.append((partition, key, value))

    set = stage
