"""The runtime: a `Topology` turned into a faust worker running fintank's engine.

faust runs the worker process (``faust -A topologies.fintank worker``), its
web server and its services. It consumes nothing: its own consumer,
conductor and tables are switched off (`NoKafka`), and fintank's engine
(`fintank.engine`) owns consumption, state and commits. `build` makes one
engine group per bolt, and `BoltRunner` (the engine's processor for a bolt)
does every bolt's I/O the same way: decode typed streams, call the bolt, send
what its `Out` says (dead letters once, emits, points, then what follows
delivery), so no topology repeats it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import aiohttp
import faust
from faust.app import BootStrategy
from yarl import URL

from fintank.bolt import Bolt, Out, State, decoded
from fintank.codec import dumps, loads
from fintank.config import Settings, advertised_host
from fintank.engine import Engine, EngineConfig, Group, KafkaClients, KafkaSettings
from fintank.engine.kafka import faust_credentials
from fintank.engine.task import Batch, Context
from fintank.errors import ConfigError, SinkError
from fintank.logs import logging_config
from fintank.metrics import CONTENT_TYPE, FintankCollector, exposition, registry
from fintank.records import DeadLetter
from fintank.sinks.influx import InfluxPersister
from fintank.sinks.lines import deadletter_line
from fintank.sinks.transports import InfluxV1Transport, InfluxV2Transport, Transport
from fintank.topology import (
    DEADLETTERS,
    BoltSpec,
    Request,
    Response,
    Route,
    Topology,
    TopologyError,
)
from fintank.web.errors import faust_web_settings


class NoKafka(BootStrategy):
    """faust's worker without faust's Kafka consumer, producer and tables (the engine has its own),
    and without its sensors (they measure faust's streams, which carry nothing here)."""

    enable_kafka = False
    enable_sensors = False


class FintankApp(faust.App):
    """A faust app that runs the web server and services only; see `NoKafka`."""

    BootStrategy = NoKafka


def make_app(settings: Settings) -> FintankApp:
    """The faust app: id, web port, data dir, log format; errors as JSON, faust's views off."""
    state = Path(settings.state_dir)
    state.mkdir(parents=True, exist_ok=True)  # faust makes only the last folder of datadir
    return FintankApp(
        settings.app_id,
        broker=settings.broker_urls,
        broker_credentials=faust_credentials(kafka_settings(settings)),
        datadir=str(state / f"{settings.app_id}-data"),
        web_port=settings.web_port,
        web_host=advertised_host(settings),
        web_bind=settings.web_bind,
        web_in_thread=False,
        logging_config=logging_config(settings.log_format),
        **faust_web_settings(settings.faust_web_views),
    )


def make_transport(settings: Settings) -> Transport:
    """The transport ``FINTANK_INFLUX_TRANSPORT`` names, with its credentials."""
    if settings.influx_transport == "v2":
        if not settings.influx_token:  # Settings.validate says so too; Settings() skips it
            raise ConfigError(
                "FINTANK_INFLUX_TRANSPORT=v2 needs an API token: set FINTANK_INFLUX_TOKEN "
                "or FINTANK_INFLUX_TOKEN_FILE"
            )
        return InfluxV2Transport(
            settings.influx_v2_url,
            settings.influx_token,
            settings.influx_org,
            settings.influx_bucket,
        )
    return InfluxV1Transport(
        settings.influx_url,
        settings.influx_database,
        username=settings.influx_username,
        password=settings.influx_password,
    )


def make_persister(settings: Settings) -> InfluxPersister:
    """An `InfluxPersister` over the configured transport."""
    return InfluxPersister(
        make_transport(settings),
        batch_size=settings.batch_size,
        flush_interval=settings.flush_interval,
        max_buffer=settings.max_buffer,
    )


def kafka_settings(settings: Settings) -> KafkaSettings:
    """How every Kafka client of the worker connects: servers, TLS, SASL (one place for it)."""
    return KafkaSettings.from_settings(settings, settings.app_id)


def make_engine(
    settings: Settings,
    app: faust.App,
    groups: Sequence[Group],
    outputs: dict[str, str],
    persister: InfluxPersister,
    deadletters: str | None,
) -> Engine:
    """The engine for ``groups``, its members reachable at the app's web address."""

    def url() -> str:
        return str(app.conf.canonical_url)

    config = EngineConfig(
        app_id=settings.app_id,
        deadletters=deadletters,
        commit_interval=settings.commit_interval,
        max_queued=settings.max_queued,
        replication=settings.replication_factor,
        min_insync=settings.min_insync_replicas,
    )
    return Engine(config, groups, outputs, persister, KafkaClients(kafka_settings(settings)), url)


def persister_deadletters(
    engine: Engine, persister: InfluxPersister, topic: str
) -> Callable[[list[DeadLetter]], Awaitable[None]]:
    """Where points InfluxDB refuses for their content go: the dead-letter topic (keyed by
    their ``source_topic``, ``influxdb:<measurement>``), plus a ``deadletters`` point each.
    Returns once Kafka has the letters; the persister counts the lines done only then."""

    async def send(letters: list[DeadLetter]) -> None:
        futures = [
            await engine.send(topic, letter.source_topic.encode("utf-8"), dumps(letter))
            for letter in letters
        ]
        await asyncio.gather(*futures)
        for letter in letters:
            engine.counters.deadletters[letter.source_topic] += 1
        with contextlib.suppress(SinkError):  # closing: the Kafka record is what counts
            persister.add(
                deadletter_line(letter.source_topic, letter.timestamp)
                for letter in letters
                if letter.source_topic != "influxdb:deadletters"  # never a loop of refusals
            )

    return send


# ---------------------------------------------------------------- bolts on the engine
class BoltRunner:
    """The engine's processor for one partition of one bolt: all of a bolt's I/O, in one place."""

    def __init__(self, ctx: Context, spec: BoltSpec, topology: Topology) -> None:
        self.ctx = ctx
        cls = spec.cls
        tables = {t.name: ctx.table(t.name) for t in cls.tables}
        self.bolt: Bolt = cls(State(ctx.partition, tables), **spec.params)
        streams = topology.streams
        self.names = {streams[n].topic: n for n in cls.inputs}
        self.decoders = {streams[n].topic: streams[n].decode for n in cls.inputs}
        self.replays = {streams[n].topic: n for n in cls.replay}
        self.allowed = frozenset(cls.outputs)
        self.name = spec.name

    async def recover(self, replayed: Mapping[str, Sequence[Any]]) -> None:
        by_name = {self.replays[topic]: records for topic, records in replayed.items()}
        await self.apply(self.bolt.recover(by_name, self.ctx.now()), None)

    async def on_batch(self, batch: Batch) -> None:
        now = self.ctx.now()
        batch.name = self.names[batch.topic]
        decode = self.decoders[batch.topic]
        failed: list[tuple[int, DeadLetter]] = []
        if decode is not None:
            batch, failed = decoded(batch, decode, now)
        out = self.bolt.process(batch, now) if batch.records else Out()
        if failed:
            out.deadletters[:0] = failed
            out.deadletters.sort(key=_offset)
        await self.apply(out, batch.topic)

    async def on_clock(self, now: float) -> None:
        await self.apply(self.bolt.tick(now), None)

    async def apply(self, out: Out, topic: str | None) -> list[asyncio.Future[Any]]:
        """Send what ``out`` says; returns the delivery futures of its emits."""
        ctx = self.ctx
        if out.deadletters:
            if topic is None:
                raise TopologyError(f"bolt {self.name!r}: dead letters outside a batch")
            sent = await ctx.deadletter(topic, out.deadletters)
            ctx.persist(deadletter_line(d.source_topic, d.timestamp) for d in sent)
        futures = []
        for emit in out.emits:
            if emit.output not in self.allowed:
                raise TopologyError(
                    f"bolt {self.name!r} emitted to {emit.output!r}, not one of its outputs"
                )
            raw = isinstance(emit.value, bytes)
            futures.append(await ctx.send(emit.output, emit.key, emit.value, raw=raw))
        if out.points:
            ctx.persist(out.points)
        if out.then is not None:
            ctx.track(self._then(futures, out.then))
        return futures

    async def _then(self, delivered: Sequence[asyncio.Future[Any]], then: Any) -> None:
        """Once ``delivered`` are on Kafka: send ``then`` and wait until it is delivered too."""
        await asyncio.gather(*delivered)
        nxt = then(self.ctx.now()) if callable(then) else then
        await asyncio.gather(*await self.apply(nxt, None))


def _offset(pair: tuple[int, DeadLetter]) -> int:
    return pair[0]


def groups(topology: Topology) -> list[Group]:
    """One engine group per bolt: its inputs, tables, replays and clock."""
    topics = topology.streams

    def make(spec: BoltSpec) -> Any:
        return lambda ctx: BoltRunner(ctx, spec, topology)

    return [
        Group(
            spec.name,
            tuple(topics[n].topic for n in spec.cls.inputs),
            make(spec),
            tables=spec.cls.tables,
            replay=tuple(topics[n].topic for n in spec.cls.replay),
            clock=spec.cls.every,
        )
        for spec in topology.bolts
    ]


# ---------------------------------------------------------------- the worker
@dataclass
class Runtime:
    """A topology built into a worker: the faust app, the engine, the persister."""

    topology: Topology
    settings: Settings
    app: FintankApp
    engine: Engine
    persister: InfluxPersister

    def bolts(self, cls: type[Bolt]) -> list[Bolt]:
        """This worker's recovered instances of ``cls`` (one per partition it owns)."""
        name = self.topology.spec(cls).name
        out = []
        for task in list(self.engine.tasks.values()):
            if (
                task.group.name == name
                and task.ready.is_set()
                and isinstance(task.processor, BoltRunner)
            ):
                out.append(task.processor.bolt)
        return out

    def bolt_stats(self) -> dict[str, dict[str, int]]:
        """Per bolt of the topology: its instances' ``stats()`` summed (this worker's)."""
        bolts: dict[str, dict[str, int]] = {}
        for spec in self.topology.bolts:
            totals: dict[str, int] = {}
            for bolt in self.bolts(spec.cls):
                for name, value in bolt.stats().items():
                    totals[name] = totals.get(name, 0) + value
            bolts[spec.name] = totals
        return bolts


def build(topology: Topology, settings: Settings | None = None) -> Runtime:
    """The worker for ``topology``: app, engine (one group per bolt), persister, routes."""
    topology.check()
    if settings is None:
        settings = Settings()
    if not settings.app_id:
        settings = replace(settings, app_id=topology.name)
    dead = topology.streams.get(DEADLETTERS)
    app = make_app(settings)
    persister = make_persister(settings)
    outputs = {name: stream.topic for name, stream in topology.streams.items()}
    engine = make_engine(
        settings, app, groups(topology), outputs, persister, dead.topic if dead else None
    )
    app.service(engine)  # type: ignore[arg-type]  # faust types it as a class; instances work
    if dead:
        persister.deadletter = persister_deadletters(engine, persister, dead.topic)
    for spec in topology.bolts:  # GET /metrics: every declared output's series, from 0
        for name in (*spec.cls.outputs, *([DEADLETTERS] if dead else [])):
            engine.counters.records_out[outputs[name]] += 0
    runtime = Runtime(topology, settings, app, engine, persister)
    for factory in topology.services:
        app.service(factory(settings))
    for route in [*topology.routes, *_builtin_routes(runtime)]:
        _serve(runtime, route)
    return runtime


def _builtin_routes(runtime: Runtime) -> list[Route]:
    """``GET /health``, ``GET /debug/consumer`` and ``GET /metrics``, for every topology."""
    engine, persister = runtime.engine, runtime.persister
    metrics = registry(FintankCollector(engine, persister, runtime.bolt_stats))

    def health(request: Request) -> Response:
        bolts = runtime.bolt_stats()
        stats = persister.stats
        return Response(
            200,
            {
                "ready": engine.ready.is_set() and bool(engine.assigned),
                "assigned": sorted(f"{tp.topic}:{tp.partition}" for tp in engine.assigned),
                "persister": {
                    "buffered": len(persister),
                    "written": stats.written,
                    "batches": stats.batches,
                    "retries": stats.retries,
                    "rejected": stats.rejected,
                    # what keeps InfluxDB writes from succeeding now, in words (None: nothing)
                    "problem": persister.problem,
                },
                "engine": engine.stats,
                "bolts": bolts,
            },
        )

    paths = {r.path for r in runtime.topology.routes}
    builtin = [
        Route("/health", health),
        Route("/debug/consumer", lambda request: Response(200, engine.describe())),
        Route("/metrics", lambda request: Response(200, exposition(metrics), CONTENT_TYPE)),
    ]
    return [r for r in builtin if r.path not in paths]


def _serve(runtime: Runtime, route: Route) -> None:
    app, engine = runtime.app, runtime.engine

    async def page(web: Any, request: Any, **params: str) -> Any:
        req = Request(dict(params), dict(request.query))
        if route.check is not None:
            bad = route.check(req)
            if bad is not None:
                return _answer(web, bad)
        if route.owner is not None and route.key is not None:
            return _answer(web, await _owned(runtime, route, req, request.path))
        if route.gather is not None and route.merge is not None:
            local = route.handler(runtime.bolts(route.gather), req)
            if req.query.get("scope") == "local":
                return _answer(web, Response(200, local))
            parts = [local]
            for peer in sorted({u for u in engine.routing.urls if u and u != engine.url}):
                url = URL(peer).with_path(request.path).with_query({**req.query, "scope": "local"})
                reply = await _ask(app, url)
                if reply.status != 200:
                    return _answer(web, reply)
                parts.append(reply.body)
            return _answer(web, route.merge(parts, req))
        return _answer(web, route.handler(req))

    app.page(route.path)(page)


async def _owned(runtime: Runtime, route: Route, req: Request, path: str) -> Response:
    """The owner's answer: from this worker's bolt, or asked of the worker that owns the key."""
    engine = runtime.engine
    assert route.owner is not None and route.key is not None
    group = runtime.topology.spec(route.owner).name
    partition = engine.partition_of(group, route.key(req))
    if partition is None:
        return Response(503, {"error": "no partitions assigned yet"})
    task = engine.task_for(group, partition)
    if task is not None and isinstance(task.processor, BoltRunner):
        answer: Response = route.handler(task.processor.bolt, req)
        return answer
    owner = engine.routing.owner(group, partition)
    if owner is None or owner == engine.url or req.query.get("routed"):
        return Response(503, {"error": f"{group}[{partition}] has no ready owner; try again"})
    url = URL(owner).with_path(path).with_query({**req.query, "routed": "1"})
    return await _ask(runtime.app, url)


async def _ask(app: faust.App, url: URL) -> Response:
    """GET ``url`` from another worker: its answer, or a 503 saying why not."""
    try:
        async with app.http_client.get(url, timeout=aiohttp.ClientTimeout(total=5)) as reply:
            raw = await reply.read()
            return Response(reply.status, loads(raw) if raw else None)
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        return Response(503, {"error": f"worker {url.origin()} did not answer: {exc!r}"})


def _answer(web: Any, response: Response) -> Any:
    body = response.body
    raw = body if isinstance(body, bytes) else dumps(body)
    if "charset=" in response.content_type:
        # aiohttp refuses a charset inside content_type; as a header it is sent as is.
        headers = {"Content-Type": response.content_type}
        return web.bytes(raw, status=response.status, headers=headers)
    return web.bytes(raw, content_type=response.content_type, status=response.status)
