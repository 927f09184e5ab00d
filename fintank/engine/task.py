"""One task per assigned partition of a group: its input lanes, its state, its processor.

The engine's fetch loop `offer`s each fetched per-partition batch to the task
that owns the partition; the task's `run` loop hands batches to its
processor strictly in offset order, one at a time, under ``lock``. Between
two batches the engine may take a `Snapshot` (under the same lock): the
offsets processed so far, the state staged so far (serialised), and the
outputs sent so far. Nothing else ever touches a task's queue, lanes or
stores, so:

* a fetched batch is processed unless the partition is revoked (then it is
  dropped unprocessed and its offsets are not committed);
* a task's state is published only by the engine's commit of this task's
  own snapshot, after that snapshot's outputs were delivered.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from fintank.codec import dumps
from fintank.engine.kafka import TopicPartition
from fintank.engine.spec import Group, Processor
from fintank.engine.store import PartitionStore
from fintank.records import DeadLetter

if TYPE_CHECKING:
    from fintank.engine.engine import Engine

log = logging.getLogger(__name__)


class Batch:
    """Records fetched together from one input partition (aiokafka ConsumerRecords), in order.

    ``name``: the stream's name in its topology (the topic's, until a runtime sets it).
    """

    __slots__ = ("topic", "partition", "records", "name")

    def __init__(self, topic: str, partition: int, records: Sequence[Any]) -> None:
        self.topic = topic
        self.partition = partition
        self.records = records
        self.name = topic

    @property
    def tp(self) -> TopicPartition:
        return TopicPartition(self.topic, self.partition)

    @property
    def first(self) -> int:
        """Offset of the first record."""
        return int(self.records[0].offset)

    @property
    def end(self) -> int:
        """One past the last record's offset: the offset to commit once this batch is durable."""
        return int(self.records[-1].offset) + 1

    def values(self) -> list[Any]:
        """The records' values: bytes (or None), or what the stream's ``decode`` made of them."""
        return [r.value for r in self.records]

    def offsets(self) -> list[int]:
        return [r.offset for r in self.records]

    def __len__(self) -> int:
        return len(self.records)


@dataclass(slots=True)
class Lane:
    """Bookkeeping of one input partition of a task.

    ``committed``: the offset committed for the group (at assignment: the
    committed offset, or the log's first offset if none was ever committed).
    ``processed``: one past the last offset handed to the processor and
    finished (-1 before the first batch). Offsets between them are processed
    but not yet durable; only ``processed`` is ever committed.
    """

    tp: TopicPartition
    committed: int = -1
    processed: int = -1
    fetched: int = 0  # records fetched for this lane
    done: int = 0  # records processed
    discarded: int = 0  # records dropped unprocessed because the partition was revoked


@dataclass(slots=True)
class Snapshot:
    """A task's state at a batch boundary, waiting to become durable, then published."""

    task: Task
    offsets: dict[TopicPartition, int]
    changes: list[tuple[str, int, str, bytes | None]]  # (changelog topic, partition, key, value)
    outputs: list[Awaitable[Any]]
    persisted: int | None  # the persister mark to wait for (None: nothing persisted)
    durable: asyncio.Future[None] = field(init=False)
    published: bool = False  # its state is on the changelogs (its offsets may not be committed yet)
    #: Per replay partition, 1 + the highest offset its outputs were delivered at (set once
    #: durable): the replay bound of the commit *after* this one (fintank.engine.checkpoint).
    bounds: dict[TopicPartition, int] = field(default_factory=dict)


class Context:
    """What a processor may do: read and stage its tables, send, persist, fence, dead-letter.

    One per task. Sends go out at once (``send``); the engine waits for their
    delivery before it publishes the task's state or commits its offsets.
    """

    def __init__(self, task: Task) -> None:
        self._task = task
        self.partition = task.partition
        self.group = task.group.name

    # ------------------------------------------------------------ state
    def table(self, name: str) -> PartitionStore:
        """This partition of the group's table ``name``."""
        return self._task.stores[name]

    # ------------------------------------------------------------ outputs
    async def send(
        self,
        output: str,
        key: str | None,
        value: Any,
        *,
        raw: bool = False,
    ) -> asyncio.Future[Any]:
        """Send ``value`` (JSON, or bytes if ``raw``) to the topic of ``output``, keyed by ``key``.

        Fenced (`fence`): within the lease that is a clock reading, so every
        output is covered, not only those that must never repeat; a worker
        that woke up after its partitions moved on sends nothing stale.
        Returns the delivery future; the task's next commit waits for it.
        """
        engine = self._task.engine
        await engine.fence(self._task)
        fut: asyncio.Future[Any] = await engine.send(
            engine.outputs[output],
            None if key is None else key.encode("utf-8"),
            value if raw else dumps(value),
        )
        self._task.pending.append(fut)
        return fut

    def track(self, work: Awaitable[Any]) -> asyncio.Future[Any]:
        """Run ``work`` (for example: wait for some deliveries, then send more); the task's
        next commit waits for it too, and a revoke cancels it if it has not finished."""
        task = self._task
        fut = asyncio.ensure_future(work)
        task.pending.append(fut)
        task.chained.add(fut)

        def done(f: asyncio.Future[Any]) -> None:
            task.chained.discard(f)
            if not f.cancelled() and f.exception() is not None:
                task.failed = True
                task.engine.on_task_error(f.exception())  # type: ignore[arg-type]

        fut.add_done_callback(done)
        return fut

    def persist(self, lines: Iterable[str]) -> None:
        """Queue InfluxDB lines; the task's next commit waits until they are written."""
        persister = self._task.engine.persister
        persister.add(lines)
        self._task.persisted = self._task.last_persisted = persister.mark()

    async def fence(self) -> None:
        """Return only while this worker still owns the task's partitions (a round trip to
        the group coordinator); raise `Fenced` otherwise. Call it right before sending
        what must never be sent twice."""
        await self._task.engine.fence(self._task)

    # ------------------------------------------------------------ dead letters
    def deadlettered(self, topic: str, offset: int) -> bool:
        """Whether the record at ``offset`` of this partition of ``topic`` is already
        dead-lettered (before a crash or a rebalance)."""
        mark = self._task.deadletter_marks.get(topic)
        return mark is not None and offset <= mark

    async def deadletter(
        self, topic: str, letters: Sequence[tuple[int, DeadLetter]]
    ) -> list[DeadLetter]:
        """Send the dead letters of records of this partition of ``topic``: (offset, letter)
        pairs in offset order. Each record is dead-lettered once: those sent before a
        crash or a rebalance are skipped. Fenced: a worker that lost the partition sends
        nothing. Returns the letters sent, stamped with their source partition and offset.
        """
        fresh = [(o, letter) for o, letter in letters if not self.deadlettered(topic, o)]
        if not fresh:
            return []
        await self.fence()
        sent = []
        for offset, letter in fresh:
            stamped = replace(letter, source_partition=self.partition, source_offset=offset)
            await self.send("deadletters", letter.source_topic, stamped)
            self._task.deadletter_marks[topic] = offset
            sent.append(stamped)
        self._task.engine.counters.deadletters[topic] += len(sent)
        return sent

    @staticmethod
    def now() -> float:
        """Wall-clock time, read by the runner and passed to the bolts."""
        return time.time()


class Task:
    """The processor of one partition of one group, with its lanes and stores."""

    def __init__(
        self,
        engine: Engine,
        group: Group,
        partition: int,
        stores: Mapping[str, PartitionStore],
    ) -> None:
        self.engine = engine
        self.group = group
        self.partition = partition
        self.lanes = {t: Lane(TopicPartition(t, partition)) for t in group.inputs}
        self.stores = dict(stores)
        self.queue: deque[Batch] = deque()
        self.queued = 0  # records waiting in ``queue``
        self.lock = asyncio.Lock()
        self.pending: list[Awaitable[Any]] = []  # outputs since the last snapshot
        self.chained: set[asyncio.Future[Any]] = set()
        self.persisted: int | None = None  # persister mark after its lines since the snapshot
        self.last_persisted: int | None = None  # persister mark after its newest lines
        self.deadletter_marks: dict[str, int] = {}  # topic -> highest dead-lettered offset
        # Bounded recovery (fintank.engine.checkpoint): the partitions its recovery replays
        # (its replay topics, the dead letters), the bound to commit with its next snapshot,
        # and the metadata of its last commit (a fence commits it again, unchanged).
        self.tracked: set[TopicPartition] = set()
        self.checkpoint: dict[TopicPartition, int] = {}
        self.committed_meta = ""
        # What recovery read from, kept as the checkpoint until the commits pass the input
        # offsets a previous owner may have processed (``inputs_at_restore``): until then
        # a redelivered record's earlier outputs sit below this incarnation's own.
        self.floor: dict[TopicPartition, int] | None = None
        self.inputs_at_restore: dict[TopicPartition, int] = {}
        self.inflight: Snapshot | None = None
        self.ready = asyncio.Event()  # set once recovered
        self.closing = False  # stop taking batches (a revoke has begun)
        self.revoked = False  # the partitions are gone: nothing more may be sent for them
        self.failed = False  # its processor raised: nothing of it is published or committed
        self.paused = False
        self.recheck_end = False  # resumed: `Engine.caught_up` asks for the true ends once
        self.changed = False  # processed or staged something since the last snapshot
        self.context = Context(self)
        self.processor: Processor = group.processor(self.context)
        self._wake = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None
        # GET /metrics: per batch, one histogram slot and one dict entry (fintank.counters).
        self._batch_seconds = engine.counters.batch_histogram(group.name)
        self._records_in = engine.counters.records_in

    def reset(self) -> None:
        """Forget everything restored (a failed recovery is started over from scratch)."""
        self.stores = {
            name: PartitionStore(s.table, self.partition) for name, s in self.stores.items()
        }
        self.deadletter_marks.clear()
        self.checkpoint.clear()
        self.committed_meta = ""
        self.floor = None
        self.inputs_at_restore = {}
        self.pending = []
        self.cancel_chained()
        self.processor = self.group.processor(self.context)

    def __repr__(self) -> str:
        return f"<Task {self.group.name}[{self.partition}]>"

    @property
    def key(self) -> tuple[str, int]:
        return (self.group.name, self.partition)

    # ------------------------------------------------------------ hand-off
    def offer(self, batch: Batch) -> bool:
        """Queue a fetched batch (False, and dropped, if the task is closing)."""
        lane = self.lanes[batch.topic]
        lane.fetched += len(batch)
        if self.closing:
            lane.discarded += len(batch)
            return False
        self.queue.append(batch)
        self.queued += len(batch)
        self._wake.set()
        return True

    def start(self, on_error: Callable[[BaseException], None]) -> None:
        """Start the run loop (it waits for ``ready`` first)."""

        def done(runner: asyncio.Task[None]) -> None:
            if not runner.cancelled() and runner.exception() is not None:
                self.failed = True  # a batch half done: its staged state must never be published
                on_error(runner.exception())  # type: ignore[arg-type]

        self._runner = asyncio.ensure_future(self.run())
        self._runner.add_done_callback(done)

    async def run(self) -> None:
        """Hand queued batches to the processor in order; call its clock between batches."""
        await self.ready.wait()
        clock = self.group.clock
        next_clock = time.monotonic() + clock if clock else None
        while not self.closing:
            if self.queue:
                batch = self.queue.popleft()
                self.queued -= len(batch)
                self.engine.maybe_resume(self)
                async with self.lock:
                    if self.closing:  # revoked while we waited for the lock
                        self.lanes[batch.topic].discarded += len(batch)
                        return
                    lane = self.lanes[batch.topic]
                    if batch.first < max(lane.processed, lane.committed):
                        raise AssertionError(
                            f"{batch.tp}: batch at {batch.first} is behind offset "
                            f"{max(lane.processed, lane.committed)}"
                        )
                    started = time.perf_counter()
                    await self.processor.on_batch(batch)
                    self._batch_seconds.observe(time.perf_counter() - started)
                    self._records_in[batch.topic] += len(batch)
                    lane.processed = batch.end
                    lane.done += len(batch)
                    self.changed = True
                if self.persisted is not None:
                    # Backpressure from the InfluxDB persister, outside the lock: a
                    # revoke or a commit point never waits for InfluxDB here.
                    await self.engine.persister.wait_for_room()
                # Let the rest of the worker run between two batches (the persister's
                # writes, the fetch loop, other tasks, HTTP): awaits that do not
                # suspend would otherwise keep the loop until the queue is empty.
                await asyncio.sleep(0)
                continue
            if next_clock is not None and time.monotonic() >= next_clock:
                # The clock is for quiet partitions: a task still behind its inputs
                # (history being replayed, a backlog) is not at "now" yet, and
                # closing windows by wall clock there would make its next ticks late.
                if await self.engine.caught_up(self):
                    async with self.lock:
                        if self.closing:
                            return
                        await self.processor.on_clock(time.time())
                        self.changed = True
                next_clock = time.monotonic() + (clock or 0)
                continue
            self._wake.clear()
            timeout = None if next_clock is None else max(0.0, next_clock - time.monotonic())
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._wake.wait()

    # ------------------------------------------------------------ commit points
    def snapshot(self) -> Snapshot | None:
        """Offsets, staged state and outputs so far (call under ``lock``); None if nothing new."""
        offsets = {
            lane.tp: lane.processed
            for lane in self.lanes.values()
            if lane.processed > lane.committed
        }
        changes = []
        for store in self.stores.values():
            if store.dirty:
                topic = self.engine.changelog_topic(store.table)
                changes += [(topic, self.partition, k, v) for k, v in store.take()]
        if not (offsets or changes or self.pending):
            self.changed = False
            return None
        snap = Snapshot(self, offsets, changes, self.pending, self.persisted)
        self.pending = []
        self.persisted = None
        self.changed = False
        return snap

    def replay_bounds(self, committing: Mapping[TopicPartition, int]) -> dict[TopicPartition, int]:
        """The checkpoint to commit along with the offsets ``committing`` (docs/engine.md).

        This incarnation's own bounds once every input is committed past what a previous
        owner could have processed (the ends at recovery); recovery's own starting point
        before that, since a record redelivered to us may have had outputs below ours.
        """
        if self.floor is not None:
            at_restore = self.inputs_at_restore
            if all(
                committing.get(lane.tp, lane.committed) >= at_restore.get(lane.tp, 0)
                for lane in self.lanes.values()
            ):
                self.floor = None
            else:
                return self.floor
        return self.checkpoint

    async def stop(self, timeout: float) -> bool:
        """Stop taking batches: wait (up to ``timeout``) for the batch in hand to finish.

        Queued batches are dropped unprocessed. Returns False if the batch in
        hand did not finish in time (it is then cancelled).
        """
        self.closing = True
        for batch in self.queue:
            self.lanes[batch.topic].discarded += len(batch)
        self.queue.clear()
        self.queued = 0
        self._wake.set()
        finished = True
        try:
            async with asyncio.timeout(timeout):
                await self.lock.acquire()
            self.lock.release()
        except TimeoutError:
            finished = False
        if self._runner is not None and not self._runner.done():
            self._runner.cancel()
            await asyncio.wait([self._runner])  # (our own cancellation still propagates)
        return finished

    def cancel_runner(self) -> None:
        if self._runner is not None and not self._runner.done():
            self._runner.cancel()

    def cancel_chained(self) -> None:
        """Cancel follow-up work that has not finished (it must not send for a lost partition)."""
        for fut in list(self.chained):
            fut.cancel()
