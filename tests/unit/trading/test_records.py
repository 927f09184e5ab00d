"""Trading records are the wire format: orjson.dumps(record) is the contract's JSON."""

from __future__ import annotations

import orjson

from fintank.trading.records import (
    ComponentOrder,
    Execution,
    Fill,
    component_from_json,
    execution_from_json,
    fill_from_json,
    taxpayer_key,
)
from tests.support.trading import component

EXECUTION = Execution(
    taxpayer_id=42,
    portfolio_order_id="po-1",
    component_order_id="po-1/0",
    market_order_id="po-1/0/m",
    execution_id="po-1/0/x",
    order_type="BUY",
    symbol="VTI",
    requested_amount=500.0,
    requested_shares=4.556224,
    requested_price=109.74,
    quote_timestamp=1763722800.125,
    timestamp=1763722801.5,
)

FILL = Fill(
    taxpayer_id="42",
    portfolio_order_id="po-1",
    component_order_id="po-1/0",
    market_order_id="po-1/0/m",
    execution_id="po-1/0/x",
    fill_id="po-1/0/f",
    order_type="SELL",
    symbol="VTI",
    filled_amount=500.0,
    filled_shares=4.556224,
    filled_price=109.74,
    delta_shares_position=-4.556224,
    delta_cash_position=500.0,
    timestamp=1763722801.5,
)


def test_execution_json_is_exactly_the_contract_fields_in_order() -> None:
    assert orjson.dumps(EXECUTION) == (
        b'{"taxpayer_id":42,"portfolio_order_id":"po-1","component_order_id":"po-1/0",'
        b'"market_order_id":"po-1/0/m","execution_id":"po-1/0/x","order_type":"BUY",'
        b'"symbol":"VTI","requested_amount":500.0,"requested_shares":4.556224,'
        b'"requested_price":109.74,"quote_timestamp":1763722800.125,"timestamp":1763722801.5}'
    )


def test_fill_json_is_exactly_the_contract_fields_in_order() -> None:
    assert orjson.dumps(FILL) == (
        b'{"taxpayer_id":"42","portfolio_order_id":"po-1","component_order_id":"po-1/0",'
        b'"market_order_id":"po-1/0/m","execution_id":"po-1/0/x","fill_id":"po-1/0/f",'
        b'"order_type":"SELL","symbol":"VTI","filled_amount":500.0,"filled_shares":4.556224,'
        b'"filled_price":109.74,"delta_shares_position":-4.556224,"delta_cash_position":500.0,'
        b'"timestamp":1763722801.5}'
    )


def test_component_json_golden_bytes() -> None:
    comp = ComponentOrder(42, "po-1", "po-1/1", "BUY", "IVE", 300.0, 1, 94.0, 1763722800.5)

    assert orjson.dumps(comp) == (
        b'{"taxpayer_id":42,"portfolio_order_id":"po-1","component_order_id":"po-1/1",'
        b'"order_type":"BUY","symbol":"IVE","amount":300.0,"priority":1,"limit_price":94.0,'
        b'"timestamp":1763722800.5,"source_partition":null,"source_offset":null}'
    )


def test_records_round_trip_through_json() -> None:
    market, limit = component(taxpayer_id="7"), component(limit_price=94.0, priority=-2)

    assert component_from_json(orjson.loads(orjson.dumps(market))) == market
    assert component_from_json(orjson.loads(orjson.dumps(limit))) == limit
    assert execution_from_json(orjson.loads(orjson.dumps(EXECUTION))) == EXECUTION
    assert fill_from_json(orjson.loads(orjson.dumps(FILL))) == FILL


def test_component_from_json_makes_integer_numbers_floats() -> None:
    obj = orjson.loads(orjson.dumps(component()))
    obj.update(amount=500, limit_price=94, timestamp=1763722800)

    comp = component_from_json(obj)

    assert (type(comp.amount), type(comp.limit_price), type(comp.timestamp)) == (float,) * 3


def test_42_and_quoted_42_are_the_same_taxpayer() -> None:
    assert taxpayer_key(42) == taxpayer_key("42") == "42"
    assert taxpayer_key("alice") == "alice"
