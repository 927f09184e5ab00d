"""The bolts of fintank's own topology, each in the one `fintank.bolt.Bolt` shape.

Pure: a batch (and ``now``) in, an `Out` out; state in declared tables. They
compose the smaller bolts and state functions of `fintank.ticks`,
`fintank.analytics` and `fintank.trading`, and say in their `Out` what must
follow delivery: an execution's fill (and the InfluxDB points of both) go in
``then``, so a crash never leaves a fill without its execution nor a point
without its record.

    Market     ticks + components (key=symbol): tick deserializer -> bid_ask points,
               analytics, rule engine -> executions -> fills
    Orders     orders (key=portfolio_order_id): validator -> components, positions
    FillsByTaxpayer  fills (key=symbol) -> positions (key=taxpayer)
    Positions  positions (key=taxpayer) -> accounts (GET /positions/{id})
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from fintank.analytics.engine import Analytics, AnalyticsConfig, CandleChunk, Outputs, SymbolState
from fintank.analytics.points import candle_line
from fintank.bolt import Batch, Bolt, Out, State
from fintank.codec import loads
from fintank.engine.spec import Table
from fintank.sinks.lines import BidAskLines
from fintank.ticks import TickDeserializer
from fintank.trading import SymbolBook, book_from_json, fill_for
from fintank.trading import points as trading_points
from fintank.trading.accounts import Account, PositionKeeper, account_from_json
from fintank.trading.engine import RuleEngine
from fintank.trading.ledger import Ledger
from fintank.trading.orders import Accepted, OrderValidator, Redelivered, Rejected
from fintank.trading.records import Execution, component_from_json, taxpayer_key

BOOKS = Table("books", book_from_json, SymbolBook)  # symbol -> quote + resting components
ANALYTICS = Table("analytics", SymbolState.from_dict, SymbolState)  # symbol -> SymbolState
HISTORY = Table("candle-history", CandleChunk.from_dict, CandleChunk)  # emitted candles
ACCEPTED = Table("accepted-orders", list, list)  # portfolio_order_id -> [partition, offset]
ACCOUNTS = Table("accounts", account_from_json, Account)  # taxpayer key -> Account


def execute(executions: Sequence[Execution]) -> Out:
    """Executions, then (once delivered) their points, their fills, then the fills' points."""
    out = Out()
    for e in executions:
        out.emit("executions", e.symbol, e)

    def delivered(now: float) -> Out:
        then = fill(executions, now)
        then.points[:0] = [trading_points.execution_line(e) for e in executions]
        return then

    out.then = delivered
    return out


def fill(executions: Iterable[Execution], now: float) -> Out:
    """The fills of ``executions``, stamped ``now``; their points once they are delivered."""
    fills = [fill_for(e, now) for e in executions]
    out = Out()
    for f in fills:
        out.emit("fills", f.symbol, f)
    out.then = Out(points=[trading_points.fill_line(f) for f in fills])
    return out


class Market(Bolt):
    """A symbol's ticks and resting components meet here: quotes, candles, executions."""

    inputs = ("ticks", "components")
    outputs = ("executions", "fills", "candles", "indicators", "signals", "alerts", "deadletters")
    tables = (BOOKS, ANALYTICS, HISTORY)
    replay = ("executions", "fills")
    every = 0.5  # candles of quiet symbols close by the wall clock

    def __init__(self, state: State, analytics: AnalyticsConfig | None = None) -> None:
        super().__init__(state)
        analytics = analytics or AnalyticsConfig()
        self.bid_ask = BidAskLines()
        self.ledger = Ledger()
        self.books = self.table(BOOKS.name)
        self.engine = RuleEngine(self.books, self.ledger)
        self.analytics = Analytics(self.table(ANALYTICS.name), self.table(HISTORY.name), analytics)
        self._deserializers: dict[str, TickDeserializer] = {}

    def recover(self, replayed: Mapping[str, Sequence[Any]], now: float) -> Out:
        """Learn from the executions and fills topics what this partition already emitted."""
        missing = self.ledger.rebuild(
            (loads(r.value) for r in replayed.get("executions", ())),
            (loads(r.value) for r in replayed.get("fills", ())),
        )
        return fill(missing, now) if missing else Out()

    def process(self, batch: Batch, now: float) -> Out:
        if batch.name == "ticks":
            return self._ticks(batch, now)
        comps = [component_from_json(loads(r.value)) for r in batch.records]
        executions, missing = self.engine.on_components(self.partition, comps, now)
        out = execute(executions) if executions else Out()
        return out.extend(fill(missing, now)) if missing else out

    def stats(self) -> Mapping[str, int]:
        return {
            "late_ticks": self.analytics.late_ticks,
            "executions": len(self.ledger.executions),
            "fills": len(self.ledger.filled),
        }

    def tick(self, now: float) -> Out:
        """Close candles of quiet symbols by the wall clock (end + grace)."""
        return self._analytics(self.analytics.on_clock(now, (self.partition,)))

    def _ticks(self, batch: Batch, now: float) -> Out:
        deserializer = self._deserializers.get(batch.topic)
        if deserializer is None:
            deserializer = self._deserializers[batch.topic] = TickDeserializer(batch.topic)
        result = deserializer.process_batch(batch.values(), now, batch.offsets())
        out = self._analytics(self.analytics.on_ticks(self.partition, result.ticks, result.offsets))
        executions = self.engine.on_ticks(self.partition, result.ticks, now, result.offsets)
        if executions:
            out.extend(execute(executions))
        out.deadletters += zip(result.dead_offsets, result.deadletters, strict=True)
        out.points += self.bid_ask.lines(result.ticks)
        return out

    @staticmethod
    def _analytics(outputs: Outputs) -> Out:
        out = Out()
        for c in outputs.candles:
            out.emit("candles", c.symbol, c)
        for i in outputs.indicators:
            out.emit("indicators", i.symbol, i)
        for s in outputs.signals:
            out.emit("signals", s.symbol, s)
        for a in outputs.alerts:
            out.emit("alerts", a.symbol, a)
        out.points += (candle_line(c) for c in outputs.candles)
        return out


class Orders(Bolt):
    """Portfolio orders: validated, split into components (re-keyed by symbol), taxpayers noted.

    A record carrying an id accepted before is a duplicate (dead-lettered); the
    same record delivered again after a crash is not: it sends its identical
    components again, which downstream recognises by id.
    """

    inputs = ("orders",)
    outputs = ("components", "positions", "deadletters")
    tables = (ACCEPTED,)

    def __init__(self, state: State) -> None:
        super().__init__(state)
        self.accepted = self.table(ACCEPTED.name)
        self._validators: dict[str, OrderValidator] = {}

    def process(self, batch: Batch, now: float) -> Out:
        validator = self._validators.get(batch.topic)
        if validator is None:
            validator = self._validators[batch.topic] = OrderValidator(batch.topic)
        out = Out()
        p = self.partition
        for record in batch.records:
            result = validator.process(record.value, now, (p, record.offset), self.accepted)
            if isinstance(result, Rejected):
                out.deadletter(record.offset, result.deadletter)
                continue
            if isinstance(result, Accepted):
                self.accepted.stage(p, result.order.portfolio_order_id, list(result.source))
            assert isinstance(result, Accepted | Redelivered)
            order = result.order
            components = result.emits()
            out.emits += components
            out.emit(
                "positions", taxpayer_key(order.taxpayer_id), {"taxpayer_id": order.taxpayer_id}
            )
            out.point(trading_points.portfolio_order_line(order))
            out.points += (trading_points.component_line(e.value) for e in components)
        return out


class FillsByTaxpayer(Bolt):
    """fills (key=symbol) -> positions (key=taxpayer): all of a taxpayer's fills on one partition."""

    name = "fills"
    inputs = ("fills",)
    outputs = ("positions",)

    def process(self, batch: Batch, now: float) -> Out:
        out = Out()
        for record in batch.records:
            fill_event = loads(record.value)
            taxpayer = fill_event["taxpayer_id"]
            out.emit(
                "positions", taxpayer_key(taxpayer), {"taxpayer_id": taxpayer, "fill": fill_event}
            )
        return out


class Positions(Bolt):
    """Accepted taxpayers and their fills -> one account each (cash and shares)."""

    inputs = ("positions",)
    tables = (ACCOUNTS,)

    def __init__(self, state: State) -> None:
        super().__init__(state)
        self.accounts = self.table(ACCOUNTS.name)
        self.keeper = PositionKeeper(self.accounts)

    def process(self, batch: Batch, now: float) -> Out:
        for record in batch.records:
            self.keeper.on_event(self.partition, loads(record.value))
        return Out()
