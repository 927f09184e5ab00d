"""The rule engine's per-symbol matcher (CONTRACT.md rules 2-5), as pure state functions.

Each function has the Bytewax shape ``(book, input, now) -> (book, executions)``;
the topology keeps one `SymbolBook` per symbol in a table (components and ticks
are both keyed by symbol, so they meet on one partition) and sends the
executions. Nothing here reads a clock: ``now`` stamps executions.

Decisions the contract leaves to us, and why:

* A tick older than the quote is not a quote, so it never triggers an
  execution: executions happen "at the quote", and a stale price is not it.
  A tick with the quote's timestamp replaces it (later arrival wins) and is
  checked like any new quote.
* Within one quote, resting components are checked in their arrival order.
  ``priority`` is carried, not used: v1 has no liquidity limit, so every
  crossing component executes at the same price whatever the order.
* Both functions return the *same* book object when the state did not
  change, so the topology can skip a table write with ``new is not old``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import Any

from fintank.records import Tick
from fintank.trading.ids import execution_id, market_order_id
from fintank.trading.records import BUY, ComponentOrder, Execution, component_from_json
from fintank.trading.sources import Taken, taken_from_json

_TIMESTAMP = attrgetter("timestamp")


@dataclass(frozen=True, slots=True)
class SymbolBook:
    """One symbol's matcher state: its quote (newest valid tick) and resting components.

    ``offset``: the ticks-partition offset of the newest tick applied (-1: none
    known), so a tick delivered again after a crash is not applied twice
    (`fintank.trading.engine.RuleEngine.on_ticks`).
    """

    quote: Tick | None = None
    resting: tuple[ComponentOrder, ...] = ()
    offset: int = -1
    #: Per orders partition, the highest source offset of a component taken in and the
    #: ids at it (`fintank.trading.sources`): in the book's own changelog record, so it
    #: never disagrees with ``resting`` after a crash.
    taken: Taken = ()


EMPTY_BOOK = SymbolBook()


def book_from_json(obj: dict[str, Any]) -> SymbolBook:
    """A `SymbolBook` from its JSON object (as ``orjson.loads(orjson.dumps(book))``)."""
    quote = obj["quote"]
    return SymbolBook(
        None if quote is None else Tick(**quote),
        tuple(component_from_json(c) for c in obj["resting"]),
        obj.get("offset", -1),
        taken_from_json(obj.get("taken", ())),
    )


def crosses(comp: ComponentOrder, quote: Tick) -> bool:
    """Whether ``comp`` may execute at ``quote``.

    Market: always. Limit: BUY when ask <= limit, SELL when bid >= limit.
    """
    limit = comp.limit_price
    if limit is None:
        return True
    if comp.order_type == BUY:
        return quote.ask <= limit
    return quote.bid >= limit


def execute(comp: ComponentOrder, quote: Tick, now: float) -> Execution:
    """The execution of ``comp`` at ``quote``: BUY at the ask, SELL at the bid, stamped ``now``."""
    price = quote.ask if comp.order_type == BUY else quote.bid
    cid = comp.component_order_id
    return Execution(
        comp.taxpayer_id,
        comp.portfolio_order_id,
        cid,
        market_order_id(cid),
        execution_id(cid),
        comp.order_type,
        comp.symbol,
        comp.amount,
        round(comp.amount / price, 6),
        price,
        quote.timestamp,
        now,
    )


def on_ticks(
    book: SymbolBook, ticks: Sequence[Tick], now: float
) -> tuple[SymbolBook, list[Execution]]:
    """Apply a batch of this symbol's valid ticks, in arrival order.

    A tick becomes the quote when its timestamp is >= the quote's; each new
    quote is checked against the resting components. With nothing resting
    (the usual case) this is one C-level pass to find the newest tick.
    """
    if not ticks:
        return book, []
    if not book.resting:
        # The last-arrived of the ticks with the greatest timestamp: max() keeps
        # the first maximum it meets, and it meets them in reverse arrival order.
        newest = ticks[0] if len(ticks) == 1 else max(reversed(ticks), key=_TIMESTAMP)
        quote = book.quote
        if quote is not None and newest.timestamp < quote.timestamp:
            return book, []
        return SymbolBook(newest, (), book.offset, book.taken), []
    return _ticks_with_resting(book, ticks, now)


def _ticks_with_resting(
    book: SymbolBook, ticks: Sequence[Tick], now: float
) -> tuple[SymbolBook, list[Execution]]:
    quote = book.quote
    resting = book.resting
    executions: list[Execution] = []
    for tick in ticks:
        if quote is not None and tick.timestamp < quote.timestamp:
            continue  # stale: persisted elsewhere, never a quote here
        quote = tick
        if resting:
            still = []
            for comp in resting:
                if crosses(comp, tick):
                    executions.append(execute(comp, tick, now))
                else:
                    still.append(comp)
            if len(still) != len(resting):
                resting = tuple(still)
    if quote is book.quote:
        return book, executions
    return SymbolBook(quote, resting, book.offset, book.taken), executions


def on_component(
    book: SymbolBook, comp: ComponentOrder, now: float
) -> tuple[SymbolBook, list[Execution]]:
    """Take one component of this symbol: execute it now at the quote if it may, else rest it.

    A component already resting (same ``component_order_id``, a redelivery)
    is ignored. Whether it has already *executed* this book cannot know: the
    topology remembers executed component ids (see `fintank.trading`).
    """
    cid = comp.component_order_id
    for resting in book.resting:
        if resting.component_order_id == cid:
            return book, []
    quote = book.quote
    if quote is not None and crosses(comp, quote):
        return book, [execute(comp, quote, now)]
    return SymbolBook(quote, (*book.resting, comp), book.offset, book.taken), []
