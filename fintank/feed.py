"""The newest records of some output topics, for the live page (``GET /recent``).

Each worker tails every partition of the executions, fills, signals and
alerts topics with one consumer outside any group, so any worker answers for
all of them without asking the others; on start it reads back the last
``keep`` records of each partition, so a restarted worker shows history at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Mapping
from typing import Any

import mode

from fintank.codec import loads
from fintank.engine import kafka
from fintank.engine.kafka import KafkaError, KafkaSettings, TopicPartition, topic_partitions

log = logging.getLogger(__name__)


class RecentFeed(mode.Service):
    """Keeps the newest ``keep`` records of each named topic (decoded JSON)."""

    def __init__(
        self,
        connection: KafkaSettings | str,
        topics: Mapping[str, str],
        keep: int = 20,
        **kwargs: Any,
    ) -> None:
        # Servers, TLS and SASL (`KafkaSettings.from_settings`); a string: plaintext servers.
        self.connection = kafka.kafka_settings(connection)
        self.topics = dict(topics)  # name on the page -> Kafka topic
        self.keep = keep
        # name -> (Kafka timestamp, partition, offset, value), arrival order per partition
        self._seen: dict[str, deque[tuple[int, int, int, Any]]] = {
            name: deque(maxlen=keep * 64) for name in self.topics
        }
        super().__init__(**kwargs)

    def recent(self) -> dict[str, list[Any]]:
        """Per name, the newest ``keep`` values, newest first (by Kafka timestamp)."""
        return {
            name: [value for *_, value in sorted(seen, reverse=True)[: self.keep]]
            for name, seen in self._seen.items()
        }

    async def on_start(self) -> None:
        self.add_future(self._tail())

    async def _tail(self) -> None:
        while not self.should_stop:
            try:
                await self._tail_once()
            except (KafkaError, OSError) as exc:
                log.warning("recent feed: %s; reconnecting in 2 s", exc)
                await asyncio.sleep(2.0)

    async def _tail_once(self) -> None:
        consumer = kafka.reader(self.connection)
        await consumer.start()
        try:
            names = {topic: name for name, topic in self.topics.items()}
            tps = [
                TopicPartition(topic, p)
                for topic in names
                for p in sorted(await topic_partitions(consumer, topic))
            ]
            if not tps:
                await asyncio.sleep(2.0)  # topics not created yet
                return
            ends = await consumer.end_offsets(tps)
            starts = await consumer.beginning_offsets(tps)
            consumer.assign(tps)
            for tp in tps:
                consumer.seek(tp, max(starts[tp], ends[tp] - self.keep))
            while not self.should_stop:
                batch = await consumer.getmany(timeout_ms=1000)
                for tp, records in batch.items():
                    seen = self._seen[names[tp.topic]]
                    for r in records:
                        try:
                            value = loads(r.value)
                        except ValueError:
                            continue  # not ours to judge: the page shows JSON records only
                        seen.append((r.timestamp, tp.partition, r.offset, value))
        finally:
            await consumer.stop()
