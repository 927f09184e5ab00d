"""The local Kafka as one node or as a cluster of combined (broker + KRaft controller) nodes.

Pure functions, so a unit test can check every port, node id, voter and folder
without starting Java: `nodes` lays the nodes out, `server_properties` writes
each node's config, `replicated_env` picks the replication settings of a
cluster. `fintank.stack.stack.Stack` formats and starts what they describe.

Layout (``N`` nodes, ``P`` = ``FINTANK_KAFKA_PORT``):

* node ``i`` (1..N) listens for clients on ``P + 10*(i-1)`` and for the KRaft
  quorum on ``P + 10*(i-1) + 1``: 9092/9093, 9102/9103, 9112/9113 by default,
  so a single node keeps the ports it always had and no node's controller
  port is another node's broker port;
* node 1 lives in ``<state>/kafka`` (where the single node always lived, so a
  stack started by an older fintank is still found), node ``i`` > 1 in
  ``<state>/kafka/node-<i>``; each has its own ``data`` (log.dirs),
  ``server.properties``, pid file and log;
* every node is a voter of a static quorum (``controller.quorum.voters``);
  the cluster's size is written to ``<state>/kafka/brokers``, so `fintank
  status` and `down` find every node, and `fintank up` refuses another size.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from fintank.config import PREFIX, Settings
from fintank.errors import StackError

PORT_STEP = 10  # node i's ports are kafka_port + PORT_STEP * (i - 1) (+1: its controller)
MAX_BROKERS = 9
BROKERS_FILE = "brokers"  # in <state>/kafka: how many nodes the cluster there has
# What `fintank up --brokers N` uses when FINTANK_REPLICATION_FACTOR / _MIN_INSYNC_REPLICAS
# are not set: three copies (or one per broker if fewer), and acks=all writes that
# need two of them, so one broker may fail without losing or refusing a write.
CLUSTER_REPLICAS = 3
CLUSTER_MIN_INSYNC = 2


@dataclass(frozen=True, slots=True)
class Node:
    """One Kafka process of the local cluster: its id, ports and folder."""

    node_id: int
    port: int  # clients (PLAINTEXT)
    controller: int  # the KRaft quorum (CONTROLLER)
    home: Path

    @property
    def data(self) -> Path:
        return self.home / "data"

    @property
    def properties(self) -> Path:
        return self.home / "server.properties"

    @property
    def pid_file(self) -> Path:
        return self.home / "kafka.pid"

    @property
    def log_file(self) -> Path:
        return self.home / "kafka.log"

    @property
    def voter(self) -> str:
        """This node in ``controller.quorum.voters``."""
        return f"{self.node_id}@127.0.0.1:{self.controller}"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port} (broker), 127.0.0.1:{self.controller} (KRaft controller)"


def check_brokers(brokers: int, kafka_port: int) -> None:
    """`StackError` (one line) if ``brokers`` nodes cannot be laid out from ``kafka_port``."""
    if not 1 <= brokers <= MAX_BROKERS:
        raise StackError(f"--brokers must be 1..{MAX_BROKERS}, got {brokers}")
    last = kafka_port + PORT_STEP * (brokers - 1) + 1
    if last > 65535:
        raise StackError(
            f"{brokers} brokers from {PREFIX}KAFKA_PORT {kafka_port} need ports up to {last} "
            "(> 65535); choose a lower port"
        )


def nodes(state: Path, kafka_port: int, brokers: int) -> list[Node]:
    """The ``brokers`` nodes of a cluster under ``state`` whose first broker port is ``kafka_port``."""
    check_brokers(brokers, kafka_port)
    home = state / "kafka"
    out = []
    for i in range(1, brokers + 1):
        port = kafka_port + PORT_STEP * (i - 1)
        out.append(Node(i, port, port + 1, home if i == 1 else home / f"node-{i}"))
    return out


def servers(cluster: Sequence[Node]) -> str:
    """Every node as a Kafka client's bootstrap servers: ``127.0.0.1:9092,127.0.0.1:9102,...``."""
    return ",".join(f"127.0.0.1:{n.port}" for n in cluster)


def bootstrap(cluster: Sequence[Node]) -> str:
    """``FINTANK_BROKER`` naming every node: ``kafka://127.0.0.1:9092,127.0.0.1:9102,...``."""
    return "kafka://" + servers(cluster)


def server_properties(node: Node, cluster: Sequence[Node], settings: Settings) -> str:
    """``server.properties`` of ``node`` in ``cluster``: combined broker + controller, one of
    a static quorum of every node; internal topics and defaults replicated as ``settings`` say."""
    voters = ",".join(n.voter for n in cluster)
    return KAFKA_PROPERTIES.format(
        node_id=node.node_id,
        voters=voters,
        port=node.port,
        controller=node.controller,
        data=node.data,
        partitions=settings.partitions,
        replicas=settings.replication_factor,
        min_insync=settings.min_insync_replicas,
    )


def replicated_env(env: Mapping[str, str], brokers: int) -> dict[str, str]:
    """``env`` with the replication a ``brokers``-node cluster gets when the user did not
    choose: min(3, brokers) replicas, min.insync.replicas 2 if there are 3 (else 1)."""
    out = dict(env)
    if brokers > 1:
        replicas = min(CLUSTER_REPLICAS, brokers)
        min_insync = CLUSTER_MIN_INSYNC if replicas >= CLUSTER_REPLICAS else 1
        out.setdefault(f"{PREFIX}REPLICATION_FACTOR", str(replicas))
        out.setdefault(f"{PREFIX}MIN_INSYNC_REPLICAS", str(min_insync))
    return out


def check_replication(settings: Settings, brokers: int) -> None:
    """`StackError` if the cluster cannot hold the replicas ``settings`` asks for."""
    if settings.replication_factor > brokers:
        raise StackError(
            f"{PREFIX}REPLICATION_FACTOR {settings.replication_factor} needs as many brokers; "
            f"fintank up starts {brokers} (--brokers)"
        )


def recorded_brokers(state: Path) -> int | None:
    """How many nodes the cluster under ``state`` has: what `record_brokers` wrote, 1 for a
    node formatted by a fintank that wrote nothing, None if there is no cluster yet."""
    home = state / "kafka"
    with contextlib.suppress(FileNotFoundError, ValueError):
        return int((home / BROKERS_FILE).read_text().strip())
    if (home / "data" / "meta.properties").exists():
        return 1
    return None


def record_brokers(state: Path, brokers: int) -> None:
    (state / "kafka").mkdir(parents=True, exist_ok=True)
    (state / "kafka" / BROKERS_FILE).write_text(f"{brokers}\n")


def cluster_id_of(cluster: Sequence[Node]) -> str | None:
    """The cluster id a formatted node of ``cluster`` has (None if none is formatted)."""
    for node in cluster:
        with contextlib.suppress(FileNotFoundError):
            for line in (node.data / "meta.properties").read_text().splitlines():
                key, _, value = line.partition("=")
                if key.strip() == "cluster.id":
                    return value.strip()
    return None


def terminate(pids: Sequence[int]) -> None:
    """SIGTERM every node at once: stopped one after the other, the last ones would wait for
    a quorum that is already gone before they give up their controlled shutdown."""
    for pid in pids:
        try:
            os.killpg(pid, signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
    time.sleep(0.1)


KAFKA_PROPERTIES = """\
# Written by fintank's `fintank up`; edit fintank/stack/cluster.py instead.
process.roles=broker,controller
node.id={node_id}
controller.quorum.voters={voters}
listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller}
advertised.listeners=PLAINTEXT://127.0.0.1:{port}
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs={data}
num.partitions={partitions}
num.network.threads=2
num.io.threads=4
# Consumer offsets, transactions and any topic made without a replication factor are
# replicated as fintank's own (FINTANK_REPLICATION_FACTOR, FINTANK_MIN_INSYNC_REPLICAS).
default.replication.factor={replicas}
min.insync.replicas={min_insync}
offsets.topic.replication.factor={replicas}
offsets.topic.num.partitions=8
transaction.state.log.replication.factor={replicas}
transaction.state.log.min.isr={min_insync}
group.initial.rebalance.delay.ms=0
# fintank creates every topic explicitly (fintank up, topics create, the engine); a typo must fail.
auto.create.topics.enable=false
"""
