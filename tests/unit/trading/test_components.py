"""split: one component per entry with weight > 0 (CONTRACT.md rule 1)."""

from __future__ import annotations

from fintank.trading.components import split
from fintank.trading.records import ComponentOrder
from tests.support.ticks import T0
from tests.support.trading import entry, order


def test_contract_example_splits_into_three_components() -> None:
    # Arrange
    po = order()

    # Act
    components = split(po)

    # Assert
    assert components == [
        ComponentOrder(42, "po-1", "po-1/0", "BUY", "VTI", 500.0, 1, None, T0 + 0.5),
        ComponentOrder(42, "po-1", "po-1/1", "BUY", "IVE", 300.0, 1, 94.0, T0 + 0.5),
        ComponentOrder(42, "po-1", "po-1/2", "BUY", "IWS", 200.0, 1, None, T0 + 0.5),
    ]


def test_zero_weight_entries_make_no_component_but_keep_their_index() -> None:
    po = order(entry("VTI", 0.0), entry("IVE", 1.0))

    components = split(po)

    assert [(c.component_order_id, c.symbol) for c in components] == [("po-1/1", "IVE")]


def test_amount_is_rounded_to_six_decimals() -> None:
    po = order(entry("VTI", 1 / 3), entry("IVE", 2 / 3), amount=100.0)

    components = split(po)

    assert [c.amount for c in components] == [33.333333, 66.666667]


def test_tiny_amount_rounds_to_a_zero_component() -> None:
    po = order(entry("VTI", 0.5), entry("IVE", 0.5), amount=1e-7)

    assert [c.amount for c in split(po)] == [0.0, 0.0]


def test_component_echoes_taxpayer_side_priority_and_order_timestamp() -> None:
    po = order(entry("VTI", 1.0, 99.5), taxpayer_id="42", order_type="SELL", priority=-3)

    (comp,) = split(po)

    assert (comp.taxpayer_id, comp.order_type, comp.priority, comp.limit_price) == (
        "42",
        "SELL",
        -3,
        99.5,
    )
    assert comp.timestamp == po.timestamp


def test_same_order_always_yields_the_same_components() -> None:
    assert split(order()) == split(order())


def test_ids_stay_unique_when_ids_and_symbols_contain_slashes() -> None:
    a = split(order(entry("1/X", 1.0), portfolio_order_id="a"))
    b = split(order(entry("X", 0.0), entry("X2", 1.0), portfolio_order_id="a/0"))

    assert a[0].component_order_id == "a/0"
    assert b[0].component_order_id == "a/0/1"
