"""The agents of the fintank topology: one processor per assigned partition of each group.

Agents are thin: take a batch, call the bolts, send what they return, stage
state, persist lines. The engine (`fintank.engine`) decides when state and
offsets become durable; the agents only keep two orders it cannot know:

* an execution is delivered before its fill is sent (a crash never leaves a
  fill without its execution), and its InfluxDB line is written only once it
  is on Kafka (so a lost execution never leaves a point behind);
* whatever must never be sent twice (executions, fills, dead letters) is sent
  right after `Context.fence` proved this worker still owns the partition.

Groups (partition counts must match within a group):

    market     ticks + fintank-components (key=symbol): tick deserializer ->
               bid_ask, analytics, rule engine -> executions -> fills
    orders     orders (key=portfolio_order_id): validator -> components, positions, dead letters
    fills      fills (key=symbol) -> fintank-positions (key=taxpayer)
    positions  fintank-positions (key=taxpayer) -> accounts
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from fintank.analytics.engine import Analytics, AnalyticsConfig, CandleChunk, Outputs, SymbolState
from fintank.analytics.points import candle_line
from fintank.codec import loads
from fintank.config import Topics
from fintank.engine.spec import Group, Table
from fintank.engine.task import Batch, Context
from fintank.records import DeadLetter
from fintank.sinks.lines import BidAskLines, deadletter_line
from fintank.ticks import TickDeserializer
from fintank.trading import (
    Accepted,
    OrderValidator,
    Redelivered,
    SymbolBook,
    book_from_json,
    fill_for,
)
from fintank.trading import points as trading_points
from fintank.trading.accounts import Account, PositionKeeper, account_from_json
from fintank.trading.engine import RuleEngine
from fintank.trading.ledger import Ledger
from fintank.trading.records import Execution, component_from_json, taxpayer_key

BOOKS = Table("books", book_from_json, SymbolBook)  # symbol -> quote + resting components
ANALYTICS = Table("analytics", SymbolState.from_dict, SymbolState)  # symbol -> SymbolState
HISTORY = Table("candle-history", CandleChunk.from_dict, CandleChunk)  # emitted candles
ACCEPTED = Table("accepted-orders", list, list)  # portfolio_order_id -> [partition, offset]
ACCOUNTS = Table("accounts", account_from_json, Account)  # taxpayer key -> Account


async def send_deadletters(
    ctx: Context, topic: str, letters: Sequence[tuple[int, DeadLetter]]
) -> None:
    """Dead-letter once (the engine skips what was sent before a crash), plus InfluxDB points."""
    if not letters:
        return
    sent = await ctx.deadletter(topic, letters)
    ctx.persist(deadletter_line(letter.source_topic, letter.timestamp) for letter in sent)


class Market:
    """ticks + fintank-components of one partition: quotes, analytics, matching, executions."""

    def __init__(
        self, ctx: Context, topics: Topics, config: AnalyticsConfig, persister: Any
    ) -> None:
        self.ctx = ctx
        self.topics = topics
        self.persister = persister
        self.deserializer = TickDeserializer(topics.ticks)
        self.bid_ask = BidAskLines()
        self.ledger = Ledger()
        self.books = ctx.table(BOOKS.name)
        self.engine = RuleEngine(self.books, self.ledger)
        self.analytics = Analytics(ctx.table(ANALYTICS.name), ctx.table(HISTORY.name), config)

    async def recover(self, replayed: Mapping[str, Sequence[Any]]) -> None:
        """Learn from the executions and fills topics what this partition already emitted."""
        missing = self.ledger.rebuild(
            (loads(r.value) for r in replayed.get(self.topics.executions, ())),
            (loads(r.value) for r in replayed.get(self.topics.fills, ())),
        )
        if missing:
            await self._fills(missing)

    async def on_batch(self, batch: Batch) -> None:
        if batch.topic == self.topics.ticks:
            await self._ticks(batch)
        else:
            await self._components(batch)

    async def on_clock(self, now: float) -> None:
        """Close candles of quiet symbols by the wall clock (end + grace)."""
        out = self.analytics.on_clock(now, (self.ctx.partition,))
        if out.candles:
            await self._analytics(out)

    async def _ticks(self, batch: Batch) -> None:
        ctx = self.ctx
        now = ctx.now()
        result = self.deserializer.process_batch(batch.values(), now, batch.offsets())
        await send_deadletters(
            ctx, batch.topic, list(zip(result.dead_offsets, result.deadletters, strict=True))
        )
        await self._analytics(self.analytics.on_ticks(ctx.partition, result.ticks, result.offsets))
        executions = self.engine.on_ticks(ctx.partition, result.ticks, now, result.offsets)
        if executions:
            await self._execute(executions)
        ctx.persist(self.bid_ask.lines(result.ticks))

    async def _components(self, batch: Batch) -> None:
        comps = [component_from_json(loads(r.value)) for r in batch.records]
        executions, missing = self.engine.on_components(self.ctx.partition, comps, self.ctx.now())
        if executions:
            await self._execute(executions)
        if missing:
            self.ctx.track(self._fills(missing))

    async def _analytics(self, out: Outputs) -> None:
        send = self.ctx.send
        for c in out.candles:
            await send("candles", c.symbol, c)
        for i in out.indicators:
            await send("indicators", i.symbol, i)
        for s in out.signals:
            await send("signals", s.symbol, s)
        for a in out.alerts:
            await send("alerts", a.symbol, a)
        if out.candles:
            self.ctx.persist(candle_line(c) for c in out.candles)

    async def _execute(self, executions: list[Execution]) -> None:
        """Fenced send of executions; their fills follow once they are delivered."""
        ctx = self.ctx
        await ctx.fence()
        delivered = [await ctx.send("executions", e.symbol, e) for e in executions]
        ctx.track(self._then_fill(delivered, executions))

    async def _then_fill(
        self, delivered: Sequence[asyncio.Future[Any]], executions: list[Execution]
    ) -> None:
        await asyncio.gather(*delivered)
        self.ctx.persist(trading_points.execution_line(e) for e in executions)
        await self._fills(executions)

    async def _fills(self, executions: Iterable[Execution]) -> None:
        ctx = self.ctx
        await ctx.fence()
        now = ctx.now()
        fills = [fill_for(e, now) for e in executions]
        delivered = [await ctx.send("fills", f.symbol, f) for f in fills]
        await asyncio.gather(*delivered)
        ctx.persist(trading_points.fill_line(f) for f in fills)


class Orders:
    """orders of one partition: validate, split into components, register the taxpayer."""

    def __init__(self, ctx: Context, topics: Topics) -> None:
        self.ctx = ctx
        self.validator = OrderValidator(topics.orders)
        self.accepted = ctx.table(ACCEPTED.name)

    async def recover(self, replayed: Mapping[str, Sequence[Any]]) -> None:
        return None

    async def on_clock(self, now: float) -> None:
        return None

    async def on_batch(self, batch: Batch) -> None:
        ctx = self.ctx
        p = ctx.partition
        now = ctx.now()
        lines: list[str] = []
        dead: list[tuple[int, DeadLetter]] = []
        for record in batch.records:
            result = self.validator.process(record.value, now, (p, record.offset), self.accepted)
            if isinstance(result, Accepted):
                self.accepted.stage(p, result.order.portfolio_order_id, list(result.source))
            if isinstance(result, Accepted | Redelivered):
                order = result.order
                for emit in result.emits():
                    await ctx.send(emit.output, emit.key, emit.value)
                await ctx.send(
                    "positions", taxpayer_key(order.taxpayer_id), {"taxpayer_id": order.taxpayer_id}
                )
                lines.append(trading_points.portfolio_order_line(order))
                lines += (trading_points.component_line(e.value) for e in result.emits())
            else:
                dead.append((record.offset, result.deadletter))
        await send_deadletters(ctx, batch.topic, dead)
        ctx.persist(lines)


class FillsByTaxpayer:
    """fills (key=symbol) -> fintank-positions (key=taxpayer): a taxpayer's fills on one partition."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    async def recover(self, replayed: Mapping[str, Sequence[Any]]) -> None:
        return None

    async def on_clock(self, now: float) -> None:
        return None

    async def on_batch(self, batch: Batch) -> None:
        for record in batch.records:
            fill = loads(record.value)
            taxpayer = fill["taxpayer_id"]
            await self.ctx.send(
                "positions", taxpayer_key(taxpayer), {"taxpayer_id": taxpayer, "fill": fill}
            )


class Positions:
    """fintank-positions of one partition -> accounts (GET /positions/{taxpayer_id})."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.accounts = ctx.table(ACCOUNTS.name)
        self.keeper = PositionKeeper(self.accounts)

    async def recover(self, replayed: Mapping[str, Sequence[Any]]) -> None:
        return None

    async def on_clock(self, now: float) -> None:
        return None

    async def on_batch(self, batch: Batch) -> None:
        p = self.ctx.partition
        for record in batch.records:
            self.keeper.on_event(p, loads(record.value))


def groups(
    topics: Topics, config: AnalyticsConfig, persister: Any, clock: float = 0.5
) -> list[Group]:
    """The fintank topology as engine groups."""
    return [
        Group(
            "market",
            (topics.ticks, topics.components),
            lambda ctx: Market(ctx, topics, config, persister),
            tables=(BOOKS, ANALYTICS, HISTORY),
            replay=(topics.executions, topics.fills),
            clock=clock,
        ),
        Group("orders", (topics.orders,), lambda ctx: Orders(ctx, topics), tables=(ACCEPTED,)),
        Group("fills", (topics.fills,), FillsByTaxpayer),
        Group("positions", (topics.positions,), Positions, tables=(ACCOUNTS,)),
    ]


def outputs(topics: Topics) -> dict[str, str]:
    """Output name (what bolts emit to) -> topic."""
    names = [
        *("deadletters", "components", "executions", "fills", "positions"),
        *("candles", "indicators", "signals", "alerts"),
    ]
    return {name: getattr(topics, name) for name in names}
