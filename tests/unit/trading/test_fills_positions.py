"""fill_for (CONTRACT.md `fills`) and positions summed from fills (GET /positions)."""

from __future__ import annotations

import orjson

from fintank.trading.fills import fill_for
from fintank.trading.matcher import execute
from fintank.trading.positions import (
    EMPTY_POSITION,
    Position,
    apply_fill,
    position_from_json,
    position_json,
)
from fintank.trading.records import Fill
from tests.support.ticks import T0, tick
from tests.support.trading import component

NOW = T0 + 100


def buy_fill(symbol: str = "VTI", amount: float = 500.0, ask: float = 100.0) -> Fill:
    comp = component(symbol=symbol, order_type="BUY", amount=amount)
    return fill_for(execute(comp, tick(symbol=symbol, bid=ask - 0.1, ask=ask), NOW), NOW + 1)


def sell_fill(symbol: str = "VTI", amount: float = 500.0, bid: float = 100.0) -> Fill:
    comp = component(symbol=symbol, order_type="SELL", amount=amount)
    return fill_for(execute(comp, tick(symbol=symbol, bid=bid, ask=bid + 0.1), NOW), NOW + 1)


def test_buy_fill_is_a_full_fill_adding_shares_and_spending_cash() -> None:
    # Arrange
    execution = execute(component(amount=500.0), tick(ask=109.74), NOW)

    # Act
    fill = fill_for(execution, NOW + 1)

    # Assert
    assert fill == Fill(
        taxpayer_id=42,
        portfolio_order_id="po-1",
        component_order_id=execution.component_order_id,
        market_order_id=execution.market_order_id,
        execution_id=execution.execution_id,
        fill_id=execution.component_order_id + "/f",
        order_type="BUY",
        symbol="VTI",
        filled_amount=500.0,
        filled_shares=4.556224,
        filled_price=109.74,
        delta_shares_position=4.556224,
        delta_cash_position=-500.0,
        timestamp=NOW + 1,
    )


def test_sell_fill_removes_shares_and_adds_cash() -> None:
    fill = sell_fill(amount=300.0, bid=100.0)

    assert (fill.delta_shares_position, fill.delta_cash_position) == (-3.0, 300.0)


def test_new_position_is_zero_cash_and_no_holdings() -> None:
    assert position_json(42, EMPTY_POSITION) == {"taxpayer_id": 42, "cash": 0.0, "positions": {}}


def test_position_sums_fills_per_symbol() -> None:
    # Arrange
    fills = [buy_fill("VTI", 500.0, 100.0), buy_fill("IVE", 300.0, 50.0), sell_fill("VTI", 200.0)]

    # Act
    position = EMPTY_POSITION
    for fill in fills:
        position = apply_fill(position, fill)

    # Assert
    assert position_json("42", position) == {
        "taxpayer_id": "42",
        "cash": -600.0,
        "positions": {"IVE": 6.0, "VTI": 3.0},
    }


def test_position_sums_are_rounded_to_six_decimals() -> None:
    position = EMPTY_POSITION
    for _ in range(3):
        position = apply_fill(position, buy_fill(amount=0.1, ask=1.0))

    assert position == Position(cash=-0.3, shares=(("VTI", 0.3),))


def test_symbol_sold_to_zero_is_left_out() -> None:
    position = apply_fill(apply_fill(EMPTY_POSITION, buy_fill()), sell_fill())

    assert position == Position(cash=0.0, shares=())
    assert (
        orjson.dumps(position_json(1, position)) == b'{"taxpayer_id":1,"cash":0.0,"positions":{}}'
    )


def test_short_position_is_kept_negative() -> None:
    position = apply_fill(EMPTY_POSITION, sell_fill(amount=100.0, bid=50.0))

    assert position_json(7, position)["positions"] == {"VTI": -2.0}


def test_position_round_trips_through_json() -> None:
    position = apply_fill(apply_fill(EMPTY_POSITION, buy_fill("VTI")), buy_fill("IVE"))

    assert position_from_json(orjson.loads(orjson.dumps(position))) == position
