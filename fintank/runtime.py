"""Faust plumbing shared by the topologies: the app, batching with deferred acks, the sink service.

Why batches: a Faust agent pays per-event costs (queue hand-offs, an ack
under a lock, sensor calls) and then waits on the next event; the bolts do
far less work per tick than that. `batches` hands a bolt everything the
stream has buffered at once, so Python's per-call overhead is paid per batch.

Why deferred acks: Faust commits an offset once its event is acked, and
`take_events` acks a batch as soon as the loop body returns. The tick agent
only *queues* points in the persister, so the events stay un-acked (one
extra reference on each message) until InfluxDB confirmed their write. A
crash therefore redelivers every tick whose point was not written:
at-least-once into InfluxDB, with no point lost.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import faust
import mode

from fintank.config import Settings
from fintank.sinks.influx import InfluxPersister
from fintank.sinks.transports import InfluxV1Transport, InfluxV2Transport, Transport

log = logging.getLogger(__name__)

BATCH_MAX = 10_000
BATCH_WITHIN = 0.05  # seconds: how long a partial batch may wait for more events


def make_app(settings: Settings) -> faust.App:
    """The Faust app with fintank's settings (codec, partitions, commit cadence, data dir)."""
    state = Path(settings.state_dir)
    return faust.App(
        settings.app_id,
        broker=settings.broker,
        datadir=str(state / f"{settings.app_id}-data"),
        topic_partitions=settings.partitions,
        topic_allow_declare=True,
        store="memory://",
        web_port=settings.web_port,
        web_host="127.0.0.1",
        broker_commit_interval=timedelta(seconds=1),
        # Large fetches and a deep per-topic buffer keep the agent fed instead of
        # pausing the fetcher every few hundred messages (faust's flow control).
        broker_max_poll_records=5000,
        stream_buffer_maxsize=BATCH_MAX * 2,
        consumer_auto_offset_reset="earliest",
    )


class EventBatch(Sequence[Any]):
    """Events taken from a stream together; `ack` marks all of them processed, once."""

    __slots__ = ("_events", "_stream", "_acked")

    def __init__(self, events: list[Any], stream: faust.StreamT[Any]) -> None:
        self._events = events
        self._stream = stream
        self._acked = False
        for event in events:  # hold each message until ack(): see the module docstring
            event.message.incref()

    def __len__(self) -> int:
        return len(self._events)

    def __getitem__(self, i: Any) -> Any:
        return self._events[i]

    def __iter__(self) -> Any:
        return iter(self._events)

    def ack(self) -> None:
        """Release the batch: its offsets may now be committed."""
        if self._acked:
            return
        self._acked = True
        consumer = self._stream.app.consumer
        for event in self._events:
            # The final ack of a message tells the consumer its offset is committable.
            event.message.ack(consumer)


async def batches(
    stream: faust.StreamT[Any], max_: int = BATCH_MAX, within: float = BATCH_WITHIN
) -> AsyncIterator[EventBatch]:
    """Yield the stream's events in batches whose acks the caller controls."""
    async for events in stream.take_events(max_, within):
        yield EventBatch(list(events), stream)


def make_transport(settings: Settings) -> Transport:
    """The transport ``FINTANK_INFLUX_TRANSPORT`` names."""
    if settings.influx_transport == "v2":
        return InfluxV2Transport(
            settings.influx_v2_url,
            settings.influx_token,
            settings.influx_org,
            settings.influx_bucket,
        )
    return InfluxV1Transport(settings.influx_url, settings.influx_database)


def make_persister(settings: Settings) -> InfluxPersister:
    """An `InfluxPersister` over the configured transport."""
    return InfluxPersister(
        make_transport(settings),
        batch_size=settings.batch_size,
        flush_interval=settings.flush_interval,
        max_buffer=settings.max_buffer,
    )


class PersisterService(mode.Service):
    """Runs a persister's flush loop with the worker; flushes what is left on shutdown."""

    def __init__(self, persister: InfluxPersister, **kwargs: Any) -> None:
        self.persister = persister
        super().__init__(**kwargs)

    async def on_start(self) -> None:
        self.add_future(self.persister.run())

    async def on_stop(self) -> None:
        await self.persister.close()
