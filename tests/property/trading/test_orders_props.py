"""parse_order and split: invariants over generated orders and garbage."""

from __future__ import annotations

import math
import sys
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from fintank.trading.components import split
from fintank.trading.orders import OrderValidator, Rejected, parse_order
from fintank.trading.records import PortfolioOrder
from tests.support.trading import portfolio_order_objs, portfolio_orders

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=5)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)


@given(st.binary(max_size=300))
@settings(max_examples=300)
def test_any_bytes_give_an_order_or_a_reason(raw: bytes) -> None:
    result = parse_order(raw)

    assert isinstance(result, PortfolioOrder | str)


@given(json_values)
def test_any_json_value_gives_an_order_or_a_reason(value: Any) -> None:
    assert isinstance(parse_order(orjson.dumps(value)), PortfolioOrder | str)


@st.composite
def mutated_orders(draw: st.DrawFn) -> bytes:
    """A valid order with one field, or one field of one entry, replaced or removed."""
    obj = draw(portfolio_order_objs())
    target: dict[str, Any] = obj
    if draw(st.booleans()):
        target = draw(st.sampled_from(obj["portfolio"]))
    key = draw(st.sampled_from(sorted(target) + ["limit_price", "extra"]))
    if draw(st.booleans()):
        target.pop(key, None)
    else:
        target[key] = draw(json_values)
    return orjson.dumps(obj)


@given(mutated_orders())
@settings(max_examples=300)
def test_mutated_orders_give_an_order_or_a_reason_and_the_validator_never_raises(
    raw: bytes,
) -> None:
    result = OrderValidator("orders").process(raw, 1.0, (0, 0), {"x": (0, 1)})

    if isinstance(result, Rejected):
        assert result.deadletter.reason
    else:
        assert isinstance(result.order, PortfolioOrder)


@given(portfolio_order_objs())
def test_every_valid_order_is_accepted_and_echoes_its_values(obj: dict[str, Any]) -> None:
    order = parse_order(orjson.dumps(obj))

    assert isinstance(order, PortfolioOrder)
    assert order.taxpayer_id == obj["taxpayer_id"]
    assert order.amount == float(obj["amount"])
    assert [e.symbol for e in order.portfolio] == [e["symbol"] for e in obj["portfolio"]]


@given(portfolio_orders())
def test_component_amounts_sum_to_the_order_amount_within_rounding(order: PortfolioOrder) -> None:
    components = split(order)

    n = len(components)
    total = math.fsum(c.amount for c in components)
    weight_sum = math.fsum(e.weight for e in order.portfolio)
    slack = n * 1e-6 + 4 * sys.float_info.epsilon * order.amount * (n + 1)
    assert abs(total - order.amount * weight_sum) <= slack
    assert abs(total - order.amount) <= slack + order.amount * abs(weight_sum - 1)


@given(portfolio_orders())
def test_one_component_per_positive_weight_with_deterministic_unique_ids(
    order: PortfolioOrder,
) -> None:
    components = split(order)

    assert [c.symbol for c in components] == [e.symbol for e in order.portfolio if e.weight > 0]
    assert split(order) == components
    assert len({c.component_order_id for c in components}) == len(components)


@given(portfolio_orders(), portfolio_orders())
def test_component_ids_of_different_orders_never_collide(
    a: PortfolioOrder, b: PortfolioOrder
) -> None:
    ids_a = {c.component_order_id for c in split(a)}
    ids_b = {c.component_order_id for c in split(b)}

    if a.portfolio_order_id != b.portfolio_order_id:
        assert not ids_a & ids_b
