"""InfluxDB line protocol for the trading records (CONTRACT.md "InfluxDB measurements").

Built with `influxdb_client.Point`, so escaping and float formatting are
influxdb-client's own (orders are far from the hot path). Every price,
amount and share count is written as a float field, and so is ``priority``:
a field's type must never change within a measurement, and an integer field
cannot hold every JSON integer orjson accepts (up to 2**64 - 1), while a float
can. ``taxpayer_id`` tags are `taxpayer_key` values (42 and "42" are one
taxpayer). Time is the record's event time in ns, converted like every
other measurement (`fintank.sinks.lines.to_ns`): the order's timestamp for
portfolio orders and components, the record's ``timestamp`` for executions
and fills.
"""

from __future__ import annotations

from typing import Any

from influxdb_client.client.write.point import Point
from influxdb_client.domain.write_precision import WritePrecision

from fintank.sinks.lines import to_ns
from fintank.trading.records import (
    ComponentOrder,
    Execution,
    Fill,
    PortfolioOrder,
    taxpayer_key,
)


def portfolio_order_line(order: PortfolioOrder) -> str:
    """``portfolio_orders``: tags taxpayer_id, portfolio_order_id, order_type; amount, priority."""
    return _line(
        "portfolio_orders",
        {
            "taxpayer_id": taxpayer_key(order.taxpayer_id),
            "portfolio_order_id": order.portfolio_order_id,
            "order_type": order.order_type,
        },
        {"amount": float(order.amount), "priority": float(order.priority)},
        order.timestamp,
    )


def component_line(comp: ComponentOrder) -> str:
    """``portfolio_component_orders``: tags ids, order_type, symbol; fields amount, priority."""
    return _line(
        "portfolio_component_orders",
        {
            "taxpayer_id": taxpayer_key(comp.taxpayer_id),
            "portfolio_order_id": comp.portfolio_order_id,
            "component_order_id": comp.component_order_id,
            "order_type": comp.order_type,
            "symbol": comp.symbol,
        },
        {"amount": float(comp.amount), "priority": float(comp.priority)},
        comp.timestamp,
    )


def execution_line(execution: Execution) -> str:
    """``executions``: tags ids, order_type, symbol; fields requested_amount, _price, _shares."""
    return _line(
        "executions",
        {
            "taxpayer_id": taxpayer_key(execution.taxpayer_id),
            "portfolio_order_id": execution.portfolio_order_id,
            "component_order_id": execution.component_order_id,
            "market_order_id": execution.market_order_id,
            "execution_id": execution.execution_id,
            "order_type": execution.order_type,
            "symbol": execution.symbol,
        },
        {
            "requested_amount": float(execution.requested_amount),
            "requested_price": float(execution.requested_price),
            "requested_shares": float(execution.requested_shares),
        },
        execution.timestamp,
    )


def fill_line(fill: Fill) -> str:
    """``fills``: tags ids, order_type, symbol; fields filled_* and the two position deltas."""
    return _line(
        "fills",
        {
            "taxpayer_id": taxpayer_key(fill.taxpayer_id),
            "portfolio_order_id": fill.portfolio_order_id,
            "component_order_id": fill.component_order_id,
            "market_order_id": fill.market_order_id,
            "execution_id": fill.execution_id,
            "fill_id": fill.fill_id,
            "order_type": fill.order_type,
            "symbol": fill.symbol,
        },
        {
            "filled_amount": float(fill.filled_amount),
            "filled_price": float(fill.filled_price),
            "filled_shares": float(fill.filled_shares),
            "delta_shares_position": float(fill.delta_shares_position),
            "delta_cash_position": float(fill.delta_cash_position),
        },
        fill.timestamp,
    )


def _line(measurement: str, tags: dict[str, str], fields: dict[str, float], ts: float) -> str:
    point: Any = Point(measurement)  # type: ignore[no-untyped-call]
    for key, value in tags.items():
        point.tag(key, value)
    for key, number in fields.items():
        point.field(key, number)
    point.time(to_ns(ts), WritePrecision.NS)
    return str(point.to_line_protocol())
