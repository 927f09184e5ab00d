"""Re-sent components are recognised by their source (fintank.trading.sources), exactly.

The Orders bolt sends a portfolio order's components again when the order is
delivered to it again (from its committed offset, after a crash or a
rebalance). The model: one orders partition's components in source order,
with re-sends of any already-sent stretch (from some committed point up to
where the sender got) inserted anywhere after it. Each component must be
taken in once, at its first arrival, whatever the interleaving; and the Market
bolt must execute it once even after its ledger forgot it.
"""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from fintank.bolts import Market
from fintank.codec import dumps
from fintank.testing import Harness
from fintank.trading.records import ComponentOrder
from fintank.trading.sources import Taken, take_in
from tests.support.ticks import T0, tick_json
from tests.support.trading import component


def sourced(cid: str, partition: int, offset: int) -> ComponentOrder:
    return replace(
        component(component_order_id=cid), source_partition=partition, source_offset=offset
    )


@st.composite
def deliveries(draw: st.DrawFn) -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
    """(the components in source order, what arrives: those with re-sends inserted)."""
    per_offset = draw(st.lists(st.integers(1, 3), min_size=1, max_size=12))
    sent = [(o, f"po-{o}/{i}") for o, n in enumerate(per_offset) for i in range(n)]
    # Build the arrival order: go forward in steps; after a step, maybe re-send a stretch.
    arrived: list[tuple[int, str]] = []
    done = 0
    while done < len(sent):
        step = draw(st.integers(1, len(sent) - done))
        arrived += sent[done : done + step]
        done += step
        if draw(st.booleans()):
            committed = draw(st.integers(0, done - 1))
            # A re-send starts at a committed *order* (all its components), goes up to any point.
            first = next(i for i, s in enumerate(sent) if s[0] == sent[committed][0])
            arrived += sent[first : draw(st.integers(first + 1, done))]
    return sent, arrived


def take_all(arrivals: list[ComponentOrder]) -> tuple[list[str], Taken]:
    taken: Taken = ()
    firsts = []
    for comp in arrivals:
        noted = take_in(taken, comp)
        if noted is not None:
            firsts.append(comp.component_order_id)
            taken = noted
    return firsts, taken


@given(deliveries())
def test_each_component_is_taken_in_once_at_its_first_arrival(
    d: tuple[list[tuple[int, str]], list[tuple[int, str]]],
) -> None:
    sent, arrived = d
    firsts, taken = take_all([sourced(cid, 3, offset) for offset, cid in arrived])
    assert firsts == [cid for _, cid in sent]
    assert len(taken) == 1  # one mark per orders partition, however many components


def test_a_component_without_a_source_is_left_to_the_ledger() -> None:
    assert take_in((), component()) == ()
    assert take_all([component(), component()]) == ([component().component_order_id] * 2, ())


def test_orders_partitions_are_independent() -> None:
    a, b = sourced("a", 0, 5), sourced("b", 1, 2)
    firsts, taken = take_all([a, b, a, b, sourced("c", 1, 3)])
    assert firsts == ["a", "b", "c"]
    assert taken == ((0, 5, ("a",)), (1, 3, ("c",)))


def test_market_executes_a_re_sent_component_once_after_forgetting_it() -> None:
    market = Harness(Market)
    comp = sourced("po-1/0", 0, 7)
    market.feed("components", [dumps(comp)], T0 + 1, ["VTI"])
    out = market.feed("ticks", [tick_json(symbol="VTI", timestamp=T0 + 2)], T0 + 2, ["VTI"])
    assert [e.output for e in out.emits] == ["executions"]
    for _ in range(3):
        market.tick(T0 + 3)  # caught up: the ledger forgets the execution
    assert market.bolt.ledger.executions == {}

    again = market.feed("components", [dumps(comp)], T0 + 4, ["VTI"])
    later = market.feed("ticks", [tick_json(symbol="VTI", timestamp=T0 + 5)], T0 + 5, ["VTI"])

    assert again.emits == [] and [e for e in later.emits if e.output == "executions"] == []
    assert market.bolt.stats()["repeated_components"] == 1
    assert market.restarted().table("books")["VTI"].taken == ((0, 7, ("po-1/0",)),)
