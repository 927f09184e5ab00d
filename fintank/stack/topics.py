"""Create fintank's topics explicitly (never rely on broker auto-creation for data topics)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import fields

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, KafkaError

from fintank.config import Settings
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
    """Create the missing topics of ``wanted`` (default: fintank's, `wanted_topics`); raise
    `StackError` if an existing one has the wrong partition count."""
    admin = await _connected_admin(settings, timeout)
    try:
        wanted = wanted_topics(settings) if wanted is None else wanted
        # Describe only topics that exist: a metadata request for a missing topic
        # may auto-create it with the broker's default partition count.
        names = set(await admin.list_topics())
        missing = [NewTopic(name, n, 1) for name, n in wanted.items() if name not in names]
        if missing:
            await admin.create_topics(missing)
            await _until_listed(admin, [t.name for t in missing], timeout)
            log(
                "kafka: created topics "
                + ", ".join(f"{t.name}({t.num_partitions})" for t in missing)
            )
        existing = [name for name in wanted if name in names]
        described = await admin.describe_topics(existing) if existing else []
        have = {t["topic"]: len(t["partitions"]) for t in described}
        wrong = [
            f"{n} has {have[n]}, wants {wanted[n]}" for n in existing if have.get(n) != wanted[n]
        ]
        if wrong:
            raise StackError("kafka topics with the wrong partition count: " + "; ".join(wrong))
    finally:
        await admin.close()


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
    while True:
        admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap)
        try:
            await admin.start()
            await admin.list_topics()
            return admin
        except (KafkaConnectionError, KafkaError, OSError) as exc:
            await admin.close()
            if loop.time() > deadline:
                raise StackError(f"kafka at {settings.bootstrap} did not answer: {exc}") from exc
            await asyncio.sleep(0.5)
