"""OrderValidator: accepted, invalid, duplicate, and redelivery of the same Kafka record."""

from __future__ import annotations

from fintank.records import DeadLetter, Emit
from fintank.trading.components import split
from fintank.trading.orders import (
    DUPLICATE,
    Accepted,
    OrderValidator,
    Redelivered,
    Rejected,
    parse_order,
)
from fintank.trading.records import PortfolioOrder
from tests.support.trading import order_json

NOW = 1_763_722_901.0


def test_new_valid_order_is_accepted_with_its_source_to_store() -> None:
    # Arrange
    bolt = OrderValidator("orders")
    raw = order_json()

    # Act
    result = bolt.process(raw, NOW, (2, 17), accepted={})

    # Assert
    assert isinstance(result, Accepted)
    assert result.order == parse_order(raw)
    assert result.source == (2, 17)


def test_accepted_order_emits_its_components_keyed_by_symbol() -> None:
    raw = order_json()
    result = OrderValidator("orders").process(raw, NOW, (0, 0), accepted={})
    order = parse_order(raw)
    assert isinstance(order, PortfolioOrder)

    emits = result.emits()

    assert emits == [Emit("components", c.symbol, c) for c in split(order)]


def test_invalid_order_is_dead_lettered_with_payload_and_now() -> None:
    raw = order_json(order_type="HOLD")

    result = OrderValidator("orders-in").process(raw, NOW, (0, 3), accepted={})

    assert isinstance(result, Rejected)
    assert result.deadletter == DeadLetter(
        "orders-in", "order_type must be BUY or SELL, got a string 'HOLD'", raw.decode(), NOW
    )
    assert result.emits() == [Emit("deadletters", "orders-in", result.deadletter)]


def test_second_record_with_an_accepted_id_is_a_duplicate() -> None:
    # Arrange: po-1 was accepted from partition 0, offset 5
    accepted = {"po-1": (0, 5)}
    raw = order_json(amount=2000.0)

    # Act: another record (offset 9) carries the same id
    result = OrderValidator("orders").process(raw, NOW, (0, 9), accepted)

    # Assert
    assert isinstance(result, Rejected)
    assert result.deadletter.reason == DUPLICATE == "duplicate portfolio_order_id"
    assert result.deadletter.payload == raw.decode()


def test_same_id_on_another_partition_is_a_duplicate() -> None:
    result = OrderValidator("orders").process(order_json(), NOW, (1, 5), {"po-1": (0, 5)})

    assert isinstance(result, Rejected)
    assert result.deadletter.reason == DUPLICATE


def test_redelivery_of_the_accepted_record_is_not_a_duplicate() -> None:
    # Arrange: the record at (0, 5) was accepted, then the worker crashed
    raw = order_json()
    bolt = OrderValidator("orders")
    first = bolt.process(raw, NOW, (0, 5), accepted={})
    assert isinstance(first, Accepted)
    table = {first.order.portfolio_order_id: list(first.source)}  # as a JSON table returns it

    # Act: the same record is delivered again
    again = bolt.process(raw, NOW + 60, (0, 5), table)

    # Assert: same order, identical components, nothing to store
    assert isinstance(again, Redelivered)
    assert again.order == first.order
    assert again.emits() == first.emits()


def test_invalid_record_with_an_accepted_id_is_rejected_as_invalid() -> None:
    raw = order_json(amount=-1.0)

    result = OrderValidator("orders").process(raw, NOW, (0, 9), {"po-1": (0, 5)})

    assert isinstance(result, Rejected)
    assert result.deadletter.reason.startswith("amount must be > 0")


def test_invalid_record_at_the_accepted_offset_is_still_invalid() -> None:
    result = OrderValidator("orders").process(None, NOW, (0, 5), {"po-1": (0, 5)})

    assert isinstance(result, Rejected)
    assert result.deadletter.payload == ""


def test_non_utf8_payload_is_kept_as_base64() -> None:
    result = OrderValidator("orders").process(b"\xff", NOW, (0, 0), {})

    assert isinstance(result, Rejected)
    assert result.deadletter.payload == "b64:/w=="
