"""FINTANK_MAX_RESTING bounds a symbol's book: one more component that would rest is
dead-lettered with the reason; one that executes at once is still taken."""

from __future__ import annotations

from dataclasses import replace

from fintank.bolts import Market
from fintank.codec import dumps
from fintank.testing import Harness
from tests.support.ticks import T0, tick_json
from tests.support.trading import component


def limit(cid: str, offset: int, price: float) -> bytes:
    comp = component(component_order_id=cid, limit_price=price)
    return dumps(replace(comp, source_partition=0, source_offset=offset))


def test_a_full_book_refuses_what_would_rest_and_takes_what_executes() -> None:
    market = Harness(Market, max_resting=2)
    market.feed("ticks", [tick_json(symbol="VTI", bid=99.5, ask=100.0, timestamp=T0)], T0, ["VTI"])
    low = [limit(f"po-{i}/0", i, 90.0) for i in range(3)]  # BUY limits under the ask: they rest

    out = market.feed("components", [*low, limit("po-9/0", 9, 101.0)], T0 + 1, ["VTI"] * 4)

    assert [o for o, _ in out.deadletters] == [2]
    [(_, letter)] = out.deadletters
    assert "holds 2 resting components" in letter.reason and "FINTANK_MAX_RESTING" in letter.reason
    assert [e.value.component_order_id for e in out.emits] == ["po-9/0"]  # it crossed: executed
    assert len(market.table("books")["VTI"].resting) == 2

    again = market.feed("components", [low[2]], T0 + 2, ["VTI"])  # sent again: a repeat
    assert again.deadletters == [] and again.emits == []
