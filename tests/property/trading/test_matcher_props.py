"""Matcher, fills and positions: invariants over generated tick/component streams of one symbol."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from fintank.records import Tick
from fintank.trading.fills import fill_for
from fintank.trading.matcher import EMPTY_BOOK, SymbolBook, crosses, on_component, on_ticks
from fintank.trading.positions import EMPTY_POSITION, apply_fill
from fintank.trading.records import ComponentOrder, Execution
from tests.support.ticks import T0
from tests.support.trading import components

NOW = T0 + 1e6


@dataclass
class Run:
    """What happened when a stream was fed to the matcher."""

    ticks: list[Tick]
    comps: list[ComponentOrder]
    executions: list[Execution]
    book: SymbolBook


@st.composite
def streams(draw: st.DrawFn) -> list[list[Tick] | ComponentOrder]:
    """Tick batches and components of VTI, interleaved; tick timestamps unique, in any order."""
    n_ticks = draw(st.integers(0, 25))
    stamps = draw(st.lists(st.integers(0, 10_000), min_size=n_ticks, max_size=n_ticks, unique=True))
    ticks = []
    for ts in stamps:
        bid = draw(st.floats(min_value=0.5, max_value=200))
        ask = bid + draw(st.sampled_from([0.0, 0.01, 0.5, 3.0]))
        ticks.append(Tick("VTI", "NYSE", bid, ask, T0 + ts))
    comps = [draw(components(cid=f"c{i}")) for i in range(draw(st.integers(0, 12)))]
    events: list[list[Tick] | ComponentOrder] = []
    t = c = 0
    while t < len(ticks) or c < len(comps):
        if c < len(comps) and (t == len(ticks) or draw(st.booleans())):
            events.append(comps[c])
            c += 1
        else:
            size = draw(st.integers(1, max(1, len(ticks) - t)))
            events.append(ticks[t : t + size])
            t += size
    return events


def feed(events: list[list[Tick] | ComponentOrder], book: SymbolBook = EMPTY_BOOK) -> Run:
    ticks: list[Tick] = []
    comps: list[ComponentOrder] = []
    executions: list[Execution] = []
    for i, event in enumerate(events):
        now = NOW + i
        if isinstance(event, ComponentOrder):
            comps.append(event)
            book, out = on_component(book, event, now)
        else:
            ticks.extend(event)
            book, out = on_ticks(book, event, now)
        executions.extend(out)
    return Run(ticks, comps, executions, book)


def sweep(stamp: float) -> list[Tick]:
    """Two newest quotes that together cross every limit: a tiny ask, then a huge bid."""
    return [Tick("VTI", "", 1e-3, 1e-3, stamp), Tick("VTI", "", 1e6, 1e6, stamp)]


@given(streams())
@settings(max_examples=200)
def test_executions_are_at_the_named_quotes_ask_or_bid_and_it_crosses(events: list) -> None:
    run = feed(events)

    by_stamp = {t.timestamp: t for t in run.ticks}
    comps = {c.component_order_id: c for c in run.comps}
    for execution in run.executions:
        quote = by_stamp[execution.quote_timestamp]
        comp = comps[execution.component_order_id]
        side_price = quote.ask if comp.order_type == "BUY" else quote.bid
        assert execution.requested_price == side_price
        assert crosses(comp, quote)
        if comp.limit_price is not None:
            if comp.order_type == "BUY":
                assert quote.ask <= comp.limit_price
            else:
                assert quote.bid >= comp.limit_price


@given(streams())
@settings(max_examples=200)
def test_executions_use_only_quotes_never_stale_ticks(events: list) -> None:
    run = feed(events)

    # A tick is a quote iff no earlier-arrived tick had a greater timestamp.
    newest = -math.inf
    quotes = set()
    for t in run.ticks:
        if t.timestamp >= newest:
            quotes.add(t.timestamp)
            newest = t.timestamp
    assert {e.quote_timestamp for e in run.executions} <= quotes


@given(streams())
@settings(max_examples=200)
def test_shares_times_price_is_the_amount_within_rounding(events: list) -> None:
    for e in feed(events).executions:
        assert e.requested_shares == round(e.requested_amount / e.requested_price, 6)
        slack = 0.5e-6 * e.requested_price + 1e-12 * e.requested_amount
        assert abs(e.requested_shares * e.requested_price - e.requested_amount) <= slack


@given(streams())
@settings(max_examples=200)
def test_every_component_executes_exactly_once_once_a_crossing_quote_arrives(
    events: list,
) -> None:
    # Arrange / Act: the stream, then quotes newer than all that cross every limit
    run = feed([*events, sweep(T0 + 20_000)])

    # Assert
    counts = Counter(e.component_order_id for e in run.executions)
    assert counts == Counter(c.component_order_id for c in run.comps)
    assert run.book.resting == ()


@given(streams())
@settings(max_examples=200)
def test_nothing_is_lost_or_doubled_so_far(events: list) -> None:
    run = feed(events)

    executed = [e.component_order_id for e in run.executions]
    resting = [c.component_order_id for c in run.book.resting]
    assert len(executed) == len(set(executed))
    assert sorted(executed + resting) == sorted(c.component_order_id for c in run.comps)


@given(streams())
@settings(max_examples=100)
def test_redelivering_resting_components_changes_nothing(events: list) -> None:
    # (Components that already executed are the topology's to recognise: see fintank.trading.)
    run = feed(events)

    again = feed(list(run.book.resting), run.book)

    assert again.executions == []
    assert again.book == run.book


@given(streams())
@settings(max_examples=100)
def test_ids_are_deterministic_on_reprocessing(events: list) -> None:
    first, second = feed(events), feed(events)

    assert [
        (e.component_order_id, e.market_order_id, e.execution_id) for e in first.executions
    ] == [(e.component_order_id, e.market_order_id, e.execution_id) for e in second.executions]
    assert first.executions == second.executions  # same ``now`` -> identical records


@given(streams())
@settings(max_examples=100)
def test_fill_deltas_sum_to_the_executions(events: list) -> None:
    # Arrange
    executions = feed([*events, sweep(T0 + 20_000)]).executions

    # Act
    fills = [fill_for(e, NOW) for e in executions]
    position = EMPTY_POSITION
    for fill in fills:
        position = apply_fill(position, fill)

    # Assert
    sign = {"BUY": 1, "SELL": -1}
    cash = math.fsum(-sign[e.order_type] * e.requested_amount for e in executions)
    shares = math.fsum(sign[e.order_type] * e.requested_shares for e in executions)
    assert math.fsum(f.delta_cash_position for f in fills) == cash
    assert math.fsum(f.delta_shares_position for f in fills) == shares
    n = len(fills) + 1
    assert abs(position.cash - cash) <= n * 1e-6 + 1e-12 * abs(cash)
    assert abs(dict(position.shares).get("VTI", 0.0) - shares) <= n * 1e-6 + 1e-12 * abs(shares)
    for fill, e in zip(fills, executions, strict=True):
        assert (fill.filled_amount, fill.filled_shares, fill.filled_price) == (
            e.requested_amount,
            e.requested_shares,
            e.requested_price,
        )
        assert fill.fill_id.startswith(e.component_order_id)
