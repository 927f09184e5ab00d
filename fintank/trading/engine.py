"""The rule engine bolt: quotes and component orders in, executions out, per symbol.

It holds no I/O. Its state lives in two places the topology hands it: the
``books`` table (one `SymbolBook` per symbol: quote + resting components,
changelogged by faust) and the `Ledger` (what was already executed). Both
entry points take a whole batch of one partition, so a batch of ticks costs
one table write per symbol, not one per tick.

Book changes are *staged*: the topology publishes them to the changelog only
after the batch's executions were delivered. Were a book without a resting
component durable before that component's execution, a crash in between
would lose the execution for good (the redelivered tick finds no component).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Protocol

from fintank.records import Tick
from fintank.trading.ledger import Ledger
from fintank.trading.matcher import EMPTY_BOOK, SymbolBook, crosses, on_component, on_ticks
from fintank.trading.records import ComponentOrder, Execution
from fintank.trading.sources import take_in


class Books(Protocol):
    """Where the engine keeps one `SymbolBook` per symbol (a `fintank.state.StateTable`)."""

    def get(self, key: str) -> SymbolBook | None: ...

    def stage(self, partition: int, key: str, value: SymbolBook) -> None: ...


class RuleEngine:
    """Bolt: ``(ticks | components) -> executions`` per CONTRACT.md rule engine semantics."""

    outputs = ("executions",)

    def __init__(self, books: Books, ledger: Ledger, max_resting: int | None = None) -> None:
        self.books = books
        self.ledger = ledger
        self.repeats = 0  # components recognised as sent again, by their source
        # At most this many components rest in one symbol's book (None: no bound); one
        # more that would rest is refused, into ``refused`` (the caller dead-letters it).
        self.max_resting = max_resting
        self.refused: list[ComponentOrder] = []

    def on_ticks(
        self,
        partition: int,
        ticks: Sequence[Tick],
        now: float,
        offsets: Sequence[int] | None = None,
    ) -> list[Execution]:
        """Apply valid ticks (in arrival order) to their symbols' quotes and resting components.

        With ``offsets`` (each tick's offset in ``partition``), a tick at or
        below its book's ``offset`` was applied before (a redelivery after a
        crash) and is skipped: it must not meet components that arrived after it.
        """
        by_symbol: dict[str, tuple[list[Tick], list[int]]] = {}
        offs = offsets if offsets is not None else [-1] * len(ticks)
        for tick, offset in zip(ticks, offs, strict=True):
            found = by_symbol.get(tick.symbol)
            if found is None:
                by_symbol[tick.symbol] = ([tick], [offset])
            else:
                found[0].append(tick)
                found[1].append(offset)
        executions: list[Execution] = []
        for symbol, (group, group_offsets) in by_symbol.items():
            book = self._book(symbol)
            fresh: Sequence[Tick] = group
            if offsets is not None:
                if group_offsets[-1] <= book.offset:
                    continue  # all applied before
                if group_offsets[0] <= book.offset:
                    pairs = zip(group, group_offsets, strict=True)
                    fresh = [t for t, o in pairs if o > book.offset]
            new, done = on_ticks(book, fresh, now)
            if offsets is not None:
                new = replace(new, offset=group_offsets[-1])
            if new is not book:
                self.books.stage(partition, symbol, new)
            executions += done
        self._record(executions)
        return executions

    def on_components(
        self, partition: int, components: Sequence[ComponentOrder], now: float
    ) -> tuple[list[Execution], list[Execution]]:
        """Match or rest each component; returns (new executions, executions whose fill is missing).

        A component sent again (its order was redelivered to the Orders bolt) is known
        by its source (`fintank.trading.sources`); one redelivered to this bolt, by
        the ledger. Either makes nothing new; if the ledger knows its execution and
        its fill never went out, the execution is returned as the second list so the
        caller sends the missing fill.
        """
        executions: list[Execution] = []
        missing_fills: list[Execution] = []
        ledger = self.ledger
        for comp in components:
            cid = comp.component_order_id
            book = self._book(comp.symbol)
            taken = take_in(book.taken, comp)
            if taken is None:
                self.repeats += 1
            elif taken is not book.taken:
                book = replace(book, taken=taken)
                self.books.stage(partition, comp.symbol, book)  # noted, whatever follows
            done_before = ledger.executions.get(cid)
            if taken is None or done_before is not None:
                if done_before is not None and cid not in ledger.filled:
                    ledger.record_fill(cid)  # claimed now: a second copy must not repair it again
                    missing_fills.append(done_before)
                continue
            bound = self.max_resting
            if bound is not None and len(book.resting) >= bound:
                quote = book.quote
                if quote is None or not crosses(comp, quote):
                    self.refused.append(comp)  # would rest in a full book
                    continue
            new, done = on_component(book, comp, now)
            if new is not book:
                self.books.stage(partition, comp.symbol, new)
            self._record(done)
            executions += done
        return executions, missing_fills

    def clean_books(self, partition: int, symbols: Sequence[str]) -> int:
        """Drop resting components the ledger knows executed from the books of ``symbols``
        (after a recovery: the changelog may predate the removal); returns how many books."""
        cleaned = 0
        for symbol in symbols:
            book = self.books.get(symbol)
            if book is not None and self._book(symbol) != book:
                self.books.stage(partition, symbol, self._book(symbol))
                cleaned += 1
        return cleaned

    def _book(self, symbol: str) -> SymbolBook:
        book = self.books.get(symbol) or EMPTY_BOOK
        if book.resting:
            executed = self.ledger.executions
            if any(c.component_order_id in executed for c in book.resting):
                # The changelog lost the removal of a component that did execute.
                book = replace(
                    book,
                    resting=tuple(c for c in book.resting if c.component_order_id not in executed),
                )
        return book

    def _record(self, executions: list[Execution]) -> None:
        # The caller emits one fill per returned execution: claim both now, so
        # a repeat of the component later in the same batch makes nothing.
        for execution in executions:
            self.ledger.record_execution(execution)
            self.ledger.record_fill(execution.component_order_id)
