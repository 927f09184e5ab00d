"""One of three Kafka brokers SIGKILLed mid-stream and brought back: nothing lost, nothing twice.

The test starts its own three-node KRaft cluster with fintank's own code
(`Stack(settings, brokers=3)`, as `fintank up --brokers 3` does) on free ports
under a temporary state folder, never the shared test stack's Kafka, and makes
fintank's topics with 3 replicas and min.insync.replicas 2. A worker of the
built-in topology, given all three brokers in FINTANK_BROKER, writes to the
shared test stack's InfluxDB, in a database of its own.

Under the steady mixed load of `tests.integration.load` (ticks, market and
resting limit orders, invalid records, duplicate order ids), the broker that is
the worker group's coordinator (and leads some of its partitions) is
SIGKILLed: partition leadership moves, and for about the broker session timeout
the worker's commits and fences get no answer (it must wait, neither send
without proof nor stop). The load and the worker go on with two brokers for a
while, then the broker is started again (same folder, same node id) and
rejoins every partition's in-sync replicas. The worker is the same process
throughout.

Afterwards, the checks of `tests.integration.test_engine_faults.verify`: every
component of every valid order has exactly one execution and one fill on Kafka;
every invalid record is dead-lettered once with its reason, nothing valid is;
``GET /positions/{id}`` equals the sum of the taxpayer's fills; every valid tick
is one point of ``bid_ask`` (per series and timestamp). And in InfluxDB, each
component is one point of ``executions`` and one of ``fills``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import pytest
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from fintank.config import Settings
from fintank.engine import kafka
from fintank.stack import Stack, cluster, procs
from fintank.stack.topics import ensure_topics
from fintank.stack.worker import Worker
from tests.integration.conftest import TEST_STACK_ENV, Env
from tests.integration.load import MixedLoad, free_port
from tests.integration.test_engine_faults import symbols, verify, wait_for, wait_for_outputs
from tests.integration.test_rule_engine import read

BROKERS = 3
TIME_LIMIT = 420  # seconds for the whole test, cluster start and teardown included
DOWN_FOR = 12.0  # seconds the load runs with one broker dead (past the 9 s broker session)


@dataclass
class Cluster:
    """The test's own Kafka cluster and the environment that points a worker at it."""

    stack: Stack
    env: Env

    def node(self, node_id: int) -> cluster.Node:
        return self.stack.nodes[node_id - 1]


@contextlib.contextmanager
def time_limit(seconds: int) -> Iterator[None]:
    """Fail the test (and run its clean-up) if it takes longer than ``seconds``."""

    def expire(signum: int, frame: FrameType | None) -> None:
        raise AssertionError(f"the test ran past its limit of {seconds}s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def free_kafka_port() -> int:
    """A first broker port whose cluster's ports (broker and controller of each node) are free."""
    while True:
        base = free_port()
        nodes = cluster.nodes(Path(), base, BROKERS)  # only their ports count here
        wanted = [p for n in nodes for p in (n.port, n.controller)]
        if all(_bindable(p) for p in wanted):
            return base


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


@pytest.fixture
def kafka_cluster(stack: Stack, tmp_path: Path) -> Iterator[Cluster]:
    """Three brokers of the test's own, topics with 3 replicas / min ISR 2, a database on the
    shared stack's InfluxDB (``stack`` makes sure it runs); all stopped at the end."""
    suffix = uuid.uuid4().hex[:8]
    port = free_kafka_port()
    state = tmp_path / "state"
    nodes = cluster.nodes(state, port, BROKERS)
    env_vars = {
        **TEST_STACK_ENV,
        "FINTANK_STATE_DIR": str(state),
        "FINTANK_KAFKA_PORT": str(port),
        "FINTANK_BROKER": cluster.bootstrap(nodes),
        "FINTANK_REPLICATION_FACTOR": "3",
        "FINTANK_MIN_INSYNC_REPLICAS": "2",
        "FINTANK_APP_ID": f"fintank-brokers-{suffix}",
        "FINTANK_INFLUX_DATABASE": f"test_{suffix}",
    }
    settings = Settings.from_env(env_vars)
    own = Stack(settings, brokers=BROKERS)
    assert own.nodes == nodes
    try:
        # The whole test, the cluster's start included; not the stop below (bounded by
        # procs.stop's timeouts), which must run to its end.
        with time_limit(TIME_LIMIT):
            own.start_kafka(print)
            asyncio.run(ensure_topics(settings))
            own.create_database()
            yield Cluster(own, Env(env_vars, settings, suffix))
    finally:
        # Only what this folder's pid files name: the test's three brokers (the shared
        # stack's InfluxDB and VictoriaMetrics have their pid files elsewhere).
        own.down(log=print)
        for node in nodes:
            shutil.rmtree(node.data, ignore_errors=True)


# ---------------------------------------------------------------- the cluster, from outside
async def _describe(bootstrap: str, topics: list[str]) -> list[dict[str, Any]]:
    admin = kafka.admin(kafka.KafkaSettings(bootstrap, ""))
    await admin.start()
    try:
        return list(await admin.describe_topics(topics))
    finally:
        await admin.close()


async def _replication(bootstrap: str, prefix: str) -> dict[str, tuple[set[int], str]]:
    """Each topic whose name starts with ``prefix`` (every topic: "") -> the replica counts
    of its partitions and its ``min.insync.replicas``."""
    admin = kafka.admin(kafka.KafkaSettings(bootstrap, ""))
    await admin.start()
    try:
        names = sorted(n for n in await admin.list_topics() if n.startswith(prefix))
        names = [n for n in names if not n.startswith("__")]  # Kafka's own
        described = await admin.describe_topics(names)
        replicas = {t["topic"]: {len(p["replicas"]) for p in t["partitions"]} for t in described}
        wanted = [
            ConfigResource(ConfigResourceType.TOPIC, n, {"min.insync.replicas": None})
            for n in names
        ]
        out = {}
        for response in await admin.describe_configs(wanted):
            for _, _, _, topic, configs in response.resources:
                value = next(c[1] for c in configs if c[0] == "min.insync.replicas")
                out[topic] = (replicas[topic], value)
        return out
    finally:
        await admin.close()


def replication(env: Env, prefix: str = "") -> dict[str, tuple[set[int], str]]:
    got = asyncio.run(asyncio.wait_for(_replication(env.settings.bootstrap, prefix), 30))
    assert got, f"no topics starting with {prefix!r}"
    return got


def partitions_of(env: Env, topics: list[str]) -> list[dict[str, Any]]:
    """Each partition of ``topics`` (leader, replicas, isr), with its topic."""
    described = asyncio.run(asyncio.wait_for(_describe(env.settings.bootstrap, topics), 30))
    return [dict(p, topic=t["topic"]) for t in described for p in t["partitions"]]


async def _coordinator(bootstrap: str, group: str) -> int:
    admin = kafka.admin(kafka.KafkaSettings(bootstrap, ""))
    await admin.start()
    try:
        return int(await admin.find_coordinator(group))
    finally:
        await admin.close()


def victim(env: Env) -> tuple[int, Counter[int]]:
    """The worker group's coordinator (the hardest broker to lose: the worker's commits and
    fences wait for the coordinator to move), with how many of the worker's partitions each
    node leads."""
    t = env.settings.topics
    names = [t.ticks, t.orders, t.components, t.positions, t.executions, t.fills]
    leaders = Counter(p["leader"] for p in partitions_of(env, names))
    group = env.settings.app_id
    coordinator = asyncio.run(asyncio.wait_for(_coordinator(env.settings.bootstrap, group), 30))
    return coordinator, leaders


# ---------------------------------------------------------------- the test
def test_one_of_three_brokers_killed_mid_stream_and_brought_back(
    kafka_cluster: Cluster,
) -> None:
    env = kafka_cluster.env
    t = env.settings.topics
    # Every partition of fintank's topics has three replicas, and needs two for a write.
    made = replication(env)
    assert all(got == ({3}, "2") for got in made.values()), made

    port = free_port(avoid=tuple(n.port for n in kafka_cluster.stack.nodes))
    run_env = {**os.environ, **env.vars, "FINTANK_WEB_PORT": str(port)}
    worker = Worker(Settings.from_env(run_env), name=f"broker-fault-{env.suffix}")
    load = MixedLoad(
        env.settings,
        symbols(env),
        seed=7011,
        id_prefix=f"po-{env.suffix}",
        tick_rate=300.0,
        max_duration=180.0,
    )
    try:
        worker.start(timeout=120, env=run_env)
        pid = worker.pid()
        # So do the changelogs the worker's engine made.
        changelogs = replication(env, f"{env.settings.app_id}-")
        assert all(n.endswith("-changelog") for n in changelogs), changelogs
        assert all(got == ({3}, "2") for got in changelogs.values()), changelogs
        load.start()
        # Mid-stream: the worker is executing the load's orders.
        wait_for(lambda: load.elapsed >= 8 and len(read(env, t.fills)) >= 20, "fills", 90, load)
        dead, leaders = victim(env)
        node = kafka_cluster.node(dead)
        print(
            f"SIGKILL of node {dead} (group coordinator, leader of {leaders[dead]} of the "
            f"worker's partitions; leaders per node {dict(leaders)}) at {load.elapsed:.1f}s"
        )
        assert procs.kill(node.pid_file)
        # SIGKILL: the JVM's threads end a moment after its main one (which procs sees).
        wait_for(lambda: not procs.port_open(node.port), f"node {dead} to be gone", 10, load)
        killed = load.elapsed
        wait_for(lambda: load.elapsed >= killed + DOWN_FOR, "the load without it", 60, load)

        kafka_cluster.stack.start_kafka(print)  # starts the one node that is not running

        def rejoined() -> bool:
            names = [t.ticks, t.orders, t.components, t.fills, t.executions, t.positions]
            return all(set(p["isr"]) == {1, 2, 3} for p in partitions_of(env, names))

        wait_for(rejoined, f"node {dead} to rejoin every in-sync replica set", 120, load)
        back = load.elapsed
        print(f"node {dead} back in every ISR at {back:.1f}s")
        wait_for(lambda: load.elapsed >= max(40, back + 6), "more load", 60, load)
        load.finish()
        assert len(load.orders) > 100 and len(load.ticks) > 5000, (
            len(load.orders),
            len(load.ticks),
        )
        wait_for_outputs(env, load, 150, [worker])
        load.stop()
        # The worker rode it out: the same process throughout.
        assert worker.pid() == pid, f"the worker exited; see {worker.log_file}"
        verify(env, load, port, [worker])
    finally:
        load.stop()
        worker.stop()
