"""The one module that knows how fintank talks to Kafka: aiokafka clients and their settings.

Everything the engine needs from aiokafka is imported here, so one test
(`tests/unit/engine/test_kafka_surface.py`) can pin what fintank relies on:
the consumer calls of the group protocol (subscribe with a rebalance
listener, getmany, pause/resume, position, explicit commit), the producer
(acks=all, idempotence), the admin client, and the assignor interface
(`AbstractPartitionAssignor` and the member metadata/assignment structs,
which aiokafka documents for custom ``partition_assignment_strategy``
values). No private attribute of aiokafka or faust is read by the engine.

Every client fintank makes is built by one of the functions below, so a
connection setting (bootstrap servers today; TLS and SASL later) reaches
all of them from one place.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.cluster import ClusterMetadata
from aiokafka.coordinator.assignors.abstract import AbstractPartitionAssignor
from aiokafka.coordinator.protocol import (
    ConsumerProtocolMemberAssignment,
    ConsumerProtocolMemberMetadata,
)
from aiokafka.errors import (
    CommitFailedError,
    IllegalStateError,
    KafkaConnectionError,
    KafkaError,
    TopicAlreadyExistsError,
)
from aiokafka.partitioner import murmur2
from aiokafka.structs import OffsetAndMetadata

__all__ = [
    "AbstractPartitionAssignor",
    "AIOKafkaAdminClient",
    "AIOKafkaConsumer",
    "AIOKafkaProducer",
    "ClusterMetadata",
    "CommitFailedError",
    "ConsumerProtocolMemberAssignment",
    "ConsumerProtocolMemberMetadata",
    "ConsumerRebalanceListener",
    "ConsumerRecord",
    "IllegalStateError",
    "KafkaConnectionError",
    "KafkaError",
    "KafkaSettings",
    "NewTopic",
    "OffsetAndMetadata",
    "TopicAlreadyExistsError",
    "TopicPartition",
    "partition_for",
]


@dataclass(frozen=True, slots=True)
class KafkaSettings:
    """How to reach Kafka and how the group behaves (from `fintank.config.Settings`)."""

    bootstrap: str
    group_id: str
    session_timeout: float = 10.0
    heartbeat_interval: float = 1.0
    max_partition_fetch_bytes: int = 4 * 1024 * 1024


def partition_for(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner (and aiokafka's) gives ``key``."""
    return int(murmur2(key) & 0x7FFFFFFF) % partitions


def group_consumer(
    settings: KafkaSettings, assignor: AbstractPartitionAssignor
) -> AIOKafkaConsumer:
    """The engine's consumer: a group member with explicit commits and fintank's assignor.

    read_committed: a transactional writer's aborted records never reach a bolt.
    """
    return AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap,
        group_id=settings.group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        partition_assignment_strategy=(assignor,),
        session_timeout_ms=int(settings.session_timeout * 1000),
        heartbeat_interval_ms=int(settings.heartbeat_interval * 1000),
        rebalance_timeout_ms=int(max(settings.session_timeout, 30.0) * 1000),
        max_partition_fetch_bytes=settings.max_partition_fetch_bytes,
        fetch_max_wait_ms=100,
        # Outlives a long recovery: the engine keeps calling getmany meanwhile.
        max_poll_interval_ms=300_000,
    )


def reader(settings: KafkaSettings) -> AIOKafkaConsumer:
    """A consumer outside any group, for reading partitions back (recovery, tests, the feed)."""
    return AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap,
        enable_auto_commit=False,
        # A seek to an offset retention removed starts at the oldest record, not the end.
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        max_partition_fetch_bytes=settings.max_partition_fetch_bytes,
        fetch_max_wait_ms=100,
    )


def producer(settings: KafkaSettings, linger_ms: int = 0) -> AIOKafkaProducer:
    """A producer that acks from all in-sync replicas and is idempotent (no duplicate on retry).

    Every producer fintank makes is this one: the engine's (``linger_ms`` 0,
    for latency) and the seeding tasks' (a few ms, for throughput).
    """
    return AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap,
        acks="all",
        enable_idempotence=True,
        linger_ms=linger_ms,
        max_batch_size=512 * 1024,
        retry_backoff_ms=20,
    )


def admin(settings: KafkaSettings) -> AIOKafkaAdminClient:
    """An admin client (topic creation and description)."""
    return AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap)


async def topic_partitions(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    """The partitions of ``topic`` as the cluster knows them now (empty if it does not exist).

    aiokafka's public ``partitions_for_topic`` only knows topics the consumer
    subscribed to or was assigned; this asks the cluster (a private client
    call, pinned by the surface test).
    """
    cluster = await consumer._client.fetch_all_metadata()
    return set(cluster.partitions_for_topic(topic) or ())


def tps(topic: str, partitions: Sequence[int]) -> list[TopicPartition]:
    """``TopicPartition`` of each of ``partitions`` of ``topic``."""
    return [TopicPartition(topic, p) for p in partitions]


def record_value(record: Any) -> bytes | None:
    """A consumer record's value (aiokafka's ConsumerRecord or a test double)."""
    value: bytes | None = record.value
    return value
