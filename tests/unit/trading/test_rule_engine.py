"""RuleEngine: the matcher behind the books table and the ledger (CONTRACT.md rules 2-6).

The books table is an in-memory double that records every ``stage``: the
topology publishes staged books only after the batch's executions were
delivered, so what is staged (and with which partition) is part of the
contract between the bolt and the engine. The ledger makes a component that
already executed produce nothing new, and the books' ``offset`` makes a tick
delivered again after a crash a no-op.
"""

from __future__ import annotations

from fintank.records import Tick
from fintank.trading.engine import RuleEngine
from fintank.trading.ledger import Ledger
from fintank.trading.matcher import SymbolBook, execute
from fintank.trading.records import ComponentOrder
from tests.support.ticks import T0, tick
from tests.support.trading import RecordingTable, component

NOW = T0 + 100
PARTITION = 3


Books = RecordingTable


def engine(
    books: dict[str, SymbolBook] | None = None, ledger: Ledger | None = None
) -> tuple[RuleEngine, Books]:
    """A rule engine over fresh (or given) books and ledger, and its books double."""
    table = Books(dict(books or {}))
    return RuleEngine(table, ledger if ledger is not None else Ledger()), table


def limit(order_type: str, price: float, cid: str = "po-1/0") -> ComponentOrder:
    return component(order_type=order_type, limit_price=price, component_order_id=cid)


def market(order_type: str = "BUY", cid: str = "po-1/0", symbol: str = "VTI") -> ComponentOrder:
    return component(order_type=order_type, component_order_id=cid, symbol=symbol)


def quote_of(table: Books, symbol: str = "VTI") -> Tick | None:
    book = table.get(symbol)
    return None if book is None else book.quote


def book_of(table: Books, symbol: str = "VTI") -> SymbolBook:
    """The symbol's book, which the test expects to exist."""
    book = table.get(symbol)
    assert book is not None, f"no book for {symbol}"
    return book


# --- ticks -------------------------------------------------------------------


def test_a_tick_becomes_the_symbols_quote() -> None:
    # Arrange
    rules, books = engine()
    first = tick(bid=109.71, ask=109.74, timestamp=T0)

    # Act
    executions = rules.on_ticks(PARTITION, [first], NOW)

    # Assert
    assert executions == []
    assert books.get("VTI") == SymbolBook(quote=first)


def test_the_newest_tick_of_a_batch_is_the_quote_and_an_older_one_is_not() -> None:
    rules, books = engine()
    newest = tick(ask=110.0, timestamp=T0 + 2)

    rules.on_ticks(PARTITION, [tick(timestamp=T0 + 1), newest, tick(timestamp=T0)], NOW)

    assert quote_of(books) == newest


def test_a_later_tick_with_the_quotes_timestamp_replaces_it() -> None:
    rules, books = engine()
    rules.on_ticks(PARTITION, [tick(ask=110.0, timestamp=T0)], NOW)
    later = tick(ask=111.0, timestamp=T0)

    rules.on_ticks(PARTITION, [later], NOW)

    assert quote_of(books) == later


def test_ticks_of_two_symbols_update_each_book_with_one_write_per_symbol() -> None:
    rules, books = engine()
    vti = [tick("VTI", timestamp=T0), tick("VTI", timestamp=T0 + 1)]
    ive = [tick("IVE", bid=94.0, ask=94.1, timestamp=T0)]

    rules.on_ticks(PARTITION, [vti[0], ive[0], vti[1]], NOW)

    assert [(p, key, book.quote) for p, key, book in books.writes] == [
        (PARTITION, "VTI", vti[1]),
        (PARTITION, "IVE", ive[0]),
    ]


# --- components and quotes -------------------------------------------------------


def test_a_market_component_executes_at_once_on_the_quote() -> None:
    rules, _ = engine({"VTI": SymbolBook(quote=tick(bid=109.71, ask=109.74))})
    comp = market("BUY")

    executions, missing = rules.on_components(PARTITION, [comp], NOW)

    assert executions == [execute(comp, tick(bid=109.71, ask=109.74), NOW)]
    assert missing == []


def test_a_resting_market_component_executes_on_the_first_quote() -> None:
    # Arrange: no quote yet, so the component rests (rule 4).
    rules, books = engine()
    comp = market("SELL")
    executions, _ = rules.on_components(PARTITION, [comp], NOW)
    assert executions == []
    assert books.get("VTI") == SymbolBook(resting=(comp,))
    first, second = tick(bid=100.0, timestamp=T0), tick(bid=101.0, timestamp=T0 + 1)

    # Act
    executions = rules.on_ticks(PARTITION, [first, second], NOW)

    # Assert: the first quote, at its bid; the book keeps only the quote.
    assert executions == [execute(comp, first, NOW)]
    assert executions[0].requested_price == 100.0
    assert books.get("VTI") == SymbolBook(quote=second)


def test_a_limit_buy_rests_until_the_ask_is_at_or_below_its_limit() -> None:
    rules, books = engine({"VTI": SymbolBook(quote=tick(bid=100.5, ask=101.0, timestamp=T0))})
    comp = limit("BUY", 100.0)
    rules.on_components(PARTITION, [comp], NOW)

    too_high = rules.on_ticks(PARTITION, [tick(bid=100.0, ask=100.5, timestamp=T0 + 1)], NOW)
    crossing = tick(bid=99.5, ask=100.0, timestamp=T0 + 2)
    executions = rules.on_ticks(PARTITION, [crossing], NOW)

    assert too_high == []
    assert executions == [execute(comp, crossing, NOW)]
    assert executions[0].requested_price == 100.0
    assert books.get("VTI") == SymbolBook(quote=crossing)


def test_a_limit_sell_rests_until_the_bid_is_at_or_above_its_limit() -> None:
    rules, books = engine()
    comp = limit("SELL", 100.0)
    rules.on_components(PARTITION, [comp], NOW)

    low = tick(bid=99.5, ask=100.5, timestamp=T0)
    crossing = tick(bid=100.0, ask=100.5, timestamp=T0 + 1)
    executions = rules.on_ticks(PARTITION, [low, crossing], NOW)

    assert executions == [execute(comp, crossing, NOW)]
    assert books.get("VTI") == SymbolBook(quote=crossing)


def test_an_older_tick_never_executes_a_resting_limit() -> None:
    # Rule 2: a tick older than the quote is not a quote, however good its price.
    rules, books = engine({"VTI": SymbolBook(quote=tick(ask=101.0, timestamp=T0 + 5))})
    rules.on_components(PARTITION, [limit("BUY", 100.0)], NOW)

    executions = rules.on_ticks(PARTITION, [tick(bid=90.0, ask=90.5, timestamp=T0)], NOW)

    assert executions == []
    assert [c.component_order_id for c in book_of(books).resting] == ["po-1/0"]


def test_the_same_component_twice_in_one_batch_executes_once() -> None:
    rules, _ = engine({"VTI": SymbolBook(quote=tick())})
    comp = market()

    executions, missing = rules.on_components(PARTITION, [comp, comp], NOW)

    assert [e.component_order_id for e in executions] == ["po-1/0"]
    assert missing == []


def test_the_same_component_twice_rests_once() -> None:
    rules, books = engine()
    comp = limit("BUY", 100.0)

    rules.on_components(PARTITION, [comp], NOW)
    rules.on_components(PARTITION, [comp], NOW)

    assert book_of(books).resting == (comp,)


def test_executions_are_recorded_in_the_ledger_with_their_fill_claimed() -> None:
    # The caller sends one fill per returned execution.
    ledger = Ledger()
    rules, _ = engine({"VTI": SymbolBook(quote=tick())}, ledger)

    executions, _ = rules.on_components(PARTITION, [market()], NOW)

    assert ledger.executions == {"po-1/0": executions[0]}
    assert ledger.filled == {"po-1/0"}


# --- the ledger: exactly once ------------------------------------------------------


def test_a_component_already_executed_and_filled_makes_nothing() -> None:
    # Arrange: the component's execution and fill are on the topics (rebuilt ledger).
    comp = market()
    ledger = Ledger()
    ledger.record_execution(execute(comp, tick(ask=99.0), NOW - 50))
    ledger.record_fill(comp.component_order_id)
    rules, books = engine({"VTI": SymbolBook(quote=tick(ask=110.0))}, ledger)

    # Act
    executions, missing = rules.on_components(PARTITION, [comp], NOW)

    # Assert
    assert (executions, missing) == ([], [])
    assert books.writes == []


def test_a_component_executed_without_its_fill_returns_that_execution_once() -> None:
    # A crash between the execution and its fill: the re-sent component
    # repairs the fill with the execution that was sent, not a new one.
    comp = market()
    before = execute(comp, tick(ask=99.0, timestamp=T0 - 5), NOW - 50)
    ledger = Ledger()
    ledger.record_execution(before)
    rules, books = engine({"VTI": SymbolBook(quote=tick(ask=110.0))}, ledger)

    executions, missing = rules.on_components(PARTITION, [comp], NOW)
    again = rules.on_components(PARTITION, [comp], NOW)

    assert (executions, missing) == ([], [before])
    assert again == ([], [])
    assert comp.component_order_id in ledger.filled
    assert books.writes == []


def test_a_resting_component_the_ledger_says_executed_is_dropped_from_the_book() -> None:
    # The changelog lost the book without the component, but its execution is
    # on the topic: the next quote must not execute it a second time.
    comp = limit("BUY", 100.0)
    ledger = Ledger()
    ledger.record_execution(execute(comp, tick(ask=99.0), NOW - 50))
    ledger.record_fill(comp.component_order_id)
    rules, books = engine({"VTI": SymbolBook(quote=tick(ask=101.0), resting=(comp,))}, ledger)
    crossing = tick(bid=98.5, ask=99.0, timestamp=T0 + 1)

    executions = rules.on_ticks(PARTITION, [crossing], NOW)

    assert executions == []
    assert books.get("VTI") == SymbolBook(quote=crossing)


def test_only_the_executed_components_are_dropped_from_the_book() -> None:
    done, waiting = limit("BUY", 100.0, "po-1/0"), limit("BUY", 99.0, "po-2/0")
    ledger = Ledger()
    ledger.record_execution(execute(done, tick(ask=99.0), NOW - 50))
    book = SymbolBook(quote=tick(ask=101.0), resting=(done, waiting))
    rules, books = engine({"VTI": book}, ledger)
    newer = tick(bid=99.5, ask=100.0, timestamp=T0 + 1)

    executions = rules.on_ticks(PARTITION, [newer], NOW)

    assert executions == []
    assert books.get("VTI") == SymbolBook(quote=newer, resting=(waiting,))


# --- redelivered ticks (offsets) ------------------------------------------------------


def test_offsets_are_remembered_in_the_book() -> None:
    rules, books = engine()

    rules.on_ticks(PARTITION, [tick(timestamp=T0), tick(timestamp=T0 + 1)], NOW, [7, 9])

    assert book_of(books).offset == 9


def test_redelivered_ticks_are_skipped() -> None:
    # Arrange
    rules, books = engine()
    applied = tick(ask=110.0, timestamp=T0)
    rules.on_ticks(PARTITION, [applied], NOW, [4])
    books.writes.clear()

    # Act: the same record again, and an older offset, after a crash.
    executions = rules.on_ticks(PARTITION, [tick(ask=90.0, timestamp=T0 + 9)], NOW, [4])
    older = rules.on_ticks(PARTITION, [tick(ask=80.0, timestamp=T0 + 9)], NOW, [2])

    # Assert
    assert executions == older == []
    assert books.writes == []
    assert books.get("VTI") == SymbolBook(quote=applied, offset=4)


def test_redelivered_ticks_do_not_meet_components_that_arrived_after_them() -> None:
    # Arrange: T1 and T2 share a timestamp, so T2 (later arrival) is the quote.
    # A limit BUY at 100 arrives after both and rests: T2's ask is 105.
    rules, books = engine()
    t1 = tick(bid=98.5, ask=99.0, timestamp=T0)
    t2 = tick(bid=104.5, ask=105.0, timestamp=T0)
    rules.on_ticks(PARTITION, [t1, t2], NOW, [0, 1])
    rules.on_components(PARTITION, [limit("BUY", 100.0)], NOW)

    # Act: a crash before the ticks' offsets were committed delivers both again.
    executions = rules.on_ticks(PARTITION, [t1, t2], NOW, [0, 1])

    # Assert: T1 (ask 99.0) was never a quote while the component rested.
    assert executions == []
    book = book_of(books)
    assert (book.quote, book.offset) == (t2, 1)
    assert [c.component_order_id for c in book.resting] == ["po-1/0"]


def test_a_partly_redelivered_batch_applies_only_the_new_ticks() -> None:
    rules, books = engine()
    t1 = tick(bid=98.5, ask=99.0, timestamp=T0)
    t2 = tick(bid=104.5, ask=105.0, timestamp=T0)
    rules.on_ticks(PARTITION, [t1, t2], NOW, [0, 1])
    comp = limit("BUY", 100.0)
    rules.on_components(PARTITION, [comp], NOW)
    t3 = tick(bid=99.5, ask=100.0, timestamp=T0 + 1)

    executions = rules.on_ticks(PARTITION, [t1, t2, t3], NOW, [0, 1, 2])

    assert executions == [execute(comp, t3, NOW)]
    assert books.get("VTI") == SymbolBook(quote=t3, offset=2)


def test_offsets_are_judged_per_symbol() -> None:
    # IVE's book has seen offset 5; VTI's has not: VTI's tick at offset 3 is new.
    rules, books = engine({"IVE": SymbolBook(quote=tick("IVE"), offset=5)})
    vti = tick("VTI", timestamp=T0)

    rules.on_ticks(PARTITION, [vti, tick("IVE", timestamp=T0 + 1)], NOW, [3, 4])

    assert books.get("VTI") == SymbolBook(quote=vti, offset=3)
    assert book_of(books, "IVE").offset == 5


def test_without_offsets_every_tick_is_applied() -> None:
    rules, books = engine({"VTI": SymbolBook(quote=tick(timestamp=T0), offset=10)})
    newer = tick(ask=111.0, timestamp=T0 + 1)

    rules.on_ticks(PARTITION, [newer], NOW)

    assert books.get("VTI") == SymbolBook(quote=newer, offset=10)


# --- what is staged, and where -------------------------------------------------------


def test_every_book_change_is_staged_with_the_batchs_partition() -> None:
    rules, books = engine()
    comp = market()

    rules.on_components(PARTITION, [comp], NOW)  # rests
    rules.on_ticks(PARTITION, [tick(timestamp=T0)], NOW, [0])  # executes it

    assert [(p, key) for p, key, _ in books.writes] == [(PARTITION, "VTI"), (PARTITION, "VTI")]
    assert [book.resting for _, _, book in books.writes] == [(comp,), ()]


def test_a_component_on_another_partition_is_staged_there() -> None:
    rules, books = engine()

    rules.on_components(0, [market(symbol="IVE")], NOW)

    assert [(p, key) for p, key, _ in books.writes] == [(0, "IVE")]


def test_a_component_executing_at_once_leaves_the_book_unstaged() -> None:
    # Nothing in the book changed, so there is nothing to write to the changelog.
    rules, books = engine({"VTI": SymbolBook(quote=tick())})

    rules.on_components(PARTITION, [market()], NOW)

    assert books.writes == []


def test_a_stale_tick_without_offsets_leaves_the_book_unstaged() -> None:
    rules, books = engine({"VTI": SymbolBook(quote=tick(timestamp=T0 + 5))})

    rules.on_ticks(PARTITION, [tick(timestamp=T0)], NOW)

    assert books.writes == []


def test_a_stale_tick_with_an_offset_stages_the_new_offset() -> None:
    # The quote stays, but the book must remember the tick was applied.
    quote = tick(timestamp=T0 + 5)
    rules, books = engine({"VTI": SymbolBook(quote=quote, offset=0)})

    rules.on_ticks(PARTITION, [tick(timestamp=T0)], NOW, [1])

    assert books.writes == [(PARTITION, "VTI", SymbolBook(quote=quote, offset=1))]
