"""Stateful test: the matcher over 3 symbols against a deliberately naive reference model.

The model keeps every tick ever seen and recomputes "the quote" from that
history (greatest timestamp, later arrival wins ties); the real matcher keeps
one tick. Quotes, resting components and every execution must agree.
"""

from __future__ import annotations

import orjson
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from fintank.records import Tick
from fintank.trading.matcher import EMPTY_BOOK, SymbolBook, book_from_json, on_component, on_ticks
from fintank.trading.records import ComponentOrder
from tests.support.ticks import T0
from tests.support.trading import component

SYMBOLS = ("VTI", "IVE", "IWS")

# Few distinct values, so ties, stale ticks and exact limit hits happen often.
stamps = st.integers(0, 8).map(lambda s: T0 + s)
bids = st.sampled_from([98.0, 99.0, 99.5, 100.0, 101.0])
spreads = st.sampled_from([0.0, 0.5, 1.0])
limits = st.none() | st.sampled_from([98.0, 99.5, 100.0, 100.5, 102.0])


class ModelBook:
    """Reference: the whole tick history, and resting components in a list."""

    def __init__(self) -> None:
        self.history: list[Tick] = []
        self.resting: list[ComponentOrder] = []

    def quote(self) -> Tick | None:
        best = None
        for t in self.history:  # arrival order: ">=" lets the later of equal stamps win
            if best is None or t.timestamp >= best.timestamp:
                best = t
        return best

    @staticmethod
    def fill(comp: ComponentOrder, quote: Tick) -> tuple[str, float, float, float] | None:
        if comp.order_type == "BUY":
            ok = comp.limit_price is None or quote.ask <= comp.limit_price
            price = quote.ask
        else:
            ok = comp.limit_price is None or quote.bid >= comp.limit_price
            price = quote.bid
        if not ok:
            return None
        return (comp.component_order_id, price, quote.timestamp, round(comp.amount / price, 6))

    def add_tick(self, tick: Tick) -> list[tuple[str, float, float, float]]:
        self.history.append(tick)
        if self.quote() is not tick:
            return []
        done, keep = [], []
        for comp in self.resting:
            result = self.fill(comp, tick)
            (keep if result is None else done).append(result or comp)
        self.resting = keep  # type: ignore[assignment]
        return done  # type: ignore[return-value]

    def add_component(self, comp: ComponentOrder) -> list[tuple[str, float, float, float]]:
        quote = self.quote()
        result = None if quote is None else self.fill(comp, quote)
        if result is None:
            self.resting.append(comp)
            return []
        return [result]


class MatcherMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.books: dict[str, SymbolBook] = dict.fromkeys(SYMBOLS, EMPTY_BOOK)
        self.models = {s: ModelBook() for s in SYMBOLS}
        self.submitted: set[str] = set()
        self.executed: list[str] = []
        self.now = T0 + 1000
        self.next_id = 0

    def check(self, real: list, expected: list) -> None:
        got = [
            (e.component_order_id, e.requested_price, e.quote_timestamp, e.requested_shares)
            for e in real
        ]
        assert got == expected
        assert all(e.timestamp == self.now for e in real)
        self.executed.extend(e.component_order_id for e in real)

    @rule(
        symbol=st.sampled_from(SYMBOLS),
        quotes=st.lists(st.tuples(bids, spreads, stamps), min_size=1, max_size=4),
    )
    def ticks(self, symbol: str, quotes: list[tuple[float, float, float]]) -> None:
        self.now += 1
        batch = [Tick(symbol, "NYSE", bid, bid + spread, ts) for bid, spread, ts in quotes]
        expected = [e for t in batch for e in self.models[symbol].add_tick(t)]

        self.books[symbol], executions = on_ticks(self.books[symbol], batch, self.now)

        self.check(executions, expected)

    @rule(
        symbol=st.sampled_from(SYMBOLS),
        side=st.sampled_from(["BUY", "SELL"]),
        amount=st.sampled_from([1.0, 250.0, 1000.0, 33.333333]),
        limit=limits,
    )
    def component(self, symbol: str, side: str, amount: float, limit: float | None) -> None:
        self.now += 1
        self.next_id += 1
        comp = component(symbol, side, amount, limit, component_order_id=f"po/{self.next_id}")
        self.submitted.add(comp.component_order_id)
        expected = self.models[symbol].add_component(comp)

        self.books[symbol], executions = on_component(self.books[symbol], comp, self.now)

        self.check(executions, expected)

    @rule(symbol=st.sampled_from(SYMBOLS), data=st.data())
    def redeliver_resting(self, symbol: str, data: st.DataObject) -> None:
        book = self.books[symbol]
        if not book.resting:
            return
        comp = data.draw(st.sampled_from(book.resting))

        book2, executions = on_component(book, comp, self.now)

        assert book2 is book and executions == []

    @rule(symbol=st.sampled_from(SYMBOLS))
    def restore_from_table(self, symbol: str) -> None:
        book = self.books[symbol]

        restored = book_from_json(orjson.loads(orjson.dumps(book)))

        assert restored == book
        self.books[symbol] = restored

    @invariant()
    def books_match_the_model(self) -> None:
        for symbol in SYMBOLS:
            model, book = self.models[symbol], self.books[symbol]
            assert book.quote == model.quote()
            assert book.resting == tuple(model.resting)

    @invariant()
    def every_component_rests_or_executed_once(self) -> None:
        resting = [c.component_order_id for b in self.books.values() for c in b.resting]
        assert len(self.executed) == len(set(self.executed))
        assert sorted(resting + self.executed) == sorted(self.submitted)


MatcherMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
test_matcher_against_model = MatcherMachine.TestCase
