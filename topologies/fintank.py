"""The fintank topology: which bolt reads which topic and writes where, keyed how.

    ticks (key=symbol) ──► [tick deserializer] ──► InfluxDB bid_ask (batched)
                                    └────────────► deadletters (key=source topic)

Run it: ``.venv/bin/faust -A topologies.fintank worker -l info``.
Agents are thin: they take a batch from their stream, call the bolt, hand
what it returns to a sink or a topic, and ack. Every `if` about markets lives
in a bolt under `fintank/`.
"""

from __future__ import annotations

import os
import time
from typing import Any

import faust
from faust.web import Request, Response, View

from fintank.codec import dumps, key_bytes
from fintank.config import Settings
from fintank.records import DeadLetter
from fintank.batching import BatchingApp, RecordBatch
from fintank.runtime import PersisterService, make_app, make_persister
from fintank.sinks.lines import BidAskLines, deadletter_line
from fintank.ticks import TickDeserializer

settings = Settings.from_env(os.environ)  # the process edge: read once, pass down
topics = settings.topics
app: BatchingApp = make_app(settings)


# Inputs arrive as raw bytes in whole fetched batches (fintank.batching);
# fintank's codec, not faust's models, owns the wire format.
ticks_topic = app.batch_topic(topics.ticks, partitions=settings.partitions)
deadletters_topic = app.topic(
    topics.deadletters,
    key_type=bytes,
    value_type=bytes,
    key_serializer="raw",
    value_serializer="raw",
    partitions=1,
)

persister = make_persister(settings)
app.service(PersisterService(persister))


async def send_deadletters(letters: list[DeadLetter]) -> None:
    """Dead letters are rare: send them one by one (faust flushes the producer before committing)."""
    for letter in letters:
        await deadletters_topic.send(key=key_bytes(letter.source_topic), value=dumps(letter))
    persister.add(deadletter_line(letter.source_topic, letter.timestamp) for letter in letters)


@app.agent(ticks_topic, concurrency=1)
async def ticks(stream: faust.StreamT[RecordBatch]) -> None:
    """ticks -> [TickDeserializer] -> bid_ask points + deadletters, a fetched batch at a time."""
    deserializer = TickDeserializer(topics.ticks)
    bid_ask = BidAskLines()
    async for records in stream:
        if records.stale:
            continue  # fetched before a rebalance: it will be redelivered to the owner
        result = deserializer.process_batch(records.values(), time.time())
        if result.deadletters:
            await send_deadletters(result.deadletters)
        persister.add(bid_ask.lines(result.ticks), on_written=records.ack)
        await persister.wait_for_room()


class Health(View):
    """``GET /health``: is this worker assigned partitions and processing?"""

    async def get(self, request: Request) -> Response:
        assignment = app.consumer.assignment() if app.consumer else set()
        ready = bool(app.rebalancing is False and assignment)
        return self.json(
            {
                "ready": ready,
                "assigned": sorted(f"{tp.topic}:{tp.partition}" for tp in assignment),
                "persister": {"buffered": len(persister), **vars_of(persister.stats)},
            }
        )


def vars_of(obj: object) -> dict[str, Any]:
    return {name: getattr(obj, name) for name in obj.__slots__}  # type: ignore[attr-defined]


app.page("/health")(Health)
