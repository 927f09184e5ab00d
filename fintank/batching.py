"""Hand whole fetched batches of raw records to a Faust agent (the tick path's engine).

Why: a stock Faust agent manages ~4-5k ticks/s here, CPU-bound on per-message
machinery, not on our bolts. Per record, faust's drain loop runs
``wait_first(callback(message), suspend_flow.wait())`` (four tasks and an
``asyncio.wait``, transport/consumer.py `_drain_messages`), builds a
20-slot ``ConsumerMessage`` (drivers/aiokafka.py `_to_message`), takes a
lock in the conductor, puts it on a queue, and the stream then acks it under
a lock with sensor calls. ``take()`` batches only the agent body, not that
pipeline, and no setting removes it (measured: settings, ``take(10000)``
and uvloop all stay at 4-6k/s).

How: for topics declared with `BatchingApp.batch_topic`, the consumer takes
each fetched per-partition record list out of the fetch result before faust
iterates it and puts it, as one `RecordBatch`, on the agents' channel
queues (so stream back-pressure applies per batch). The agent processes the
raw aiokafka records and calls `RecordBatch.ack` when their effects are
durable; only then do the offsets join faust's own acked-offset bookkeeping,
which commits them as usual (at-least-once). Other topics keep faust's path.

This reads faust internals (``_read_offset``, ``_acked``, ``_acked_index``,
``_n_acked``, ``_committed_offset``, the conductor's ``_topic_name_index``),
which is why faust-streaming is pinned to one version in pyproject.toml.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import faust
from faust.transport.drivers import aiokafka as driver
from faust.types import TP
from faust.types.tuples import ack_lock


class RecordBatch:
    """Records fetched together from one partition: ``records`` are aiokafka ConsumerRecords."""

    __slots__ = ("consumer", "tp", "records", "first", "last", "generation_id")

    def __init__(
        self, consumer: Any, tp: TP, records: Sequence[Any], first: int, generation_id: int
    ) -> None:
        self.consumer = consumer
        self.tp = tp
        self.records = records
        self.first = first  # offsets first..last (gaps are compaction/transaction markers)
        self.last = records[-1].offset
        self.generation_id = generation_id

    @property
    def partition(self) -> int:
        return self.tp.partition

    def values(self) -> list[bytes | None]:
        return [r.value for r in self.records]

    @property
    def stale(self) -> bool:
        """True once a rebalance happened after the fetch: the partition may be someone else's."""
        return self.generation_id != self.consumer.app.consumer_generation_id

    def ack(self) -> bool:
        """Mark every offset of the batch processed, so faust may commit past it. False if stale."""
        c = self.consumer
        with ack_lock:
            if self.stale:
                return False  # never commit offsets of a partition we may have lost
            committed = c._committed_offset[self.tp]
            first = self.first if committed is None else max(self.first, committed)
            if first > self.last:
                return False
            index = c._acked_index[self.tp]
            new = [o for o in range(first, self.last + 1) if o not in index]
            c._acked[self.tp].extend(new)
            index.update(new)
            c._n_acked += len(new)
            return True


class BatchingConsumer(driver.Consumer):
    """faust's aiokafka consumer, plus batch hand-off for the app's batch topics."""

    async def _wait_next_records(self, timeout: float) -> Any:
        records, active = await super()._wait_next_records(timeout)
        batch_topics = getattr(self.app, "batch_topic_names", None)
        if records and self.flow_active and batch_topics:
            generation = self.app.consumer_generation_id
            for tp in [tp for tp in records if tp.topic in batch_topics]:
                batch = records.pop(tp)
                if active is None or tp in active or tp in self._buffered_partitions:
                    await self._hand_off(tp, batch, generation)
        return records, active

    async def _hand_off(self, tp: TP, records: list[Any], generation: int) -> None:
        read = self._read_offset[tp]
        if read is not None:  # the same rule as faust's drain loop: offset >= read offset
            records = [r for r in records if r.offset >= read]
            if not records:
                return
        first = records[0].offset
        if read is not None and first - read > 1 and self.app.topics.acks_enabled_for(tp.topic):
            await self._add_gap(tp, read + 1, first)
        batch = RecordBatch(self, tp, records, first, generation)
        for channel in self.app.topics._topic_name_index[tp.topic]:
            await channel.queue.put(batch)
        self._read_offset[tp] = batch.last
        if self._commit_every is not None and self._n_acked >= self._commit_every:
            self._n_acked = 0
            await self.commit()


class BatchingTransport(driver.Transport):
    Consumer = BatchingConsumer


class BatchingApp(faust.App):
    """A faust App whose `batch_topic` topics reach their agents as `RecordBatch` items."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.batch_topic_names: set[str] = set()
        super().__init__(*args, **kwargs)

    def _new_transport(self) -> Any:
        return BatchingTransport(self.conf.broker_consumer, self)

    def batch_topic(self, name: str, partitions: int | None = None) -> Any:
        """A raw-bytes topic delivered in batches; its agent must ack each `RecordBatch`."""
        self.batch_topic_names.add(name)
        return self.topic(
            name,
            key_type=bytes,
            value_type=bytes,
            key_serializer="raw",
            value_serializer="raw",
            partitions=partitions,
        )
