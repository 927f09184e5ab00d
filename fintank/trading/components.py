"""Split a portfolio order into its component orders (CONTRACT.md rule 1)."""

from __future__ import annotations

from fintank.trading.ids import component_order_id
from fintank.trading.records import ComponentOrder, PortfolioOrder


def split(order: PortfolioOrder) -> list[ComponentOrder]:
    """One component per entry with weight > 0, in portfolio order.

    amount = ``round(order.amount * weight, 6)`` (it may round to 0.0 for a
    tiny order; the contract still makes it a component). The id is
    `fintank.trading.ids.component_order_id` of the entry's index; the
    timestamp is the portfolio order's (event time), so the split is a pure
    function of the order and a repeat yields identical components.
    """
    po_id = order.portfolio_order_id
    return [
        ComponentOrder(
            order.taxpayer_id,
            po_id,
            component_order_id(po_id, index),
            order.order_type,
            entry.symbol,
            round(order.amount * entry.weight, 6),
            order.priority,
            entry.limit_price,
            order.timestamp,
        )
        for index, entry in enumerate(order.portfolio)
        if entry.weight > 0
    ]
