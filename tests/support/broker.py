"""An in-memory Kafka for the engine's clients: a test double of the broker, not of the engine.

The engine under test is the real `fintank.engine.Engine` with its real
tasks, stores and assignor; only the four clients it makes (`Clients`) are
replaced, so a test decides exactly when records are fetched, when sends are
delivered (or lost in a crash), when the group rebalances, and which member
the coordinator has expelled. What the doubles keep of Kafka's semantics:

* a partition is an append-only log; a send is invisible until delivered,
  and delivery keeps each producer's per-partition order (idempotence);
* a group member's commit is refused (CommitFailedError) once the group has
  moved to a generation it is not part of, and (IllegalStateError) for a
  partition it is not assigned;
* an assignment positions each partition at its committed offset (or the
  log's start), and a rebalance first calls every cooperating member's
  revoke callback, then the leader's assignor, then every assign callback.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from fintank.engine.assignor import CopartitionedAssignor
from fintank.engine.kafka import (
    CommitFailedError,
    ConsumerProtocolMemberMetadata,
    IllegalStateError,
    KafkaConnectionError,
    OffsetAndMetadata,
    TopicPartition,
    partition_for,
)


@dataclass(frozen=True, slots=True)
class Rec:
    """A consumer record: where it is and what it holds."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: int = 0


@dataclass
class Send:
    """A record handed to a producer, not delivered yet."""

    producer: FakeProducer
    tp: TopicPartition
    key: bytes | None
    value: bytes | None
    future: asyncio.Future[Rec]
    step: int


class _Cluster:
    """What aiokafka's assignor reads from ClusterMetadata."""

    def __init__(self, broker: FakeBroker) -> None:
        self.broker = broker

    def partitions_for_topic(self, topic: str) -> set[int] | None:
        log = self.broker.logs.get(topic)
        return None if log is None else set(range(len(log)))


class FakeBroker:
    """Topics, committed offsets and one consumer group's generations."""

    def __init__(self) -> None:
        self.logs: dict[str, list[list[Rec]]] = {}
        self.committed: dict[TopicPartition, int] = {}
        self.metadata: dict[TopicPartition, str] = {}  # committed with each offset
        self.generation = 0
        self.members: list[FakeGroupConsumer] = []  # of the current generation, leader first
        self.step = 0  # counts every send and delivery, to order events
        self.pending: list[Send] = []
        self.send_hooks: list[Any] = []  # called with each Send as it is handed over
        # The group coordinator's broker is down: commits get no answer (a connection error).
        self.coordinator_down = False

    # ---------------------------------------------------------------- topics
    def create(self, topic: str, partitions: int) -> None:
        self.logs.setdefault(topic, [[] for _ in range(partitions)])

    def append(self, tp: TopicPartition, key: bytes | None, value: bytes | None) -> Rec:
        log = self.logs[tp.topic][tp.partition]
        rec = Rec(tp.topic, tp.partition, len(log), key, value)
        log.append(rec)
        return rec

    def produce(self, topic: str, key: str, value: bytes) -> Rec:
        """An outside producer's record, at once on the log (keyed like Kafka's partitioner)."""
        k = key.encode()
        tp = TopicPartition(topic, partition_for(k, len(self.logs[topic])))
        return self.append(tp, k, value)

    def end(self, tp: TopicPartition) -> int:
        return len(self.logs[tp.topic][tp.partition])

    def records(self, topic: str) -> list[Rec]:
        return [r for log in self.logs.get(topic, []) for r in log]

    # ---------------------------------------------------------------- deliveries
    def deliverable(self) -> list[Send]:
        """Sends that may be delivered next: the first pending one of each producer and partition."""
        seen: set[tuple[int, TopicPartition]] = set()
        out = []
        for send in self.pending:
            k = (id(send.producer), send.tp)
            if k not in seen:
                seen.add(k)
                out.append(send)
        return out

    def deliver(self, send: Send) -> None:
        assert send in self.deliverable()
        self.pending.remove(send)
        self.step += 1
        rec = self.append(send.tp, send.key, send.value)
        if not send.future.done():
            send.future.set_result(rec)

    def fail(self, send: Send, exc: BaseException) -> None:
        """The broker refuses a send for good (after the producer's retries)."""
        self.pending.remove(send)
        if not send.future.done():
            send.future.set_exception(exc)

    def deliver_all(self, producer: FakeProducer | None = None) -> None:
        for send in [s for s in self.pending if producer is None or s.producer is producer]:
            self.deliver(send)

    def lose(self, producer: FakeProducer, rng: random.Random) -> None:
        """A crash: per partition a prefix of the producer's pending sends lands, the rest is lost."""
        mine = [s for s in self.pending if s.producer is producer]
        by_tp: dict[TopicPartition, list[Send]] = {}
        for s in mine:
            by_tp.setdefault(s.tp, []).append(s)
        for sends in by_tp.values():
            keep = rng.randint(0, len(sends))
            for s in sends[:keep]:
                self.deliver(s)
            for s in sends[keep:]:
                self.pending.remove(s)
                if not s.future.done():
                    s.future.cancel()

    # ---------------------------------------------------------------- the group
    def is_current(self, member: FakeGroupConsumer) -> bool:
        return member in self.members and member.generation == self.generation

    def expel(self, member: FakeGroupConsumer) -> None:
        """The coordinator drops a member whose session timed out: from now on its commits fail."""
        if member in self.members:
            self.members.remove(member)
        self.generation += 1

    async def rebalance(self, members: Sequence[FakeGroupConsumer]) -> None:
        """Move the group to a new generation made of ``members`` (the first one leads).

        Every member of the new generation that was assigned something first
        gets its revoke callback, as aiokafka calls it before rejoining.
        """
        for m in members:
            if m.listener is not None and m.assigned is not None:
                await m.listener.on_partitions_revoked(set(m.assigned))
                m.assigned = None
        self.generation += 1
        self.members = list(members)
        if not members:
            return
        leader = members[0]
        metadata = {
            m.member_id: ConsumerProtocolMemberMetadata(1, sorted(m.topics), b"") for m in members
        }
        for m in members:  # what each member would have sent in its JoinGroup
            metadata[m.member_id] = m.assignor.metadata(m.topics)
        plan = leader.assignor.assign(_Cluster(self), metadata)
        for m in members:
            assignment = plan[m.member_id]
            m.assignor.on_assignment(assignment)
            m.generation = self.generation
            m.assign(set(assignment.partitions()))
        for m in members:
            if m.listener is not None:
                await m.listener.on_partitions_assigned(set(m.assigned or ()))


class FakeGroupConsumer:
    """The engine's group consumer."""

    def __init__(self, broker: FakeBroker, assignor: CopartitionedAssignor, member_id: str) -> None:
        self.broker = broker
        self.assignor = assignor
        self.member_id = member_id
        self.topics: list[str] = []
        self.listener: Any = None
        self.assigned: set[TopicPartition] | None = None
        self.positions: dict[TopicPartition, int] = {}
        self.paused: set[TopicPartition] = set()
        self.generation = -1
        self.fetch_limit = 3  # records per partition per getmany
        self.stopped = False

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        self.stopped = True

    def subscribe(self, topics: Iterable[str], listener: Any = None) -> None:
        self.topics = list(topics)
        self.listener = listener

    def assign(self, tps: set[TopicPartition]) -> None:
        self.assigned = tps
        self.paused &= tps
        self.positions = {tp: self.broker.committed.get(tp, 0) for tp in tps}

    def assignment(self) -> set[TopicPartition]:
        return set(self.assigned or ())

    async def position(self, tp: TopicPartition) -> int:
        if tp not in self.assignment():
            raise IllegalStateError(f"{tp} is not assigned")
        return self.positions[tp]

    def highwater(self, tp: TopicPartition) -> int | None:
        return self.broker.end(tp) if tp in self.assignment() else None

    async def committed(self, tp: TopicPartition) -> int | None:
        return self.broker.committed.get(tp)

    async def beginning_offsets(self, tps: Sequence[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: 0 for tp in tps}

    def pause(self, *tps: TopicPartition) -> None:
        self.paused |= set(tps)

    def resume(self, *tps: TopicPartition) -> None:
        self.paused -= set(tps)

    def fetch(self) -> dict[TopicPartition, list[Rec]]:
        """What one getmany returns now: up to ``fetch_limit`` records per unpaused partition."""
        out = {}
        for tp in sorted(self.assignment() - self.paused):
            log = self.broker.logs[tp.topic][tp.partition]
            pos = self.positions[tp]
            got = log[pos : pos + self.fetch_limit]
            if got:
                out[tp] = got
                self.positions[tp] = pos + len(got)
        return out

    async def getmany(
        self, *tps: TopicPartition, timeout_ms: int = 0
    ) -> dict[TopicPartition, list[Rec]]:
        return self.fetch()

    async def commit(self, offsets: Mapping[TopicPartition, Any]) -> None:
        await asyncio.sleep(0)  # a round trip: other coroutines run meanwhile
        if self.broker.coordinator_down:
            raise KafkaConnectionError("the group coordinator's broker does not answer")
        if not self.broker.is_current(self):
            raise CommitFailedError("the group has rebalanced without this member")
        for tp in offsets:
            if tp not in self.assignment():
                raise IllegalStateError(f"{tp} is not assigned")
        for tp, meta in offsets.items():
            self.broker.committed[tp] = meta.offset
            self.broker.metadata[tp] = meta.metadata


class FakeProducer:
    """Hands records to the broker as pending sends; the test delivers them."""

    def __init__(self, broker: FakeBroker, name: str) -> None:
        self.broker = broker
        self.name = name
        self.alive = True  # False once its process was killed: nothing more leaves it

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def partitions_for(self, topic: str) -> set[int]:
        return set(range(len(self.broker.logs[topic])))

    async def flush(self) -> None:
        """Wait until every record handed to this producer is delivered (or lost).

        Like Kafka's: it waits for the records, not their delivery futures (a
        future is cancelled with the coroutine awaiting it; the record still
        goes out).
        """
        while any(s.producer is self for s in self.broker.pending):
            await asyncio.sleep(0)

    async def send(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        partition: int | None = None,
    ) -> asyncio.Future[Rec]:
        if not self.alive:
            raise RuntimeError(f"{self.name} was killed: its process sends nothing")
        if partition is None:
            assert key is not None
            partition = partition_for(key, len(self.broker.logs[topic]))
        self.broker.step += 1
        send = Send(
            self,
            TopicPartition(topic, partition),
            key,
            value,
            asyncio.get_running_loop().create_future(),
            self.broker.step,
        )
        for hook in self.broker.send_hooks:
            hook(send)
        self.broker.pending.append(send)
        return send.future


class FakeReader:
    """Reads partitions back from the start (recovery)."""

    def __init__(self, broker: FakeBroker) -> None:
        self.broker = broker
        self.assigned: list[TopicPartition] = []
        self.positions: dict[TopicPartition, int] = {}

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def end_offsets(self, tps: Sequence[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: self.broker.end(tp) for tp in tps}

    async def beginning_offsets(self, tps: Sequence[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: 0 for tp in tps}

    def assign(self, tps: Sequence[TopicPartition]) -> None:
        self.assigned = list(tps)

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.positions[tp] = offset

    async def position(self, tp: TopicPartition) -> int:
        return self.positions[tp]

    async def getmany(
        self, *tps: TopicPartition, timeout_ms: int = 0
    ) -> dict[TopicPartition, list[Rec]]:
        out = {}
        for tp in tps or self.assigned:
            log = self.broker.logs[tp.topic][tp.partition]
            got = log[self.positions[tp] :]
            if got:
                out[tp] = got
                self.positions[tp] += len(got)
        return out


class FakeAdmin:
    def __init__(self, broker: FakeBroker) -> None:
        self.broker = broker

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def list_topics(self) -> list[str]:
        return list(self.broker.logs)

    async def list_consumer_group_offsets(
        self, group_id: str, partitions: Sequence[TopicPartition] | None = None
    ) -> dict[TopicPartition, OffsetAndMetadata]:
        """As aiokafka's: the committed offset and metadata of each partition asked about
        (offset -1 for one never committed)."""
        await asyncio.sleep(0)  # a round trip
        b = self.broker
        return {
            tp: OffsetAndMetadata(b.committed.get(tp, -1), b.metadata.get(tp, ""))
            for tp in partitions or b.committed
        }

    async def describe_topics(self, topics: Sequence[str]) -> list[dict[str, Any]]:
        return [
            {"topic": t, "partitions": [{"partition": p} for p in range(len(self.broker.logs[t]))]}
            for t in topics
        ]

    async def create_topics(self, new: Sequence[Any]) -> Any:
        for t in new:
            self.broker.create(t.name, t.num_partitions)
        # As aiokafka: a CreateTopics response, each topic with error code 0 (created).
        return SimpleNamespace(topic_errors=[(t.name, 0, None) for t in new])


@dataclass
class FakeClients:
    """The `Clients` of one worker on the fake broker."""

    broker: FakeBroker
    member_id: str
    consumer: FakeGroupConsumer | None = None
    producer_: FakeProducer | None = None

    def group_consumer(self, assignor: CopartitionedAssignor) -> FakeGroupConsumer:
        self.consumer = FakeGroupConsumer(self.broker, assignor, self.member_id)
        return self.consumer

    def reader(self) -> FakeReader:
        return FakeReader(self.broker)

    def producer(self) -> FakeProducer:
        self.producer_ = FakeProducer(self.broker, self.member_id)
        return self.producer_

    def admin(self) -> FakeAdmin:
        return FakeAdmin(self.broker)


@dataclass
class FakePersister:
    """The InfluxDB persister as the engine sees it; the test decides when lines are written."""

    lines: list[str] = field(default_factory=list)
    written_count: int = 0
    _progress: asyncio.Condition | None = None

    def add(self, lines: Iterable[str]) -> None:
        self.lines += lines

    def mark(self) -> int:
        return len(self.lines)

    async def written(self, mark: int) -> None:
        if self._progress is None:
            self._progress = asyncio.Condition()
        async with self._progress:
            await self._progress.wait_for(lambda: self.written_count >= mark)

    async def write_all(self) -> None:
        self.written_count = len(self.lines)
        if self._progress is None:
            self._progress = asyncio.Condition()
        async with self._progress:
            self._progress.notify_all()

    async def wait_for_room(self) -> None:
        return None

    async def run(self) -> None:
        return None

    async def close(self) -> None:
        return None
