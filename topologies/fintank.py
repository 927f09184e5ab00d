"""The fintank topology: which bolt reads which topic and writes where, keyed how.

    ticks (key=symbol) ─► [TickDeserializer] ─┬─► InfluxDB bid_ask (batched)
                                              ├─► deadletters (key=source topic)
                                              ├─► [Analytics] ─► candles, indicators, signals, alerts
                                              │     (+ a 0.5 s timer closing candles by wall clock)
                                              └─► [RuleEngine.on_ticks] ─┐
    orders (key=portfolio_order_id)                                      │
      └─► [OrderValidator] ─┬─► deadletters                              │
                            ├─► fintank-components (key=symbol) ─► [RuleEngine.on_components]
                            ├─► fintank-positions (key=taxpayer)         │
                            └─► InfluxDB portfolio_orders, portfolio_component_orders
                                                                         ▼
               executions (key=symbol) ─► fills (key=symbol) ─► InfluxDB executions, fills
    fills ─► [re-key by taxpayer] ─► fintank-positions ─► [PositionKeeper] ─► GET /positions/{id}

ticks and fintank-components have the same partition count and key, so faust
assigns partition p of both to one worker: a symbol's quote and its resting
components meet in one `SymbolBook` (Storm's fields grouping).

Run it: ``.venv/bin/faust -A topologies.fintank worker -l info``. Agents are
thin: take a batch, call the bolt, send what it returns, ack when durable.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

import aiohttp
import faust
from faust.web import Request, Response, View
from yarl import URL

from fintank.analytics import http as analytics_http
from fintank.analytics.engine import Analytics, AnalyticsConfig, CandleChunk, Outputs, SymbolState
from fintank.analytics.http import candles_route, instruments_response
from fintank.analytics.points import candle_line
from fintank.batching import BatchingApp, RecordBatch
from fintank.codec import dumps, key_bytes, loads
from fintank.config import Settings
from fintank.feed import RecentFeed
from fintank.peek import read_topic
from fintank.records import DeadLetter, Emit, Tick
from fintank.runtime import PersisterService, make_app, make_persister
from fintank.sinks.lines import BidAskLines, deadletter_line
from fintank.state import StateTable, codec_table
from fintank.ticks import TickDeserializer
from fintank.trading import (
    Accepted,
    OrderValidator,
    Redelivered,
    SymbolBook,
    book_from_json,
    fill_for,
    position_json,
)
from fintank.trading import points as trading_points
from fintank.trading.accounts import Account, PositionKeeper, account_from_json
from fintank.trading.engine import RuleEngine
from fintank.trading.ledger import Ledger
from fintank.trading.records import Execution, component_from_json, taxpayer_key
from fintank.web import live_page

settings = Settings.from_env(os.environ)  # the process edge: read once, pass down
topics = settings.topics
app: BatchingApp = make_app(settings)
persister = make_persister(settings)
app.service(PersisterService(persister))
feed = RecentFeed(
    settings.bootstrap,
    {
        "executions": topics.executions,
        "fills": topics.fills,
        "signals": topics.signals,
        "alerts": topics.alerts,
    },
)
app.service(feed)

# ---------------------------------------------------------------- topics
# Inputs arrive as raw bytes in whole fetched batches (fintank.batching);
# fintank's codec, not faust's models, owns the wire format.
P = settings.partitions
ticks_topic = app.batch_topic(topics.ticks, partitions=P)
orders_topic = app.batch_topic(topics.orders, partitions=P)
components_topic = app.batch_topic(topics.components, partitions=P)
fills_in_topic = app.batch_topic(topics.fills, partitions=P)
positions_topic = app.batch_topic(topics.positions, partitions=P)


OUTPUTS = {
    "deadletters": app.raw_topic(topics.deadletters, partitions=1),
    "components": app.raw_topic(topics.components, partitions=P),
    "executions": app.raw_topic(topics.executions, partitions=P),
    "fills": app.raw_topic(topics.fills, partitions=P),
    "positions": app.raw_topic(topics.positions, partitions=P),
    "candles": app.raw_topic(topics.candles, partitions=P),
    "indicators": app.raw_topic(topics.indicators, partitions=P),
    "signals": app.raw_topic(topics.signals, partitions=P),
    "alerts": app.raw_topic(topics.alerts, partitions=P),
}


def state_table(name: str, from_json: Any, kind: type) -> StateTable[Any]:
    return StateTable(codec_table(app, name, P), from_json, kind)


# ---------------------------------------------------------------- state
books = state_table("books", book_from_json, SymbolBook)  # symbol -> quote + resting
accepted = state_table("accepted-orders", list, list)  # portfolio_order_id -> [partition, offset]
accounts = state_table("accounts", account_from_json, Account)  # taxpayer key -> Account
symbols = state_table("analytics", SymbolState.from_dict, SymbolState)  # symbol -> SymbolState
history = state_table("candle-history", CandleChunk.from_dict, CandleChunk)  # emitted candles
ledger = Ledger()
engine = RuleEngine(books, ledger)
analytics = Analytics(symbols, history, AnalyticsConfig.from_settings(settings))
keeper = PositionKeeper(accounts)


async def send(emits: list[Emit]) -> list[Any]:
    """Send what bolts emitted; returns the delivery futures (faust flushes before committing)."""
    futures = []
    for emit in emits:
        topic = OUTPUTS[emit.output]
        futures.append(await topic.send(key=key_bytes(emit.key), value=dumps(emit.value)))
        if emit.output == "deadletters":
            persister.add([deadletter_line(emit.value.source_topic, emit.value.timestamp)])
    return futures


def dead(letters: list[DeadLetter]) -> list[Emit]:
    return [Emit("deadletters", letter.source_topic, letter) for letter in letters]


async def emit_executions(
    executions: list[Execution], missing_fills: Sequence[Execution] = ()
) -> None:
    """Executions first, delivered, then their fills: a crash never leaves a fill without its execution."""
    if executions:
        delivered = await send([Emit("executions", e.symbol, e) for e in executions])
        await asyncio.gather(*delivered)
        persister.add(trading_points.execution_line(e) for e in executions)
    now = time.time()
    fills = [fill_for(e, now) for e in [*executions, *missing_fills]]
    await send([Emit("fills", f.symbol, f) for f in fills])
    persister.add(trading_points.fill_line(f) for f in fills)


# Analytics state reaches the changelogs only after the outputs it produced were
# delivered, and in the order it was taken. Waiting for delivery inline would
# stall the tick path one producer round trip per batch, so a chain of tasks
# waits instead; a tick batch is acked only once its link is done. The ticks
# agent and the clock timer hold the lock from folding to sending, so outputs
# and snapshots keep one order.
analytics_lock = asyncio.Lock()
_published: asyncio.Future[None] | None = None


async def emit_analytics(out: Outputs) -> asyncio.Future[None]:
    """Send analytics outputs; returns the task that publishes their state once delivered."""
    global _published
    taken = (symbols.take(), history.take())  # now: later batches change the same records
    emits = [
        *(Emit("candles", c.symbol, c) for c in out.candles),
        *(Emit("indicators", i.symbol, i) for i in out.indicators),
        *(Emit("signals", s.symbol, s) for s in out.signals),
        *(Emit("alerts", a.symbol, a) for a in out.alerts),
    ]
    delivered = await send(emits)
    if out.candles:
        persister.add(candle_line(c) for c in out.candles)
    _published = asyncio.ensure_future(_publish(_published, delivered, taken))
    _published.add_done_callback(_crash_on_error)
    return _published


async def _publish(
    previous: asyncio.Future[None] | None,
    delivered: list[Any],
    taken: tuple[list[tuple[int, str, bytes | None]], list[tuple[int, str, bytes | None]]],
) -> None:
    if previous is not None:
        await previous
    await asyncio.gather(*delivered)
    # History before the states that say its candles were emitted (see Analytics._remember).
    await asyncio.gather(*history.send_taken(taken[1]))
    symbols.send_taken(taken[0])


def _crash_on_error(task: asyncio.Future[None]) -> None:
    """An output that cannot be delivered leaves memory ahead of Kafka: restart from the changelogs."""
    if not task.cancelled() and task.exception() is not None:
        asyncio.ensure_future(app.crash(task.exception()))  # type: ignore[arg-type]


@app.timer(interval=0.5)
async def close_candles() -> None:
    """Close candles by the wall clock (end + grace) on quiet symbols of this worker."""
    if app.rebalancing or app.in_recovery or not app.tables.recovery.completed.is_set():
        return
    assigned = {tp.partition for tp in app.consumer.assignment() if tp.topic == topics.ticks}
    async with analytics_lock:
        out = analytics.on_clock(time.time(), assigned)
        if out.candles:
            await emit_analytics(out)


# Exactly once: before a worker matches anything on partition p of a new
# assignment, it learns from the executions/fills topics what was emitted.
_recovered: dict[tuple[int, int], asyncio.Task[None]] = {}


async def recovered(batch: RecordBatch) -> None:
    """Wait until this worker knows what was emitted for ``batch``'s partition.

    The first batch of an assignment starts one recovery for every matcher
    partition assigned (one read of each output topic), not one per partition.
    """
    key = (batch.partition, batch.generation_id)
    task = _recovered.get(key)
    if task is None:
        assigned = sorted(
            {
                tp.partition
                for tp in app.consumer.assignment()
                if tp.topic in (topics.ticks, topics.components)
            }
            | {batch.partition}
        )
        task = asyncio.ensure_future(_recover(assigned))
        for partition in assigned:
            _recovered.setdefault((partition, batch.generation_id), task)
        _recovered[key] = task
    await task


async def _recover(partitions: list[int]) -> None:
    executions, fills = await asyncio.gather(
        read_topic(settings.bootstrap, topics.executions, partitions=partitions),
        read_topic(settings.bootstrap, topics.fills, partitions=partitions),
    )
    missing = ledger.rebuild((r.value for r in executions), (r.value for r in fills))
    if missing:
        await emit_executions([], missing)


# ---------------------------------------------------------------- agents
@app.agent(ticks_topic, concurrency=1)
async def ticks(stream: faust.StreamT[RecordBatch]) -> None:
    """ticks -> [TickDeserializer] -> bid_ask + deadletters + [Analytics] + [RuleEngine.on_ticks]."""
    deserializer = TickDeserializer(topics.ticks)
    bid_ask = BidAskLines()
    async for batch in stream:
        if batch.stale:
            continue  # fetched before a rebalance: it will be redelivered to the owner
        now = time.time()
        result = deserializer.process_batch(batch.values(), now, batch.offsets())
        if result.deadletters:
            await send(dead(result.deadletters))
        async with analytics_lock:
            out = analytics.on_ticks(batch.partition, result.ticks, result.offsets)
            published = await emit_analytics(out)
        await recovered(batch)
        executions = engine.on_ticks(batch.partition, result.ticks, now)
        if executions:
            await emit_executions(executions)
        books.publish()  # only now: see fintank.trading.engine
        persister.add(bid_ask.lines(result.ticks), on_written=_after(published, batch))
        await persister.wait_for_room()


def _after(published: asyncio.Future[None], batch: RecordBatch) -> Callable[[], None]:
    """An ``on_written`` callback acking ``batch`` once its analytics state is published too."""

    def ack(task: asyncio.Future[None]) -> None:
        if not task.cancelled() and task.exception() is None:
            batch.ack()

    def written() -> None:
        published.add_done_callback(ack)

    return written


@app.agent(orders_topic, concurrency=1)
async def orders(stream: faust.StreamT[RecordBatch]) -> None:
    """orders -> [OrderValidator] -> components (key=symbol), taxpayers, deadletters, InfluxDB."""
    validator = OrderValidator(topics.orders)
    async for batch in stream:
        if batch.stale:
            continue
        now = time.time()
        lines: list[str] = []
        for record in batch.records:
            result = validator.process(
                record.value, now, (batch.partition, record.offset), accepted
            )
            if isinstance(result, Accepted):
                accepted.set(batch.partition, result.order.portfolio_order_id, list(result.source))
            if isinstance(result, Accepted | Redelivered):
                order = result.order
                tax = Emit(
                    "positions", taxpayer_key(order.taxpayer_id), {"taxpayer_id": order.taxpayer_id}
                )
                await send([*result.emits(), tax])
                lines.append(trading_points.portfolio_order_line(order))
                lines += (trading_points.component_line(e.value) for e in result.emits())
            else:
                await send(result.emits())
        persister.add(lines, on_written=batch.ack)


@app.agent(components_topic, concurrency=1)
async def components(stream: faust.StreamT[RecordBatch]) -> None:
    """fintank-components -> [RuleEngine.on_components] -> executions -> fills."""
    async for batch in stream:
        if batch.stale:
            continue
        await recovered(batch)
        comps = [component_from_json(loads(r.value)) for r in batch.records]
        executions, missing_fills = engine.on_components(batch.partition, comps, time.time())
        await emit_executions(executions, missing_fills)
        books.publish()
        persister.add([], on_written=batch.ack)


@app.agent(fills_in_topic, concurrency=1)
async def fills_by_taxpayer(stream: faust.StreamT[RecordBatch]) -> None:
    """fills (key=symbol) -> fintank-positions (key=taxpayer): all of a taxpayer on one partition."""
    async for batch in stream:
        if batch.stale:
            continue
        events = [loads(r.value) for r in batch.records]
        await send(
            [
                Emit(
                    "positions",
                    taxpayer_key(f["taxpayer_id"]),
                    {"taxpayer_id": f["taxpayer_id"], "fill": f},
                )
                for f in events
            ]
        )
        batch.ack()  # faust flushes the producer before it commits these offsets


@app.agent(positions_topic, concurrency=1)
async def positions(stream: faust.StreamT[RecordBatch]) -> None:
    """fintank-positions -> [PositionKeeper] -> accounts table (GET /positions/{taxpayer_id})."""
    async for batch in stream:
        if batch.stale:
            continue
        for record in batch.records:
            keeper.on_event(batch.partition, loads(record.value))
        batch.ack()  # table changelogs are flushed before faust commits


# ---------------------------------------------------------------- HTTP
class Health(View):
    """``GET /health``: is this worker assigned partitions and processing?"""

    async def get(self, request: Request) -> Response:
        assignment = app.consumer.assignment() if app.consumer else set()
        ready = bool(app.rebalancing is False and assignment)
        stats = persister.stats
        return self.json(
            {
                "ready": ready,
                "assigned": sorted(f"{tp.topic}:{tp.partition}" for tp in assignment),
                "persister": {
                    "buffered": len(persister),
                    "written": stats.written,
                    "batches": stats.batches,
                    "retries": stats.retries,
                    "rejected": stats.rejected,
                },
                "ledger": {"executions": len(ledger.executions), "fills": len(ledger.filled)},
                "analytics": {"late_ticks": analytics.late_ticks},
            }
        )


app.page("/health")(Health)


@app.page("/positions/{taxpayer_id}")
@app.table_route(table=accounts.table, match_info="taxpayer_id")
async def get_positions(web: Any, request: Request, taxpayer_id: str) -> Response:
    """``GET /positions/{taxpayer_id}``: cash and shares summed from fills (routed to the owner)."""
    account = accounts.get(taxpayer_key(taxpayer_id))
    if account is None:
        return web.json(
            {"error": f"unknown taxpayer {taxpayer_id!r} (no accepted order)"}, status=404
        )
    return web.json(position_json(account.taxpayer_id, account.position))


def answer(web: Any, response: analytics_http.Response) -> Response:
    """A JSON answer written by fintank's codec (it knows fintank's records)."""
    return web.bytes(dumps(response.body), content_type="application/json", status=response.status)


@app.page("/candles/{symbol}")
@app.table_route(table=symbols.table, match_info="symbol")
async def get_candles(web: Any, request: Request, symbol: str) -> Response:
    """``GET /candles/{symbol}?interval=1m&minutes=30`` (routed to the worker owning the symbol)."""
    return answer(web, candles_route(symbol, request.query, analytics))


@app.page("/instruments")
async def get_instruments(web: Any, request: Request) -> Response:
    """``GET /instruments``: every symbol's quote, gathered from every worker.

    Each worker holds the quotes of its own partitions (and maybe stale standby
    copies of others); the newest quote of each symbol wins. ``?scope=local``
    answers from this worker alone (how workers ask each other).
    """
    quotes: dict[str, Tick] = {}
    for key in books.all_keys():
        book = books.get(key)
        if book is not None and book.quote is not None:
            _newest(quotes, book.quote)
    if request.query.get("scope") != "local":
        for peer in _peers():
            try:
                async with app.http_client.get(
                    peer.with_path("/instruments").with_query(scope="local"),
                    timeout=aiohttp.ClientTimeout(total=5),
                ) as reply:
                    reply.raise_for_status()
                    for quote in loads(await reply.read()):
                        _newest(quotes, Tick(**quote))
            except (aiohttp.ClientError, TimeoutError) as exc:
                error = analytics_http.error(503, f"worker {peer} did not answer: {exc!r}")
                return answer(web, error)
    return answer(web, instruments_response(quotes))


def _newest(quotes: dict[str, Tick], quote: Tick) -> None:
    held = quotes.get(quote.symbol)
    if held is None or quote.timestamp > held.timestamp:
        quotes[quote.symbol] = quote


def _peers() -> list[URL]:
    """The web addresses of the other workers of this app (from faust's assignor)."""
    me = URL(str(app.conf.canonical_url))
    hosts = {URL(host) for host in app.router.tables_metadata()}
    return sorted((h for h in hosts if h != me), key=str)


@app.page("/recent")
async def get_recent(web: Any, request: Request) -> Response:
    """``GET /recent``: the newest executions, fills, signals and alerts (live page)."""
    return answer(web, analytics_http.Response(200, feed.recent()))


@app.page("/")
async def live(web: Any, request: Request) -> Response:
    """The live page: quotes, candles, executions, fills, signals and alerts."""
    return web.bytes(live_page(), content_type="text/html")


@app.page("/debug/consumer")
async def debug_consumer(web: Any, request: Request) -> Response:
    """faust's view of each partition: read offset, committed offset, active or paused."""
    c: Any = app.consumer
    active = c._active_partitions
    return web.json(
        {
            str(tp): {
                "read": c._read_offset.get(tp),
                "committed": c._committed_offset.get(tp),
                "active": active is None or tp in active,
                "acked_pending": len(c._acked.get(tp, [])),
                **c.handoff_stats.get(tp, {}),
            }
            for tp in sorted(c.assignment())
            if not tp.topic.endswith("-changelog")
        }
    )
