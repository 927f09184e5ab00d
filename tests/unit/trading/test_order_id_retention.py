"""Accepted portfolio_order_ids are remembered for FINTANK_ORDER_ID_RETENTION seconds, then
forgotten (a tombstone on the changelog): bounded memory, a documented end to duplicate checks."""

from __future__ import annotations

import orjson

from fintank.bolts import Orders
from fintank.testing import Harness
from tests.support.ticks import T0
from tests.support.trading import order_json

DAY = 86_400.0


def place(h: Harness, order_id: str, now: float) -> list[str]:
    out = h.feed("orders", [order_json(portfolio_order_id=order_id)], now, [order_id])
    return [letter.reason for _, letter in out.deadletters] or [e.output for e in out.emits]


def test_an_id_is_a_duplicate_within_the_retention_and_new_after_it() -> None:
    h = Harness(Orders, order_id_retention=DAY)
    assert "components" in place(h, "po-1", T0)
    assert place(h, "po-1", T0 + 10)[0].startswith("duplicate")

    h.tick(T0 + DAY - 1)
    assert "po-1" in h.table("accepted-orders")
    h.tick(T0 + DAY + 1)

    assert h.table("accepted-orders") == {}
    assert h.bolt.stats() == {"accepted_ids": 0, "forgotten_ids": 1}
    assert "components" in place(h, "po-1", T0 + DAY + 2)  # remembered no more: new


def test_the_index_is_rebuilt_from_the_changelog_on_recovery() -> None:
    h = Harness(Orders, order_id_retention=DAY)
    place(h, "po-old", T0)
    place(h, "po-new", T0 + DAY / 2)
    again = h.restarted()
    legacy = orjson.dumps([0, 99])  # written before retention existed: no time
    again.stores["accepted-orders"].restore(b"po-legacy", legacy)

    again.recover({}, T0 + DAY / 2)  # a legacy id counts from the recovery
    again.tick(T0 + DAY + 1)

    assert sorted(again.table("accepted-orders")) == ["po-legacy", "po-new"]
    again.tick(T0 + 2 * DAY)
    assert again.table("accepted-orders") == {}


def test_without_a_retention_every_id_is_kept() -> None:
    h = Harness(Orders)
    place(h, "po-1", T0)
    h.tick(T0 + 365 * DAY)
    assert list(h.table("accepted-orders")) == ["po-1"]
