"""The fintank topology: which bolt reads which topic and writes where, keyed how.

    ticks (key=symbol) ─► [TickDeserializer] ─┬─► InfluxDB bid_ask (batched)
                                              ├─► deadletters (key=source topic)
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
from collections.abc import Sequence
from typing import Any

import faust
from faust.web import Request, Response, View

from fintank.batching import BatchingApp, RecordBatch
from fintank.codec import CODEC_NAME, KEY_CODEC_NAME, dumps, key_bytes, loads
from fintank.config import Settings
from fintank.peek import read_topic
from fintank.records import DeadLetter, Emit
from fintank.runtime import PersisterService, make_app, make_persister
from fintank.sinks.lines import BidAskLines, deadletter_line
from fintank.state import StateTable
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

settings = Settings.from_env(os.environ)  # the process edge: read once, pass down
topics = settings.topics
app: BatchingApp = make_app(settings)
persister = make_persister(settings)
app.service(PersisterService(persister))

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
}


def state_table(name: str, from_json: Any, kind: type) -> StateTable[Any]:
    schema = faust.Schema(key_type=str, key_serializer=KEY_CODEC_NAME, value_serializer=CODEC_NAME)
    table = app.Table(name, partitions=P, schema=schema)
    return StateTable(table, from_json, kind)


# ---------------------------------------------------------------- state
books = state_table("books", book_from_json, SymbolBook)  # symbol -> quote + resting
accepted = state_table("accepted-orders", list, list)  # portfolio_order_id -> [partition, offset]
accounts = state_table("accounts", account_from_json, Account)  # taxpayer key -> Account
ledger = Ledger()
engine = RuleEngine(books, ledger)
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
    """ticks -> [TickDeserializer] -> bid_ask + deadletters + [RuleEngine.on_ticks] -> executions."""
    deserializer = TickDeserializer(topics.ticks)
    bid_ask = BidAskLines()
    async for batch in stream:
        if batch.stale:
            continue  # fetched before a rebalance: it will be redelivered to the owner
        now = time.time()
        result = deserializer.process_batch(batch.values(), now)
        if result.deadletters:
            await send(dead(result.deadletters))
        await recovered(batch)
        executions = engine.on_ticks(batch.partition, result.ticks, now)
        if executions:
            await emit_executions(executions)
        books.publish()  # only now: see fintank.trading.engine
        persister.add(bid_ask.lines(result.ticks), on_written=batch.ack)
        await persister.wait_for_room()


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
