"""The per-symbol matcher: quotes, market and limit components (CONTRACT.md rules 2-5)."""

from __future__ import annotations

import orjson

from fintank.trading.matcher import (
    EMPTY_BOOK,
    SymbolBook,
    book_from_json,
    on_component,
    on_ticks,
)
from fintank.trading.records import Execution
from tests.support.ticks import T0, tick
from tests.support.trading import component

NOW = T0 + 100


def test_buy_executes_at_the_ask_of_the_quote() -> None:
    # Arrange
    book = SymbolBook(quote=tick(bid=109.71, ask=109.74, timestamp=T0))
    comp = component(order_type="BUY", amount=500.0, component_order_id="po-1/0")

    # Act
    book2, executions = on_component(book, comp, NOW)

    # Assert
    assert executions == [
        Execution(
            taxpayer_id=42,
            portfolio_order_id="po-1",
            component_order_id="po-1/0",
            market_order_id="po-1/0/m",
            execution_id="po-1/0/x",
            order_type="BUY",
            symbol="VTI",
            requested_amount=500.0,
            requested_shares=round(500.0 / 109.74, 6),
            requested_price=109.74,
            quote_timestamp=T0,
            timestamp=NOW,
        )
    ]
    assert book2 is book  # nothing rests, nothing changed


def test_sell_executes_at_the_bid_of_the_quote() -> None:
    book = SymbolBook(quote=tick(bid=109.71, ask=109.74))

    _, (execution,) = on_component(book, component(order_type="SELL", amount=300.0), NOW)

    assert execution.requested_price == 109.71
    assert execution.requested_shares == round(300.0 / 109.71, 6) == 2.734482


def test_without_a_quote_a_market_component_rests() -> None:
    comp = component()

    book, executions = on_component(EMPTY_BOOK, comp, NOW)

    assert executions == []
    assert book == SymbolBook(None, (comp,))


def test_resting_market_component_executes_on_the_first_quote() -> None:
    comp = component(order_type="BUY")
    book, _ = on_component(EMPTY_BOOK, comp, NOW)
    first = tick(ask=110.0, timestamp=T0 + 5)

    book, executions = on_ticks(book, [first, tick(ask=111.0, timestamp=T0 + 6)], NOW)

    assert [(e.requested_price, e.quote_timestamp) for e in executions] == [(110.0, T0 + 5)]
    assert book.resting == ()


def test_resting_component_executes_even_on_a_first_quote_older_than_itself() -> None:
    # rule 4: "the first quote that arrives for it", whatever its event time
    book, _ = on_component(EMPTY_BOOK, component(timestamp=T0 + 60), NOW)

    _, executions = on_ticks(book, [tick(timestamp=T0)], NOW)

    assert len(executions) == 1


def test_buy_limit_rests_until_the_ask_crosses() -> None:
    # Arrange: ask 95 is above the 94 limit
    book = SymbolBook(quote=tick(symbol="IVE", bid=94.9, ask=95.0, timestamp=T0))
    comp = component(symbol="IVE", order_type="BUY", amount=300.0, limit_price=94.0)
    book, executions = on_component(book, comp, NOW)
    assert executions == []

    # Act: later quotes, in arrival order: not crossing, crossing, crossing again
    ticks = [
        tick(symbol="IVE", bid=94.2, ask=94.3, timestamp=T0 + 1),
        tick(symbol="IVE", bid=93.9, ask=94.0, timestamp=T0 + 2),
        tick(symbol="IVE", bid=93.0, ask=93.1, timestamp=T0 + 3),
    ]
    book, executions = on_ticks(book, ticks, NOW)

    # Assert: executed once, on the first crossing quote (ask == limit), at that ask
    assert [(e.requested_price, e.quote_timestamp) for e in executions] == [(94.0, T0 + 2)]
    assert book == SymbolBook(ticks[-1], ())


def test_sell_limit_executes_when_the_bid_reaches_the_limit() -> None:
    book = SymbolBook(quote=tick(bid=99.0, ask=99.1))
    book, executions = on_component(book, component(order_type="SELL", limit_price=100.0), NOW)
    assert executions == []

    _, executions = on_ticks(book, [tick(bid=100.0, ask=100.2, timestamp=T0 + 1)], NOW)

    assert [e.requested_price for e in executions] == [100.0]


def test_limit_that_crosses_the_current_quote_executes_immediately() -> None:
    book = SymbolBook(quote=tick(bid=93.0, ask=93.5))

    _, executions = on_component(book, component(order_type="BUY", limit_price=94.0), NOW)

    assert [e.requested_price for e in executions] == [93.5]


def test_older_tick_never_replaces_the_quote() -> None:
    quote = tick(ask=110.0, timestamp=T0 + 10)
    book = SymbolBook(quote=quote)

    book2, executions = on_ticks(book, [tick(ask=100.0, timestamp=T0 + 9)], NOW)

    assert book2 is book
    assert executions == []


def test_older_tick_never_executes_a_resting_limit() -> None:
    # Arrange: a BUY limit 100 rests against an ask of 110
    book = SymbolBook(quote=tick(ask=110.0, bid=109.0, timestamp=T0 + 10))
    book, _ = on_component(book, component(order_type="BUY", limit_price=100.0), NOW)

    # Act: a stale tick would cross, but it is not the quote
    book2, executions = on_ticks(book, [tick(ask=99.0, bid=98.0, timestamp=T0 + 9)], NOW)

    # Assert
    assert executions == []
    assert book2 is book


def test_tick_with_equal_timestamp_replaces_the_quote_and_is_checked() -> None:
    book = SymbolBook(quote=tick(ask=110.0, bid=109.0, timestamp=T0))
    book, _ = on_component(book, component(order_type="BUY", limit_price=100.0), NOW)
    same_time = tick(ask=99.0, bid=98.0, timestamp=T0)

    book, executions = on_ticks(book, [same_time], NOW)

    assert book.quote is same_time
    assert [e.requested_price for e in executions] == [99.0]


def test_equal_timestamps_in_one_batch_last_arrival_wins() -> None:
    a, b = tick(ask=101.0, timestamp=T0 + 1), tick(ask=102.0, timestamp=T0 + 1)

    book, _ = on_ticks(EMPTY_BOOK, [tick(ask=100.0, timestamp=T0), a, b, tick(timestamp=T0)], NOW)

    assert book.quote is b


def test_empty_batch_changes_nothing() -> None:
    book = SymbolBook(quote=tick())

    assert on_ticks(book, [], NOW) == (book, [])


def test_each_resting_component_executes_once_in_arrival_order() -> None:
    # Arrange: three BUY limits with different limits, resting against ask 110
    book = SymbolBook(quote=tick(bid=109.0, ask=110.0, timestamp=T0))
    for cid, limit in (("a", 105.0), ("b", 100.0), ("c", 108.0)):
        book, _ = on_component(book, component(component_order_id=cid, limit_price=limit), NOW)

    # Act: ask falls to 107, then 104, then 99
    ticks = [tick(bid=b - 1, ask=b, timestamp=T0 + i) for i, b in enumerate((107, 104, 99), 1)]
    book, executions = on_ticks(book, ticks, NOW)

    # Assert
    assert [(e.component_order_id, e.requested_price) for e in executions] == [
        ("c", 107.0),
        ("a", 104.0),
        ("b", 99.0),
    ]
    assert book.resting == ()


def test_component_redelivered_while_resting_is_ignored() -> None:
    comp = component(limit_price=1.0)
    book, _ = on_component(SymbolBook(quote=tick()), comp, NOW)

    book2, executions = on_component(book, comp, NOW + 1)

    assert book2 is book
    assert executions == []


def test_book_round_trips_through_json() -> None:
    book = SymbolBook(
        quote=tick(), resting=(component(limit_price=94.0), component(component_order_id="po-2/0"))
    )

    assert book_from_json(orjson.loads(orjson.dumps(book))) == book
    assert book_from_json(orjson.loads(orjson.dumps(EMPTY_BOOK))) == EMPTY_BOOK
