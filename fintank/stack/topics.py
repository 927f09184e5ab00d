"""Create fintank's topics explicitly (never rely on broker auto-creation for data topics)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import fields
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, KafkaError

from fintank.config import PREFIX, Settings
from fintank.engine import kafka
from fintank.engine.kafka import create_errors
from fintank.errors import StackError
from fintank.topology import DEADLETTERS, Topology


def wanted_topics(settings: Settings) -> dict[str, int]:
    """Topic name -> partitions: every data topic gets ``settings.partitions``, deadletters 1."""
    topics = settings.topics
    wanted = {getattr(topics, f.name): settings.partitions for f in fields(topics)}
    wanted[topics.deadletters] = 1
    return wanted


def topology_topics(topology: Topology, settings: Settings) -> dict[str, int]:
    """Topic name -> partitions for a topology's streams: ``settings.partitions`` each,
    its dead letters 1 (as for fintank's own)."""
    wanted = {s.topic: settings.partitions for s in topology.streams.values()}
    dead = topology.streams.get(DEADLETTERS)
    if dead is not None:
        wanted[dead.topic] = 1
    return wanted


async def ensure_topics(
    settings: Settings,
    log: Callable[[str], None] = print,
    timeout: float = 60,
    wanted: dict[str, int] | None = None,
) -> None:
    """Create the missing topics of ``wanted`` (default: fintank's, `wanted_topics`) with
    ``settings.replication_factor`` replicas and ``settings.min_insync_replicas``; raise
    `StackError` if an existing one has the wrong partition count or replica count."""
    admin = await _connected_admin(settings, timeout)
    try:
        wanted = wanted_topics(settings) if wanted is None else wanted
        # Describe only topics that exist: a metadata request for a missing topic
        # may auto-create it with the broker's default partition count.
        names = set(await admin.list_topics())
        replicas = settings.replication_factor
        configs = {"min.insync.replicas": str(settings.min_insync_replicas)}
        missing = [
            NewTopic(name, n, replicas, topic_configs=configs)
            for name, n in wanted.items()
            if name not in names
        ]
        if missing:
            if replicas > 1:
                why = f" ({PREFIX}REPLICATION_FACTOR {replicas})"
                await _until_brokers(admin, replicas, timeout, settings.bootstrap, why)
            refused = create_errors(await admin.create_topics(missing))
            if refused:
                raise StackError(
                    f"kafka at {settings.bootstrap} refused to create topics "
                    f"({PREFIX}REPLICATION_FACTOR {replicas}, {PREFIX}MIN_INSYNC_REPLICAS "
                    f"{settings.min_insync_replicas}): "
                    + "; ".join(f"{t}: {why}" for t, why in sorted(refused.items()))
                )
            await _until_listed(admin, [t.name for t in missing], timeout)
            log(
                "kafka: created topics "
                + ", ".join(f"{t.name}({t.num_partitions})" for t in missing)
                + (f", {replicas} replicas each" if replicas > 1 else "")
            )
        existing = [name for name in wanted if name in names]
        described = await admin.describe_topics(existing) if existing else []
        have = {t["topic"]: len(t["partitions"]) for t in described}
        wrong = [
            f"{n} has {have[n]}, wants {wanted[n]}" for n in existing if have.get(n) != wanted[n]
        ]
        if wrong:
            raise StackError("kafka topics with the wrong partition count: " + "; ".join(wrong))
        copies = {t["topic"]: _replicas(t) for t in described}
        fewer = [f"{n} has {copies[n]}" for n in existing if copies.get(n, replicas) < replicas]
        if fewer:
            raise StackError(
                f"kafka topics with fewer replicas than {PREFIX}REPLICATION_FACTOR {replicas}: "
                + "; ".join(fewer)
            )
    finally:
        await admin.close()


def _replicas(described: dict[str, Any]) -> int:
    """The fewest replicas any partition of a described topic has."""
    return min((len(p["replicas"]) for p in described["partitions"]), default=0)


async def wait_for_brokers(bootstrap: str, count: int, timeout: float) -> None:
    """Wait until the cluster at ``bootstrap`` lists ``count`` brokers (`StackError` if not).

    A node's port opens before it has registered with the quorum; a topic with
    three replicas made in that moment is refused.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        admin = kafka.admin(kafka.KafkaSettings(bootstrap, ""))  # the local cluster: plaintext
        try:
            await admin.start()
            await _until_brokers(admin, count, max(1.0, deadline - loop.time()), bootstrap, "")
            return
        except (KafkaConnectionError, KafkaError, OSError) as exc:
            if loop.time() > deadline:
                raise StackError(f"kafka at {bootstrap} did not answer: {exc}") from exc
            await asyncio.sleep(0.5)
        finally:
            await admin.close()


async def _until_brokers(
    admin: AIOKafkaAdminClient, count: int, timeout: float, bootstrap: str, why: str
) -> None:
    """Wait until the cluster lists ``count`` brokers; `StackError` saying ``why`` if not."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while len((await admin.describe_cluster())["brokers"]) < count:
        if loop.time() > deadline:
            have = len((await admin.describe_cluster())["brokers"])
            raise StackError(f"kafka at {bootstrap} has {have} brokers, wants {count}{why}")
        await asyncio.sleep(0.2)


async def _until_listed(admin: AIOKafkaAdminClient, names: list[str], timeout: float) -> None:
    """Wait until the broker lists ``names``: CreateTopics answers once the controller has
    them, a moment before the broker's metadata does, and a worker started in that moment
    would find its topics missing."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while unlisted := sorted(set(names) - set(await admin.list_topics())):
        if loop.time() > deadline:
            raise StackError(f"kafka created topics {unlisted} but does not list them")
        await asyncio.sleep(0.05)


async def _connected_admin(settings: Settings, timeout: float) -> AIOKafkaAdminClient:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    conn = kafka.KafkaSettings.from_settings(settings)  # servers, TLS, SASL
    while True:
        admin = kafka.admin(conn)
        try:
            await admin.start()
            await admin.list_topics()
            return admin
        except (KafkaConnectionError, KafkaError, OSError) as exc:
            await admin.close()
            refused = await kafka.refusal(conn)  # a refused login will not get better: say so
            if refused is not None:
                raise StackError(
                    f"kafka at {settings.bootstrap} refused the connection: {refused}"
                ) from None
            if loop.time() > deadline:
                raise StackError(f"kafka at {settings.bootstrap} did not answer: {exc}") from exc
            await asyncio.sleep(0.5)
