"""Faust plumbing shared by the topologies: the app, the transports, the sink service.

Input topics are batch topics (`fintank.batching`): an agent receives each
fetched partition batch whole and acks it when its effects are durable. The
tick agent only *queues* points in the persister, so it acks a batch from the
persister's ``on_written`` callback: a crash redelivers every tick whose point
was not written yet (at-least-once into InfluxDB, no point lost).
"""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path
from typing import Any

import mode

from fintank.batching import BatchingApp
from fintank.config import Settings
from fintank.sinks.influx import InfluxPersister
from fintank.sinks.transports import InfluxV1Transport, InfluxV2Transport, Transport

log = logging.getLogger(__name__)


def make_app(settings: Settings) -> BatchingApp:
    """The Faust app with fintank's settings (partitions, commit cadence, data dir)."""
    state = Path(settings.state_dir)
    return BatchingApp(
        settings.app_id,
        broker=settings.broker,
        datadir=str(state / f"{settings.app_id}-data"),
        topic_partitions=settings.partitions,
        topic_allow_declare=True,
        store="memory://",
        web_port=settings.web_port,
        web_host="127.0.0.1",
        web_bind="127.0.0.1",
        broker_commit_interval=timedelta(seconds=1),
        # A crashed worker's partitions move to the others after this long
        # (faust's default is 60 s).
        broker_session_timeout=10.0,
        broker_heartbeat_interval=1.0,
        # Up to 4 MiB per partition per fetch (~35k ticks) instead of faust's 1 MiB:
        # fewer round trips while a caught-up partition holds a fetch open.
        consumer_max_fetch_size=4 * 1024 * 1024,
        # Counted in items: on batch topics one item is a whole fetched batch.
        stream_buffer_maxsize=64,
        consumer_auto_offset_reset="earliest",
    )


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
