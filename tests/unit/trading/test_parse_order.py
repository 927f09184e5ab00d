"""parse_order: every validity rule of CONTRACT.md `orders`, one test each."""

from __future__ import annotations

import pytest

from fintank.trading.orders import parse_order
from fintank.trading.records import PortfolioEntry, PortfolioOrder
from tests.support.ticks import T0
from tests.support.trading import DROP, order_json, portfolio_json


def reason(raw: bytes | None) -> str:
    result = parse_order(raw)
    assert isinstance(result, str), f"expected a rejection, got {result!r}"
    return result


def accepted(raw: bytes) -> PortfolioOrder:
    result = parse_order(raw)
    assert isinstance(result, PortfolioOrder), result
    return result


# --- the contract's example ------------------------------------------------------


def test_contract_example_is_accepted_whole() -> None:
    # Arrange
    raw = order_json()

    # Act
    result = parse_order(raw)

    # Assert
    assert result == PortfolioOrder(
        taxpayer_id=42,
        portfolio_order_id="po-1",
        order_type="BUY",
        amount=1000.0,
        priority=1,
        timestamp=T0 + 0.5,
        portfolio=(
            PortfolioEntry("VTI", 0.5, None),
            PortfolioEntry("IVE", 0.3, 94.0),
            PortfolioEntry("IWS", 0.2, None),
        ),
    )


def test_integer_numbers_become_floats() -> None:
    raw = portfolio_json(
        {"symbol": "VTI", "weight": 1, "limit_price": 100}, amount=1000, timestamp=1763722800
    )

    order = accepted(raw)

    assert type(order.amount) is float and order.amount == 1000.0
    assert type(order.timestamp) is float
    assert type(order.portfolio[0].weight) is float
    assert type(order.portfolio[0].limit_price) is float


def test_unknown_fields_are_allowed() -> None:
    raw = order_json(comment="optional fields may be added")

    assert isinstance(parse_order(raw), PortfolioOrder)


# --- the record as a whole -------------------------------------------------------


def test_null_value_is_rejected() -> None:
    assert "null" in reason(None)


def test_bad_json_is_rejected() -> None:
    assert "not valid JSON" in reason(b'{"taxpayer_id": 42,')


def test_non_utf8_is_rejected() -> None:
    assert "not valid JSON" in reason(b"\xff\xfe")


def test_json_that_is_not_an_object_is_rejected() -> None:
    assert "JSON object" in reason(b"[1, 2]")


# --- taxpayer_id -----------------------------------------------------------------


@pytest.mark.parametrize("taxpayer_id", [42, "42", 0, -7, "alice", 2**64 - 1])
def test_taxpayer_id_integer_or_non_empty_string_is_echoed_as_given(
    taxpayer_id: int | str,
) -> None:
    order = accepted(order_json(taxpayer_id=taxpayer_id))

    assert order.taxpayer_id == taxpayer_id
    assert type(order.taxpayer_id) is type(taxpayer_id)


def test_taxpayer_id_missing_is_rejected() -> None:
    assert "taxpayer_id" in reason(order_json(taxpayer_id=DROP))


def test_taxpayer_id_empty_string_is_rejected() -> None:
    assert reason(order_json(taxpayer_id="")) == "taxpayer_id must not be empty"


@pytest.mark.parametrize("written", [b"42.0", b"4.2e1", b"1E2"])
def test_taxpayer_id_with_fraction_or_exponent_is_not_an_integer(written: bytes) -> None:
    raw = order_json(taxpayer_id=0).replace(b'"taxpayer_id":0', b'"taxpayer_id":' + written)

    assert "taxpayer_id must be an integer" in reason(raw)


def test_taxpayer_id_beyond_64_bits_is_rejected() -> None:
    raw = order_json(taxpayer_id=0).replace(
        b'"taxpayer_id":0', b'"taxpayer_id":18446744073709551616'
    )

    assert "64 bits" in reason(raw)


@pytest.mark.parametrize("taxpayer_id", [True, None, [42], {"id": 42}])
def test_taxpayer_id_of_another_type_is_rejected(taxpayer_id: object) -> None:
    assert "taxpayer_id" in reason(order_json(taxpayer_id=taxpayer_id))


# --- portfolio_order_id, order_type ----------------------------------------------


@pytest.mark.parametrize("order_id", ["", 1, None, DROP])
def test_portfolio_order_id_must_be_a_non_empty_string(order_id: object) -> None:
    assert "portfolio_order_id" in reason(order_json(portfolio_order_id=order_id))


@pytest.mark.parametrize("side", ["SELL", "BUY"])
def test_order_type_buy_or_sell_is_accepted(side: str) -> None:
    assert accepted(order_json(order_type=side)).order_type == side


@pytest.mark.parametrize("side", ["buy", "Sell", "HOLD", "", 1, None, DROP])
def test_order_type_other_than_buy_or_sell_is_rejected(side: object) -> None:
    assert "order_type must be BUY or SELL" in reason(order_json(order_type=side))


# --- amount, priority, timestamp -------------------------------------------------


@pytest.mark.parametrize("amount", [0, 0.0, -1.0])
def test_amount_must_be_positive(amount: float) -> None:
    assert "amount must be > 0" in reason(order_json(amount=amount))


@pytest.mark.parametrize("amount", ["1000", True, None, DROP])
def test_amount_must_be_a_json_number(amount: object) -> None:
    assert "amount" in reason(order_json(amount=amount))


@pytest.mark.parametrize("written", [b"Infinity", b"NaN", b"1e400"])
def test_amount_must_be_finite(written: bytes) -> None:
    raw = order_json(amount=7).replace(b'"amount":7', b'"amount":' + written)

    assert "not valid JSON" in reason(raw)


@pytest.mark.parametrize("priority", [0, -3, 2**63])
def test_priority_any_integer_is_accepted(priority: int) -> None:
    assert accepted(order_json(priority=priority)).priority == priority


@pytest.mark.parametrize("priority", [1.0, 1.5, "1", True, None, DROP])
def test_priority_must_be_an_integer(priority: object) -> None:
    assert "priority" in reason(order_json(priority=priority))


def test_priority_written_with_exponent_is_not_an_integer() -> None:
    raw = order_json(priority=7).replace(b'"priority":7', b'"priority":1e0')

    assert "priority must be an integer" in reason(raw)


@pytest.mark.parametrize("ts", [0, 0.0, -1.0])
def test_timestamp_must_be_positive(ts: float) -> None:
    assert "timestamp must be > 0" in reason(order_json(timestamp=ts))


@pytest.mark.parametrize("ts", ["1763722800.5", False, None, DROP])
def test_timestamp_must_be_a_json_number(ts: object) -> None:
    assert "timestamp" in reason(order_json(timestamp=ts))


# --- portfolio -------------------------------------------------------------------


@pytest.mark.parametrize("portfolio", [None, DROP, {"VTI": 1.0}, "VTI"])
def test_portfolio_must_be_an_array(portfolio: object) -> None:
    assert "portfolio" in reason(order_json(portfolio=portfolio))


def test_portfolio_must_not_be_empty() -> None:
    assert reason(order_json(portfolio=[])) == "portfolio must not be empty"


def test_portfolio_entry_must_be_an_object() -> None:
    assert "portfolio[0] must be a JSON object" in reason(portfolio_json(["VTI", 1.0]))


@pytest.mark.parametrize("symbol", ["", 7, None, DROP])
def test_entry_symbol_must_be_a_non_empty_string(symbol: object) -> None:
    item = {"symbol": symbol, "weight": 1.0}
    if symbol is DROP:
        del item["symbol"]

    assert "portfolio[0].symbol" in reason(portfolio_json(item))


def test_entry_symbols_must_be_distinct() -> None:
    raw = portfolio_json({"symbol": "VTI", "weight": 0.5}, {"symbol": "VTI", "weight": 0.5})

    assert reason(raw) == "portfolio[1].symbol 'VTI' repeats portfolio[0]"


def test_entry_symbols_differing_in_case_are_distinct() -> None:
    raw = portfolio_json({"symbol": "VTI", "weight": 0.5}, {"symbol": "vti", "weight": 0.5})

    assert len(accepted(raw).portfolio) == 2


def test_entry_weight_must_be_non_negative() -> None:
    raw = portfolio_json({"symbol": "VTI", "weight": 1.0}, {"symbol": "IVE", "weight": -0.5})

    assert "portfolio[1].weight must be >= 0" in reason(raw)


@pytest.mark.parametrize("weight", ["1", True, None, DROP])
def test_entry_weight_must_be_a_json_number(weight: object) -> None:
    item = {"symbol": "VTI", "weight": weight}
    if weight is DROP:
        del item["weight"]

    assert "portfolio[0].weight" in reason(portfolio_json(item))


def test_entry_weight_zero_is_allowed() -> None:
    raw = portfolio_json({"symbol": "VTI", "weight": 1.0}, {"symbol": "IVE", "weight": 0})

    assert accepted(raw).portfolio[1] == PortfolioEntry("IVE", 0.0, None)


def test_weights_summing_to_one_within_tolerance_are_accepted() -> None:
    raw = portfolio_json({"symbol": "VTI", "weight": 0.5}, {"symbol": "IVE", "weight": 0.5000009})

    assert isinstance(parse_order(raw), PortfolioOrder)


@pytest.mark.parametrize("second", [0.49, 0.500002, 0.0])
def test_weights_not_summing_to_one_are_rejected(second: float) -> None:
    raw = portfolio_json({"symbol": "VTI", "weight": 0.5}, {"symbol": "IVE", "weight": second})

    assert "weights must sum to 1" in reason(raw)


def test_huge_weights_are_rejected_not_overflowing() -> None:
    raw = portfolio_json({"symbol": "VTI", "weight": 1e308}, {"symbol": "IVE", "weight": 1e308})

    assert "portfolio[0].weight alone is 1e+308" in reason(raw)


def test_all_weights_zero_is_rejected() -> None:
    assert "weights must sum to 1" in reason(portfolio_json({"symbol": "VTI", "weight": 0}))


@pytest.mark.parametrize("limit", [DROP, None])
def test_limit_price_absent_or_null_means_market(limit: object) -> None:
    item = {"symbol": "VTI", "weight": 1.0, "limit_price": limit}
    if limit is DROP:
        del item["limit_price"]

    assert accepted(portfolio_json(item)).portfolio[0].limit_price is None


@pytest.mark.parametrize("limit", [0, 0.0, -94.0])
def test_limit_price_must_be_positive(limit: float) -> None:
    item = {"symbol": "VTI", "weight": 1.0, "limit_price": limit}

    assert "portfolio[0].limit_price must be > 0" in reason(portfolio_json(item))


@pytest.mark.parametrize("limit", ["94.0", True, [94.0]])
def test_limit_price_must_be_a_json_number(limit: object) -> None:
    item = {"symbol": "VTI", "weight": 1.0, "limit_price": limit}

    assert "portfolio[0].limit_price must be a JSON number" in reason(portfolio_json(item))


def test_one_bad_entry_rejects_the_whole_order() -> None:
    raw = portfolio_json(
        {"symbol": "VTI", "weight": 0.5},
        {"symbol": "IVE", "weight": 0.5, "limit_price": "cheap"},
    )

    assert "portfolio[1].limit_price" in reason(raw)
