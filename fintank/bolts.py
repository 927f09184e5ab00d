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

Bad input is contained here (docs/reliability.md, "Bad input"): every record
of every input, the internal topics included, is read by a strict reader that
returns a reason instead of raising, and what it refuses is dead-lettered, so
a garbage record never stops a partition. ``max_future`` (Market, Orders)
bounds event time after ``now``; the built-in topology passes
``FINTANK_MAX_FUTURE``, and None (the default here) leaves it unbounded.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from fintank.analytics.engine import Analytics, AnalyticsConfig, CandleChunk, Outputs, SymbolState
from fintank.analytics.points import candle_line
from fintank.bolt import Batch, Bolt, Out, State
from fintank.codec import JSONDecodeError, loads, payload_text
from fintank.engine.spec import Table
from fintank.records import DeadLetter, Emit
from fintank.sinks.lines import BidAskLines
from fintank.ticks import TickDeserializer
from fintank.trading import SymbolBook, book_from_json, fill_for
from fintank.trading import points as trading_points
from fintank.trading.accounts import Account, PositionKeeper, account_from_json
from fintank.trading.engine import RuleEngine
from fintank.trading.internal import (
    parse_component,
    parse_execution,
    parse_fill,
    parse_position_event,
)
from fintank.trading.ledger import Ledger
from fintank.trading.orders import Accepted, OrderValidator, Redelivered, Rejected
from fintank.trading.records import Execution, fill_from_json, taxpayer_key

BOOKS = Table("books", book_from_json, SymbolBook)  # symbol -> quote + resting components
ANALYTICS = Table("analytics", SymbolState.from_dict, SymbolState)  # symbol -> SymbolState
HISTORY = Table("candle-history", CandleChunk.from_dict, CandleChunk)  # emitted candles
# portfolio_order_id -> [partition, offset, accepted at (wall clock; absent before retention)]
ACCEPTED = Table("accepted-orders", list, list)
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

    def __init__(
        self,
        state: State,
        analytics: AnalyticsConfig | None = None,
        max_future: float | None = None,
        max_resting: int | None = None,
    ) -> None:
        super().__init__(state)
        analytics = analytics or AnalyticsConfig()
        self.max_future = max_future
        self.replay_skipped = 0  # replayed executions/fills records that could not be read
        self.bid_ask = BidAskLines()
        self.ledger = Ledger()
        self.books = self.table(BOOKS.name)
        self.engine = RuleEngine(self.books, self.ledger, max_resting)
        self.executed = 0  # executions made by this instance
        self.fills_sent = 0  # their fills, and fills of earlier executions repaired
        self.analytics = Analytics(self.table(ANALYTICS.name), self.table(HISTORY.name), analytics)
        self._deserializers: dict[str, TickDeserializer] = {}

    def recover(self, replayed: Mapping[str, Sequence[Any]], now: float) -> Out:
        """Learn from the executions and fills topics what this partition already emitted.

        A record there that is not one fintank could have written (someone else wrote
        to the topic) is skipped and counted (``replay_skipped``): it is no input of
        this bolt, so it has no dead letter here.
        """
        executions = []
        # The InfluxDB points of what was emitted since the last commit, written again: a
        # crash may have come between a record's delivery and its point's write, and the
        # record is not made again. Same tags and time, so a point written twice is one.
        points = []
        for r in replayed.get("executions", ()):
            obj = _json(r.value)
            execution = parse_execution(obj)
            if isinstance(execution, str):
                self.replay_skipped += 1
            else:
                executions.append(obj)
                points.append(trading_points.execution_line(execution))
        fills = []
        for r in replayed.get("fills", ()):
            obj = _json(r.value)
            if type(obj) is dict and type(obj.get("component_order_id")) is str:
                fills.append(obj)
                if not isinstance(parse_fill(r.value), str):
                    points.append(trading_points.fill_line(fill_from_json(obj)))
            else:
                self.replay_skipped += 1
        missing = self.ledger.rebuild(executions, fills)
        # A book restored from the changelog may still hold a component executed since;
        # clean them all now: the ledger forgets (`tick`) before a quiet symbol ticks again.
        self.engine.clean_books(self.partition, self.books.all_keys())
        self.fills_sent += len(missing)
        out = fill(missing, now) if missing else Out()
        out.points[:0] = points
        return out

    def process(self, batch: Batch, now: float) -> Out:
        if batch.name == "ticks":
            return self._ticks(batch, now)
        out = Out()
        comps = []
        records = {}  # component id -> its record, for a refusal's dead letter
        for r in batch.records:
            comp = parse_component(r.value, r.key)
            if isinstance(comp, str):
                out.deadletter(r.offset, DeadLetter(batch.topic, comp, payload_text(r.value), now))
            else:
                comps.append(comp)
                records[comp.component_order_id] = r
        executions, missing = self.engine.on_components(self.partition, comps, now)
        for comp in self.engine.refused:
            r = records[comp.component_order_id]
            reason = (
                f"the book of {comp.symbol!r} holds {self.engine.max_resting} resting components "
                "already (FINTANK_MAX_RESTING); this one would rest"
            )
            out.deadletter(r.offset, DeadLetter(batch.topic, reason, payload_text(r.value), now))
        self.engine.refused.clear()
        out.deadletters.sort(key=lambda pair: pair[0])
        self.fills_sent += len(missing)
        if executions:
            self.executed += len(executions)
            self.fills_sent += len(executions)
            out.extend(execute(executions))
        return out.extend(fill(missing, now)) if missing else out

    def stats(self) -> Mapping[str, int]:
        return {
            "late_ticks": self.analytics.late_ticks,
            "executions": self.executed,
            "fills": self.fills_sent,
            "repeated_components": self.engine.repeats,
        }

    def tick(self, now: float) -> Out:
        """Close candles of quiet symbols by the wall clock (end + grace); forget old ledger
        entries (the engine ticks a task only once it has caught up with its inputs, so no
        redelivered record is left for them to judge)."""
        self.ledger.forget_old()
        return self._analytics(self.analytics.on_clock(now, (self.partition,)))

    def _ticks(self, batch: Batch, now: float) -> Out:
        deserializer = self._deserializers.get(batch.topic)
        if deserializer is None:
            deserializer = self._deserializers[batch.topic] = TickDeserializer(
                batch.topic, self.max_future
            )
        keys = [r.key for r in batch.records]
        result = deserializer.process_batch(batch.values(), now, batch.offsets(), keys)
        out = self._analytics(self.analytics.on_ticks(self.partition, result.ticks, result.offsets))
        executions = self.engine.on_ticks(self.partition, result.ticks, now, result.offsets)
        if executions:
            self.executed += len(executions)
            self.fills_sent += len(executions)
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
    every = 10.0  # forget accepted ids older than the retention

    def __init__(
        self,
        state: State,
        max_future: float | None = None,
        order_id_retention: float | None = None,
    ) -> None:
        super().__init__(state)
        self.accepted = self.table(ACCEPTED.name)
        self.max_future = max_future
        self.retention = order_id_retention  # seconds; None: remember every id
        self.forgotten = 0
        # (accepted at, portfolio_order_id), oldest first: what `tick` forgets next.
        self._by_age: deque[tuple[float, str]] = deque()
        self._validators: dict[str, OrderValidator] = {}

    def recover(self, replayed: Mapping[str, Sequence[Any]], now: float) -> Out:
        """Index the restored ids by age (ids accepted before retention existed: from now)."""
        aged = []
        for key in self.accepted.all_keys():
            value = self.accepted.get(key)
            aged.append((float(value[2]) if len(value) > 2 else now, key))
        self._by_age = deque(sorted(aged))
        return Out()

    def tick(self, now: float) -> Out:
        """Forget ids accepted more than ``retention`` seconds ago (tombstones on the changelog)."""
        if self.retention is None:
            return Out()
        horizon = now - self.retention
        by_age = self._by_age
        while by_age and by_age[0][0] < horizon:
            _, key = by_age.popleft()
            self.accepted.stage_delete(self.partition, key)
            self.forgotten += 1
        return Out()

    def stats(self) -> Mapping[str, int]:
        return {"accepted_ids": len(self._by_age), "forgotten_ids": self.forgotten}

    def process(self, batch: Batch, now: float) -> Out:
        validator = self._validators.get(batch.topic)
        if validator is None:
            validator = self._validators[batch.topic] = OrderValidator(batch.topic, self.max_future)
        out = Out()
        p = self.partition
        for record in batch.records:
            result = validator.process(
                record.value, now, (p, record.offset), self.accepted, record.key
            )
            if isinstance(result, Rejected):
                out.deadletter(record.offset, result.deadletter)
                continue
            if isinstance(result, Accepted):
                order_id = result.order.portfolio_order_id
                self.accepted.stage(p, order_id, [*result.source, now])
                self._by_age.append((now, order_id))
            assert isinstance(result, Accepted | Redelivered)
            order, at = result.order, record.offset
            # Stamped with where the order was read: a re-send is known by it downstream.
            components = [
                Emit(e.output, e.key, replace(e.value, source_partition=p, source_offset=at))
                for e in result.emits()
            ]
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
    outputs = ("positions", "deadletters")

    def process(self, batch: Batch, now: float) -> Out:
        out = Out()
        for record in batch.records:
            fill_event = parse_fill(record.value)
            if isinstance(fill_event, str):
                out.deadletter(record.offset, _letter(batch, record, fill_event, now))
                continue
            taxpayer = fill_event["taxpayer_id"]
            event = {
                "taxpayer_id": taxpayer,
                "fill": fill_event,
                "source_partition": self.partition,  # where it was read: a re-send is known
                "source_offset": record.offset,  # by it (fintank.trading.accounts)
            }
            out.emit("positions", taxpayer_key(taxpayer), event)
        return out


class Positions(Bolt):
    """Accepted taxpayers and their fills -> one account each (cash and shares)."""

    inputs = ("positions",)
    outputs = ("deadletters",)
    tables = (ACCOUNTS,)

    def __init__(self, state: State) -> None:
        super().__init__(state)
        self.accounts = self.table(ACCOUNTS.name)
        self.keeper = PositionKeeper(self.accounts)

    def process(self, batch: Batch, now: float) -> Out:
        out = Out()
        for record in batch.records:
            event = parse_position_event(record.value, record.key)
            if isinstance(event, str):
                out.deadletter(record.offset, _letter(batch, record, event, now))
                continue
            refused = self.keeper.on_event(self.partition, event)
            if refused is not None:
                out.deadletter(record.offset, _letter(batch, record, refused, now))
        return out


def _letter(batch: Batch, record: Any, reason: str, now: float) -> DeadLetter:
    return DeadLetter(batch.topic, reason, payload_text(record.value), now)


def _json(raw: bytes | None) -> Any:
    """A replayed record's value, decoded (None if it is not JSON)."""
    try:
        return None if raw is None else loads(raw)
    except JSONDecodeError:
        return None
