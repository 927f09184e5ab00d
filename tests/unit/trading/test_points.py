"""Line protocol of the trading measurements: golden strings (CONTRACT.md InfluxDB table)."""

from __future__ import annotations

from fintank.trading.components import split
from fintank.trading.fills import fill_for
from fintank.trading.matcher import execute
from fintank.trading.points import (
    component_line,
    execution_line,
    fill_line,
    portfolio_order_line,
)
from tests.support.ticks import tick
from tests.support.trading import component, entry, order

T = 1763722800.5  # ns: 1763722800500000000


def test_portfolio_order_line() -> None:
    line = portfolio_order_line(order(timestamp=T))

    assert line == (
        "portfolio_orders,order_type=BUY,portfolio_order_id=po-1,taxpayer_id=42 "
        "amount=1000,priority=1 1763722800500000000"
    )


def test_component_line() -> None:
    comp = split(order(timestamp=T))[1]

    assert component_line(comp) == (
        "portfolio_component_orders,component_order_id=po-1/1,order_type=BUY,"
        "portfolio_order_id=po-1,symbol=IVE,taxpayer_id=42 amount=300,priority=1 "
        "1763722800500000000"
    )


def test_execution_line_uses_the_execution_timestamp() -> None:
    execution = execute(component(component_order_id="po-1/0"), tick(ask=109.74), now=T)

    assert execution_line(execution) == (
        "executions,component_order_id=po-1/0,execution_id=po-1/0/x,market_order_id=po-1/0/m,"
        "order_type=BUY,portfolio_order_id=po-1,symbol=VTI,taxpayer_id=42 "
        "requested_amount=500,requested_price=109.74,requested_shares=4.556224 "
        "1763722800500000000"
    )


def test_fill_line_uses_the_fill_timestamp() -> None:
    execution = execute(component(order_type="SELL", component_order_id="po-1/0"), tick(), 1.0)

    line = fill_line(fill_for(execution, now=T))

    assert line == (
        "fills,component_order_id=po-1/0,execution_id=po-1/0/x,fill_id=po-1/0/f,"
        "market_order_id=po-1/0/m,order_type=SELL,portfolio_order_id=po-1,symbol=VTI,"
        "taxpayer_id=42 delta_cash_position=500,delta_shares_position=-4.55747,"
        "filled_amount=500,filled_price=109.71,filled_shares=4.55747 1763722800500000000"
    )


def test_whole_numbers_stay_float_fields_and_priority_never_an_integer_field() -> None:
    line = portfolio_order_line(order(amount=1000, priority=2**64 - 1, timestamp=T))

    fields = line.split(" ")[1]
    assert "i" not in fields.replace("priority", "")
    assert fields == "amount=1000,priority=1.8446744073709552e+19"


def test_tags_are_escaped_and_taxpayer_42_and_quoted_42_share_a_tag() -> None:
    po = order(entry("BRK B", 1.0), portfolio_order_id="po,1=x", taxpayer_id="42", timestamp=T)

    assert portfolio_order_line(po) == portfolio_order_line(
        order(entry("BRK B", 1.0), portfolio_order_id="po,1=x", taxpayer_id=42, timestamp=T)
    )
    assert component_line(split(po)[0]).startswith(
        r"portfolio_component_orders,component_order_id=po\,1\=x/0,order_type=BUY,"
        r"portfolio_order_id=po\,1\=x,symbol=BRK\ B,taxpayer_id=42 "
    )
