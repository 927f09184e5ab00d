"""Read what is on a topic, from the beginning, without joining a consumer group."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from fintank.codec import loads
from fintank.engine import kafka
from fintank.engine.kafka import KafkaSettings, TopicPartition, topic_partitions


@dataclass(frozen=True, slots=True)
class Record:
    """One Kafka record: where it is and what it holds (value decoded from JSON when possible)."""

    partition: int
    offset: int
    key: str | None
    value: Any


async def read_topic(
    connection: KafkaSettings | str,
    topic: str,
    timeout: float = 30.0,
    partitions: list[int] | None = None,
) -> list[Record]:
    """Every record on ``topic`` (or on some of its ``partitions``) up to its end offsets at call time.

    ``connection``: `KafkaSettings.from_settings` (servers, TLS, SASL), or plaintext
    servers as a string. JSON values are decoded; other values are returned as bytes.
    """
    consumer = kafka.reader(kafka.kafka_settings(connection))
    await consumer.start()
    try:
        known = await topic_partitions(consumer, topic)
        wanted = known if partitions is None else known & set(partitions)
        tps = [TopicPartition(topic, p) for p in sorted(wanted)]
        if not tps:
            return []
        # Ask for the offsets before assign(): once a partition is assigned, a
        # fetch waits at the broker (up to fetch_max_wait_ms) and requests on
        # that connection queue behind it.
        ends = await consumer.end_offsets(tps)
        starts = await consumer.beginning_offsets(tps)
        tps = [tp for tp in tps if ends[tp] > starts[tp]]
        if not tps:
            return []
        consumer.assign(tps)
        for tp in tps:
            consumer.seek(tp, starts[tp])
        out: list[Record] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
            if loop.time() > deadline:
                raise TimeoutError(f"reading {topic} did not reach its end in {timeout}s")
            batch = await consumer.getmany(timeout_ms=500, max_records=10_000)
            for tp, messages in batch.items():
                for m in messages:
                    if m.offset < ends[tp]:
                        out.append(Record(tp.partition, m.offset, _text(m.key), _value(m.value)))
        return out
    finally:
        await consumer.stop()


def _text(raw: bytes | None) -> str | None:
    return None if raw is None else raw.decode("utf-8", "replace")


def _value(raw: bytes | None) -> Any:
    if raw is None:
        return None
    try:
        return loads(raw)
    except ValueError:
        return raw
