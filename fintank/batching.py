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

import time
from collections.abc import Sequence
from typing import Any

import faust
from aiokafka.structs import TopicPartition
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
        # Acked as the range first..last. Batch topics must not be compacted or
        # written transactionally: a gap *between* batches would never be acked.
        self.first = first
        self.last = records[-1].offset
        self.generation_id = generation_id

    @property
    def partition(self) -> int:
        return self.tp.partition

    def values(self) -> list[bytes | None]:
        return [r.value for r in self.records]

    def offsets(self) -> list[int]:
        return [r.offset for r in self.records]

    @property
    def stale(self) -> bool:
        """True once the partition is no longer assigned to this worker.

        Not "the generation changed": faust's rebalance runs in its consumer
        thread and interleaves with hand-offs, so a generation tag can be off
        by one either way, and a batch skipped for it might never be fetched
        again. A batch of a partition we still own is processed (at worst a
        second time, after faust's seek back to the committed offset: every
        fintank bolt tolerates redelivery) and may be acked.
        """
        return self.tp not in self.consumer.assignment()

    def ack(self) -> bool:
        """Mark every offset of the batch processed, so faust may commit past it. False if stale."""
        c = self.consumer
        with ack_lock:
            if self.stale:
                return False  # never commit offsets of a partition we lost
            committed = c._committed_offset[self.tp]
            first = self.first if committed is None else max(self.first, committed)
            if first > self.last:
                return False
            index = c._acked_index[self.tp]
            new = [o for o in range(first, self.last + 1) if o not in index]
            c._acked[self.tp].extend(new)
            index.update(new)
            c._n_acked += len(new)
            c.activity[self.tp] = time.monotonic()
            return True


class BatchingConsumer(driver.Consumer):
    """faust's aiokafka consumer, plus batch hand-off for the app's batch topics."""

    #: Seconds a partition may have fetched-but-uncommitted records with no
    #: hand-off and no ack before they are fetched again (see `_heal`).
    heal_after: float = 15.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Per partition: records handed to agents, and records dropped (and why).
        self.handoff_stats: dict[TP, dict[str, int]] = {}
        self.activity: dict[TP, float] = {}  # last hand-off or ack, monotonic seconds
        self._last_heal = 0.0

    def _count(self, tp: TP, what: str, n: int) -> None:
        stats = self.handoff_stats.setdefault(tp, {})
        stats[what] = stats.get(what, 0) + n

    async def _wait_next_records(self, timeout: float) -> Any:
        records: Any
        records, active = await super()._wait_next_records(timeout)
        batch_topics = getattr(self.app, "batch_topic_names", None)
        if records and self.flow_active and batch_topics:
            generation = self.app.consumer_generation_id
            for tp in [tp for tp in records if tp.topic in batch_topics]:
                batch = records.pop(tp)
                if active is None or tp in active or tp in self._buffered_partitions:
                    await self._hand_off(tp, batch, generation)
                else:
                    self._count(tp, "dropped_inactive", len(batch))
        elif records and batch_topics:
            for tp in records:
                if tp.topic in batch_topics:
                    self._count(tp, "left_flow_inactive", len(records[tp]))
        if batch_topics and self.flow_active:
            await self._heal(batch_topics)
        return records, active

    async def _heal(self, batch_topics: set[str]) -> None:
        """Fetch again what was fetched but never processed.

        Around a rebalance faust seeks back to committed offsets and clears
        the agents' queues, in its consumer thread, while fetched batches are
        being handed off; a batch can fall between the two and be lost until
        the next rebalance. So: a partition whose position is past its
        committed offset, with no hand-off and no ack for `heal_after`
        seconds, is sought back to its committed offset. At worst a batch is
        processed twice, which every fintank bolt tolerates.
        """
        now = time.monotonic()
        if now - self._last_heal < 1.0:
            return
        self._last_heal = now
        for tp in self.assignment():
            if tp.topic not in batch_topics:
                continue
            last = self.activity.setdefault(tp, now)
            if now - last < self.heal_after:
                continue
            committed = self._committed_offset.get(tp) or 0
            position = await self.position(tp)
            if position is not None and position > committed:
                self.log.warning(
                    "%s: offsets %s..%s were fetched but never processed; fetching them again",
                    tp,
                    committed,
                    position - 1,
                )
                self._count(tp, "healed", position - committed)
                await self.seek(tp, committed)
            self.activity[tp] = now

    async def perform_seek(self) -> None:
        """Seek to committed offsets (faust), and rewind batch-topic partitions never committed.

        aiokafka's ``seek_to_committed`` leaves a partition without a committed
        offset wherever it was (``if offset and offset > 0``). Batches of it that
        were fetched in an earlier generation and dropped as stale would then
        never be fetched again. With ``auto_offset_reset=earliest`` "never
        committed" means "from the beginning", so seek there explicitly.
        """
        await super().perform_seek()
        batch_topics = getattr(self.app, "batch_topic_names", ())
        if self.app.conf.consumer_auto_offset_reset != "earliest":
            return
        never = [
            tp
            for tp in self.assignment()
            if tp.topic in batch_topics and self._committed_offset.get(tp) is None
        ]
        if never:
            await self._thread.seek_to_beginning(
                *(TopicPartition(tp.topic, tp.partition) for tp in never)
            )
            for tp in never:
                self._read_offset[tp] = None

    async def _hand_off(self, tp: TP, records: list[Any], generation: int) -> None:
        # No "already read" filter here, unlike faust's drain loop: after a
        # rebalance faust clears the channel queues and seeks back to the
        # committed offset, and the re-fetched records must reach the agent
        # again. Acks are per offset range and idempotent (`RecordBatch.ack`),
        # and every fintank bolt tolerates redelivery.
        batch = RecordBatch(self, tp, records, records[0].offset, generation)
        conductor: Any = self.app.topics
        for channel in conductor._topic_name_index[tp.topic]:
            await channel.queue.put(batch)
        self._count(tp, "handed", len(records))
        self.activity[tp] = time.monotonic()
        if not batch.stale:
            self._read_offset[tp] = batch.last  # for faust's own monitoring only
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
        return self.raw_topic(name, partitions)

    def raw_topic(self, name: str, partitions: int | None = None) -> Any:
        """A topic of raw bytes: fintank's codec, not faust's models, owns the wire format."""
        return self.topic(
            name,
            key_type=bytes,
            value_type=bytes,
            key_serializer="raw",
            value_serializer="raw",
            partitions=partitions,
        )
