"""The process around the engine: the faust app (worker, web server, CLI), the engine, the sink.

faust runs the worker process (``faust -A topologies.fintank worker``), its
web server and its services. It consumes nothing: its own consumer,
conductor and tables are switched off (`NoKafka`), and fintank's engine
(`fintank.engine`) owns consumption, state and commits.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import faust
from faust.app import BootStrategy

from fintank.config import Settings
from fintank.engine import Engine, EngineConfig, Group, KafkaClients, KafkaSettings
from fintank.sinks.influx import InfluxPersister
from fintank.sinks.transports import InfluxV1Transport, InfluxV2Transport, Transport


class NoKafka(BootStrategy):
    """faust's worker without faust's Kafka consumer, producer and tables (the engine has its own),
    and without its sensors (they measure faust's streams, which carry nothing here)."""

    enable_kafka = False
    enable_sensors = False


class FintankApp(faust.App):
    """A faust app that runs the web server and services only; see `NoKafka`."""

    BootStrategy = NoKafka


def make_app(settings: Settings) -> FintankApp:
    """The faust app: id, web port, data dir."""
    state = Path(settings.state_dir)
    return FintankApp(
        settings.app_id,
        broker=settings.broker,
        datadir=str(state / f"{settings.app_id}-data"),
        web_port=settings.web_port,
        web_host="127.0.0.1",
        web_bind="127.0.0.1",
        web_in_thread=False,
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


def kafka_settings(settings: Settings) -> KafkaSettings:
    """How every Kafka client of the worker connects (one place for it)."""
    return KafkaSettings(settings.bootstrap, settings.app_id)


def make_engine(
    settings: Settings,
    app: faust.App,
    groups: Sequence[Group],
    outputs: dict[str, str],
    persister: InfluxPersister,
) -> Engine:
    """The engine for ``groups``, its members reachable at the app's web address."""

    def url() -> str:
        return str(app.conf.canonical_url)

    config = EngineConfig(
        app_id=settings.app_id,
        deadletters=settings.topics.deadletters,
        commit_interval=settings.commit_interval,
    )
    return Engine(config, groups, outputs, persister, KafkaClients(kafka_settings(settings)), url)
