"""PositionKeeper: accounts summed from fills (CONTRACT.md ``GET /positions/{taxpayer_id}``).

Events come from ``fintank-positions`` (key=taxpayer): ``{"taxpayer_id"}`` when
an order is accepted, ``{"taxpayer_id", "fill"}`` for each fill re-keyed by
taxpayer. A re-keyed fill can arrive twice after a crash, so each ``fill_id``
is applied once; the ids live in the account, written through the table's
``set(partition, key, value)`` in the same record as the position.
"""

from __future__ import annotations

from typing import Any

import orjson

from fintank.codec import dumps
from fintank.trading.accounts import Account, PositionKeeper, account_from_json
from fintank.trading.fills import fill_for
from fintank.trading.matcher import execute
from fintank.trading.positions import EMPTY_POSITION, Position, position_json
from fintank.trading.records import TaxpayerId
from tests.support.ticks import T0, tick
from tests.support.trading import RecordingTable, component

NOW = T0 + 100
PARTITION = 2


Accounts = RecordingTable


def keeper() -> tuple[PositionKeeper, Accounts]:
    table = Accounts()
    return PositionKeeper(table), table


def accepted(taxpayer_id: TaxpayerId = 42) -> dict[str, Any]:
    """The event of an accepted order."""
    return {"taxpayer_id": taxpayer_id}


def filled(
    taxpayer_id: TaxpayerId = 42,
    order_type: str = "BUY",
    amount: float = 500.0,
    price: float = 100.0,
    cid: str = "po-1/0",
    symbol: str = "VTI",
) -> dict[str, Any]:
    """The event of a fill of ``amount`` at ``price``, as read back from the topic."""
    comp = component(
        symbol=symbol,
        order_type=order_type,
        amount=amount,
        component_order_id=cid,
        taxpayer_id=taxpayer_id,
    )
    quote = tick(symbol=symbol, bid=price, ask=price)
    fill = orjson.loads(dumps(fill_for(execute(comp, quote, NOW), NOW + 1)))
    return {"taxpayer_id": taxpayer_id, "fill": fill}


def test_an_accepted_order_opens_the_account_with_zero_cash_and_no_positions() -> None:
    # Arrange
    positions, accounts = keeper()

    # Act
    positions.on_event(PARTITION, accepted(42))

    # Assert
    account = accounts.get("42")
    assert account == Account(42)
    assert position_json(account.taxpayer_id, account.position) == {
        "taxpayer_id": 42,
        "cash": 0.0,
        "positions": {},
    }


def test_a_second_accepted_order_keeps_the_account_as_it_is() -> None:
    positions, accounts = keeper()
    positions.on_event(PARTITION, accepted())
    positions.on_event(PARTITION, filled())
    writes = len(accounts.writes)

    positions.on_event(PARTITION, accepted())

    assert len(accounts.writes) == writes
    assert accounts.get("42").position == Position(-500.0, (("VTI", 5.0),))


def test_a_buy_fill_adds_shares_and_spends_cash() -> None:
    positions, accounts = keeper()
    positions.on_event(PARTITION, accepted())

    positions.on_event(PARTITION, filled(order_type="BUY", amount=500.0, price=100.0))

    assert accounts.get("42").position == Position(-500.0, (("VTI", 5.0),))


def test_a_sell_fill_removes_shares_and_adds_cash() -> None:
    positions, accounts = keeper()

    positions.on_event(PARTITION, filled(order_type="SELL", amount=300.0, price=100.0))

    assert accounts.get("42").position == Position(300.0, (("VTI", -3.0),))


def test_fills_of_several_symbols_and_sides_are_summed() -> None:
    positions, accounts = keeper()
    events = [
        filled(order_type="BUY", amount=500.0, price=100.0, cid="po-1/0"),
        filled(order_type="BUY", amount=300.0, price=50.0, cid="po-1/1", symbol="IVE"),
        filled(order_type="SELL", amount=200.0, price=100.0, cid="po-2/0"),
    ]

    for event in events:
        positions.on_event(PARTITION, event)

    account = accounts.get("42")
    assert account.position == Position(-600.0, (("IVE", 6.0), ("VTI", 3.0)))
    assert account.fill_ids == {"po-1/0/f", "po-1/1/f", "po-2/0/f"}


def test_a_fill_delivered_twice_is_applied_once() -> None:
    # Arrange
    positions, accounts = keeper()
    event = filled(amount=500.0, price=100.0)
    positions.on_event(PARTITION, event)
    writes = len(accounts.writes)

    # Act
    positions.on_event(PARTITION, event)

    # Assert: nothing written, the position counts the fill once.
    assert len(accounts.writes) == writes
    assert accounts.get("42").position == Position(-500.0, (("VTI", 5.0),))


def test_a_fill_delivered_twice_is_applied_once_also_after_a_restore() -> None:
    # The fill ids travel with the account through the changelog (JSON).
    positions, accounts = keeper()
    event = filled()
    positions.on_event(PARTITION, event)
    restored = Accounts({"42": account_from_json(orjson.loads(dumps(accounts.get("42"))))})
    again = PositionKeeper(restored)

    again.on_event(PARTITION, event)

    assert restored.writes == []
    assert restored.get("42") == accounts.get("42")


def test_42_and_the_string_42_are_one_account() -> None:
    positions, accounts = keeper()

    positions.on_event(PARTITION, accepted(42))
    positions.on_event(PARTITION, filled(taxpayer_id="42", cid="po-1/0"))
    positions.on_event(PARTITION, filled(taxpayer_id=42, cid="po-2/0"))

    assert list(accounts.data) == ["42"]
    account = accounts.get("42")
    assert account.taxpayer_id == 42  # as first given
    assert account.position == Position(-1000.0, (("VTI", 10.0),))


def test_the_account_keeps_the_taxpayer_id_as_first_given() -> None:
    positions, accounts = keeper()

    positions.on_event(PARTITION, accepted("42"))
    positions.on_event(PARTITION, accepted(42))

    assert accounts.get("42").taxpayer_id == "42"


def test_a_fill_before_the_accepted_order_still_opens_the_account() -> None:
    # The two events travel on different paths and may arrive in either order.
    positions, accounts = keeper()

    positions.on_event(PARTITION, filled(taxpayer_id=7))
    positions.on_event(PARTITION, accepted(7))

    assert accounts.get("7").position == Position(-500.0, (("VTI", 5.0),))


def test_state_is_written_through_set_with_the_partition_and_the_taxpayer_key() -> None:
    positions, accounts = keeper()

    positions.on_event(PARTITION, accepted(42))
    positions.on_event(PARTITION, filled(taxpayer_id=42))

    assert [(p, key) for p, key, _ in accounts.writes] == [(PARTITION, "42"), (PARTITION, "42")]
    assert accounts.writes[0][2] == Account(42, EMPTY_POSITION)
    assert accounts.writes[1][2] == Account(
        42, Position(-500.0, (("VTI", 5.0),)), frozenset({"po-1/0/f"})
    )


def test_a_position_sold_to_zero_drops_the_symbol() -> None:
    positions, accounts = keeper()

    positions.on_event(PARTITION, filled(order_type="BUY", cid="po-1/0"))
    positions.on_event(PARTITION, filled(order_type="SELL", cid="po-2/0"))

    assert accounts.get("42").position == Position(0.0, ())
