"""The engine: fintank's own consumption, state and commits, over public aiokafka APIs.

One group consumer subscribes to every group's inputs with fintank's
co-partitioning assignor (`fintank.engine.assignor`). Its fetch loop offers
each fetched per-partition batch to the `Task` owning that partition, which
processes batches in offset order. A commit loop, every ``commit_interval``,
takes a snapshot of each task at a batch boundary and, once that snapshot's
outputs are delivered (and its InfluxDB lines written), proves the worker
still owns the partitions (`fence`), appends the snapshot's state to the
changelogs, then commits its offsets. A rebalance's revoke stops the tasks,
waits for the batch in hand, and runs that commit one last time; an assign
creates tasks that first restore their tables (and replay what the group
asks for) from Kafka. See docs/engine.md for the invariants and why.

faust keeps what it is good at around this: the worker process and CLI, the
web server, and the app's services; it no longer consumes anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import mode

from fintank.codec import loads
from fintank.engine import kafka
from fintank.engine.assignor import CopartitionedAssignor, Routing
from fintank.engine.kafka import CommitFailedError, IllegalStateError, KafkaError, TopicPartition
from fintank.engine.restore import read_partitions
from fintank.engine.spec import Group, Table
from fintank.engine.store import PartitionStore
from fintank.engine.task import Batch, Snapshot, Task
from fintank.errors import FintankError

log = logging.getLogger(__name__)


class Fenced(FintankError):
    """This worker no longer owns a partition it was about to write for."""


class EngineError(FintankError):
    """The engine cannot run as configured (for example: inputs not co-partitioned)."""


class OutputsLost(EngineError):
    """A send failed for good: the worker's state is ahead of Kafka and it must restart."""


class Persister(Protocol):
    """The InfluxDB persister as the engine sees it (`fintank.sinks.influx.InfluxPersister`)."""

    def add(self, lines: Iterable[str]) -> None: ...

    def mark(self) -> int: ...

    async def written(self, mark: int) -> None: ...

    async def run(self) -> None: ...

    async def close(self) -> None: ...


class Clients(Protocol):
    """Makes the Kafka clients the engine uses (`KafkaClients`; a fake broker in tests)."""

    def group_consumer(self, assignor: CopartitionedAssignor) -> Any: ...

    def reader(self) -> Any: ...

    def producer(self) -> Any: ...

    def admin(self) -> Any: ...


@dataclass(frozen=True, slots=True)
class KafkaClients:
    """The real clients, all built by `fintank.engine.kafka` from one `KafkaSettings`."""

    settings: kafka.KafkaSettings

    def group_consumer(self, assignor: CopartitionedAssignor) -> Any:
        return kafka.group_consumer(self.settings, assignor)

    def reader(self) -> Any:
        return kafka.reader(self.settings)

    def producer(self) -> Any:
        return kafka.producer(self.settings)

    def admin(self) -> Any:
        return kafka.admin(self.settings)


@dataclass(frozen=True, slots=True)
class EngineConfig:
    """How the engine paces itself."""

    app_id: str
    deadletters: str  # the dead-letter topic (its records say which input record they judge)
    commit_interval: float = 0.5
    #: Records queued for one task before its partitions are paused.
    max_queued: int = 100_000
    #: How long a revoke waits for a task's batch in hand and for its outputs.
    revoke_timeout: float = 5.0
    #: How long a successful commit proves membership for `Engine.fence` (seconds from
    #: when the commit was sent). Well under the session timeout: see docs/engine.md.
    lease: float = 3.0
    #: Replication factor of the changelog topics the engine creates.
    replication: int = 1
    #: On a fatal error in a revoke, exit the process at once (records still in the
    #: producer die with it). Tests of the engine itself turn this off.
    exit_on_fatal: bool = True


class _Listener(kafka.ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    async def on_partitions_revoked(self, revoked: Any) -> None:
        await self.engine.on_revoked(set(revoked))

    async def on_partitions_assigned(self, assigned: Any) -> None:
        await self.engine.on_assigned(set(assigned))


class Engine(mode.Service):
    """Consumes the groups' inputs, runs one task per assigned partition, commits safely."""

    def __init__(
        self,
        config: EngineConfig,
        groups: Sequence[Group],
        outputs: Mapping[str, str],
        persister: Persister,
        clients: Clients,
        url: str | Callable[[], str],
        clock: Callable[[], float] = time.monotonic,
        on_error: Callable[[BaseException], None] | None = None,
        **kwargs: Any,
    ) -> None:
        self.config = config
        self.groups = {g.name: g for g in groups}
        self.outputs = dict(outputs)  # output name -> topic
        self.persister = persister
        self.clients = clients
        self.group_of = {topic: g for g in groups for topic in g.inputs}
        self._url = url
        self.clock = clock  # monotonic seconds; it runs on while the process is frozen
        self.on_error = on_error  # a task failed (default: crash the worker)
        self.assignor = CopartitionedAssignor({g.name: g.inputs for g in groups}, "")
        self.tasks: dict[tuple[str, int], Task] = {}
        self.assigned: set[TopicPartition] = set()
        self.recovering: asyncio.Task[None] | None = None
        self.stats = {"rebalances": 0, "fences": 0, "fenced": 0, "commits": 0, "cycles": 0}
        self.ready = asyncio.Event()  # assigned and recovered at least once
        self.consumer: Any = None
        self.producer: Any = None
        self.reader: Any = None
        self._fetching: asyncio.Future[None] | None = None
        self._deadletter_partitions: list[int] = []
        self._partitions: dict[str, int] = {}  # group -> partition count of its inputs
        self._proof = -1e9  # monotonic time a commit that then succeeded was sent
        self._cycle_lock = asyncio.Lock()
        super().__init__(**kwargs)

    # ------------------------------------------------------------ names and routing
    def changelog_topic(self, table: Table) -> str:
        return f"{self.config.app_id}-{table.name}-changelog"

    @property
    def routing(self) -> Routing:
        return self.assignor.routing

    def partition_of(self, group: str, key: str) -> int | None:
        """The partition of ``group`` that ``key`` hashes to, or None before the first assignment."""
        n = self.routing.partitions(group)
        return kafka.partition_for(key.encode("utf-8"), n) if n else None

    def task_for(self, group: str, partition: int) -> Task | None:
        """This worker's recovered task for ``partition`` of ``group``, if it owns it."""
        task = self.tasks.get((group, partition))
        return task if task is not None and task.ready.is_set() else None

    # ------------------------------------------------------------ lifecycle
    @property
    def url(self) -> str:
        """This worker's web address, as the other members route to it."""
        return self._url() if callable(self._url) else self._url

    async def on_start(self) -> None:
        await self.connect()
        self.add_future(self.persister.run())
        self._fetching = self.add_future(self._fetch_loop())
        self.add_future(self._commit_loop())

    async def on_stop(self) -> None:
        if self._fetching is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(asyncio.shield(self._fetching), 5.0)
        if self.consumer is not None:
            # Drain and commit as a revoke would, then leave the group.
            with contextlib.suppress(Exception):
                await self.on_revoked(set(self.assigned))
            with contextlib.suppress(Exception):
                await self.consumer.stop()
        with contextlib.suppress(Exception):
            await self.persister.close()
        for client in (self.producer, self.reader):
            if client is not None:
                with contextlib.suppress(Exception):
                    await client.stop()

    async def connect(self) -> None:
        """Check and create topics, start the clients, join the group (no loops yet)."""
        self.assignor.url = self.url
        await self.prepare_topics()
        self.producer = self.clients.producer()
        self.reader = self.clients.reader()
        self.consumer = self.clients.group_consumer(self.assignor)
        await self.producer.start()
        await self.reader.start()
        await self.consumer.start()
        await self._warm_up()
        self.consumer.subscribe(sorted(self.group_of), listener=_Listener(self))

    async def _warm_up(self) -> None:
        """Ask once, before joining, for the offsets recovery will ask for.

        A client's first request about a topic waits for a metadata refresh
        (0.3-0.5 s measured here); done now, it is not between an assignment
        and the first batch processed.
        """
        started = time.monotonic()
        tps = [TopicPartition(self.config.deadletters, p) for p in self._deadletter_partitions]
        for g in self.groups.values():
            n = self._partitions.get(g.name, 0)
            topics = [*g.inputs, *g.replay, *(self.changelog_topic(t) for t in g.tables)]
            tps += [TopicPartition(topic, p) for topic in topics for p in range(n)]
        if tps:
            await self.reader.beginning_offsets(tps)
            await self.reader.end_offsets(tps)
        log.info("metadata of %d partitions fetched in %.3fs", len(tps), time.monotonic() - started)

    async def prepare_topics(self) -> None:
        """Check the groups' inputs exist and are co-partitioned; create missing changelogs."""
        admin = self.clients.admin()
        await admin.start()
        try:
            names = set(await admin.list_topics())
            inputs = sorted({t for g in self.groups.values() for t in g.inputs})
            missing = [t for t in inputs if t not in names]
            if missing:
                raise EngineError(
                    f"input topics {missing} do not exist; create them first (invoke up)"
                )
            described = await admin.describe_topics(
                sorted({*inputs, self.config.deadletters} & names)
            )
            counts = {d["topic"]: len(d["partitions"]) for d in described}
            self._deadletter_partitions = list(range(counts.get(self.config.deadletters, 0)))
            wanted: dict[str, int] = {}
            for g in self.groups.values():
                have = {t: counts[t] for t in g.inputs}
                if len(set(have.values())) != 1:
                    raise EngineError(
                        f"group {g.name!r}: its inputs must have one partition count "
                        f"(they meet by partition), got {have}"
                    )
                self._partitions[g.name] = counts[g.inputs[0]]
                for table in g.tables:
                    wanted[self.changelog_topic(table)] = counts[g.inputs[0]]
            new = [
                kafka.NewTopic(
                    name,
                    n,
                    self.config.replication,
                    topic_configs={
                        "cleanup.policy": "compact",
                        "segment.ms": "600000",
                        "min.cleanable.dirty.ratio": "0.1",
                    },
                )
                for name, n in wanted.items()
                if name not in names
            ]
            if new:
                with contextlib.suppress(kafka.TopicAlreadyExistsError):
                    await admin.create_topics(new)
            existing = [n for n in wanted if n in names]
            if existing:
                for d in await admin.describe_topics(existing):
                    if len(d["partitions"]) != wanted[d["topic"]]:
                        raise EngineError(
                            f"changelog {d['topic']} has {len(d['partitions'])} partitions, "
                            f"its group's inputs have {wanted[d['topic']]}"
                        )
        finally:
            await admin.close()

    # ------------------------------------------------------------ fetching
    async def _fetch_loop(self) -> None:
        while not self.should_stop:
            try:
                fetched = await self.consumer.getmany(timeout_ms=200)
            except KafkaError as exc:
                log.warning("fetch: %r; retrying", exc)
                await asyncio.sleep(0.2)
                continue
            self.dispatch(fetched)

    def dispatch(self, fetched: Mapping[TopicPartition, Sequence[Any]]) -> None:
        """Offer each fetched batch to its task; pause a task's inputs while it is behind."""
        for tp, records in fetched.items():
            if not records:
                continue
            task = self.tasks.get((self.group_of[tp.topic].name, tp.partition))
            if task is None:
                log.warning(
                    "%s: fetched %d records for a partition without a task", tp, len(records)
                )
                continue
            task.offer(Batch(tp.topic, tp.partition, records))
            if task.queued > self.config.max_queued and not task.paused:
                task.paused = True
                self.consumer.pause(*(lane.tp for lane in task.lanes.values()))

    def maybe_resume(self, task: Task) -> None:
        if task.paused and task.queued <= self.config.max_queued // 2 and not task.closing:
            task.paused = False
            live = [lane.tp for lane in task.lanes.values() if lane.tp in self.assigned]
            if live:
                self.consumer.resume(*live)

    async def send(
        self, topic: str, key: bytes | None, value: bytes | None, partition: int | None = None
    ) -> Any:
        """Hand one record to the producer; returns its delivery future."""
        return await self.producer.send(topic, value=value, key=key, partition=partition)

    # ------------------------------------------------------------ fencing and commits
    async def fence(self, task: Task) -> None:
        await self.fence_lanes([task])

    async def fence_lanes(self, tasks: Sequence[Task]) -> None:
        """Prove this worker is still a member owning ``tasks``' partitions, or raise `Fenced`.

        The proof is a commit the group coordinator accepted: it refuses one
        unless our member id and generation are current. A proof holds for
        ``lease`` seconds from when that commit was *sent* (the monotonic clock
        runs on while a process is frozen), far less than the session timeout
        after which the coordinator could give our partitions away. Within
        the lease no round trip is needed; past it, a commit of offsets already
        committed renews it, and a member that was frozen past its session
        timeout gets CommitFailedError here and sends nothing.
        """
        if any(t.revoked for t in tasks):
            raise Fenced(f"{list(tasks)}: revoked")
        if self.clock() - self._proof < self.config.lease:
            return
        self.stats["fences"] += 1
        offsets = {
            lane.tp: lane.committed
            for t in tasks
            for lane in t.lanes.values()
            if lane.committed >= 0
        }
        if not offsets:
            raise Fenced(f"{list(tasks)}: no committed position to prove ownership with")
        try:
            await self._commit(offsets)
        except (CommitFailedError, IllegalStateError) as exc:
            self.stats["fenced"] += 1
            raise Fenced(
                f"{list(tasks)}: this worker no longer owns the partitions ({exc})"
            ) from exc

    async def _commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        if offsets:
            sent = self.clock()
            await self.consumer.commit(
                {tp: kafka.OffsetAndMetadata(off, "") for tp, off in offsets.items()}
            )
            self._proof = max(self._proof, sent)
            self.stats["commits"] += 1

    async def _commit_loop(self) -> None:
        while not self.should_stop:
            await asyncio.sleep(self.config.commit_interval)
            try:
                await self.cycle()
                ready = [t for t in self.tasks.values() if t.ready.is_set() and not t.closing]
                if ready and self.clock() - self._proof > self.config.lease / 2:
                    # Idle: renew the proof so the next execution needs no round trip.
                    await self.fence_lanes(ready)
            except Fenced as exc:
                log.info("commit skipped: %s", exc)
            except (CommitFailedError, IllegalStateError) as exc:
                log.info("commit skipped, the group is rebalancing: %r", exc)
            except OutputsLost as exc:
                self._task_failed(exc)  # memory is ahead of Kafka: restart from the changelogs
                return
            except KafkaError as exc:
                log.warning("commit point failed, retrying at the next: %r", exc)

    async def cycle(self, tasks: Iterable[Task] | None = None, wait: float | None = None) -> None:
        """One commit point: snapshot tasks, wait for their outputs, publish state, commit.

        A task whose previous snapshot is not durable yet (say InfluxDB is down)
        keeps it in flight and takes no new one; the others go on committing.
        """
        async with self._cycle_lock:
            chosen = list(self.tasks.values()) if tasks is None else list(tasks)
            for task in chosen:
                if task.inflight is None and task.ready.is_set() and (task.changed or task.pending):
                    async with task.lock:
                        snap = task.snapshot()
                    if snap is not None:
                        snap.durable = asyncio.ensure_future(self._durable(snap))
                        snap.durable.add_done_callback(_retrieved)
                        task.inflight = snap
            inflight = [t.inflight for t in chosen if t.inflight is not None]
            if not inflight:
                return
            timeout = self.config.commit_interval if wait is None else wait
            await asyncio.wait([s.durable for s in inflight], timeout=timeout)
            done = [s for s in inflight if s.durable.done()]
            for snap in done:
                snap.task.inflight = None
                exc = snap.durable.exception()
                if exc is not None:
                    raise OutputsLost(f"{snap.task}: outputs not delivered: {exc!r}") from exc
            await self._publish(done)
            self.stats["cycles"] += 1

    async def _durable(self, snap: Snapshot) -> None:
        if snap.outputs:
            await asyncio.gather(*snap.outputs)
        if snap.persisted is not None:
            await self.persister.written(snap.persisted)

    async def _publish(self, snaps: Sequence[Snapshot]) -> None:
        changes = [c for s in snaps for c in s.changes]
        if changes:
            await self.fence_lanes([s.task for s in snaps if s.changes])
            futures = [
                await self.send(topic, key.encode("utf-8"), value, partition)
                for topic, partition, key, value in changes
            ]
            await asyncio.gather(*futures)
        offsets = {tp: off for s in snaps for tp, off in s.offsets.items()}
        await self._commit(offsets)
        for snap in snaps:
            for tp, off in snap.offsets.items():
                snap.task.lanes[tp.topic].committed = off

    # ------------------------------------------------------------ rebalance
    async def on_revoked(self, revoked: set[TopicPartition]) -> None:
        """Stop every task, wait for the batches in hand and their outputs, commit, drop them.

        Only then may the partitions go to another member: this worker emits
        nothing more for them. A task whose outputs cannot be delivered in
        ``revoke_timeout`` would leave records in the producer that could go
        out later, so the worker crashes instead.
        """
        self.stats["rebalances"] += 1
        self.ready.clear()
        self._proof = -1e9  # the next generation must be proven afresh
        if self.recovering is not None and not self.recovering.done():
            self.recovering.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.recovering
        tasks = list(self.tasks.values())
        timeout = self.config.revoke_timeout
        stopped = await asyncio.gather(*(t.stop(timeout) for t in tasks))
        if not all(stopped):
            slow = [t for t, ok in zip(tasks, stopped, strict=True) if not ok]
            await self._die(f"revoke: the batch in hand of {slow} did not finish in {timeout}s")
        ready = [t for t in tasks if t.ready.is_set()]
        try:
            # Twice: a snapshot already in flight first, then what came after it.
            for _ in range(2):
                await self.cycle(ready, wait=timeout)
        except (Fenced, CommitFailedError, IllegalStateError) as exc:
            log.info("revoke: final commit skipped: %r", exc)
        stuck = [t for t in ready if t.inflight is not None]
        if stuck:
            # Outputs not delivered (or InfluxDB lines not written) in time.
            kafka_pending = [
                t
                for t in stuck
                if not all(_done(o) for o in t.inflight.outputs)  # type: ignore[union-attr]
            ]
            for t in stuck:
                t.cancel_chained()
            if kafka_pending:
                await self._die(f"revoke: outputs of {kafka_pending} not delivered in {timeout}s")
            log.warning(
                "revoke: %s not durable in %ss (InfluxDB?); their offsets stay uncommitted",
                stuck,
                timeout,
            )
        for t in tasks:
            t.revoked = True
            t.cancel_chained()
        self.tasks.clear()
        self.assigned = set()

    async def on_assigned(self, assigned: set[TopicPartition]) -> None:
        """Create a task per assigned partition of each group; restore them in the background."""
        self.assigned = set(assigned)
        new: list[Task] = []
        for group, partition in sorted(
            {(self.group_of[tp.topic].name, tp.partition) for tp in assigned}
        ):
            g = self.groups[group]
            stores = {t.name: PartitionStore(t, partition) for t in g.tables}
            task = Task(self, g, partition, stores)
            self.tasks[task.key] = task
            task.start(self._task_failed)
            new.append(task)
        log.info(
            "assigned %d partitions (epoch %d): %s",
            len(assigned),
            self.routing.epoch,
            ", ".join(f"{g}[{p}]" for g, p in sorted(self.tasks)),
        )
        self.recovering = asyncio.ensure_future(self._recover(new))
        self.recovering.add_done_callback(self._recovery_done)

    async def _recover(self, tasks: Sequence[Task]) -> None:
        """Restore the new tasks, retrying while Kafka is briefly unavailable."""
        delay = 0.1
        while True:
            try:
                await self._restore(tasks)
                return
            except (CommitFailedError, IllegalStateError):
                raise  # the assignment is gone; the next one starts afresh
            except KafkaError as exc:
                log.warning("recovery failed (%r); retrying in %.1fs", exc, delay)
                for task in tasks:
                    task.reset()
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _restore(self, tasks: Sequence[Task]) -> None:
        started = time.monotonic()
        # What is committed now (the fence re-commits it to prove ownership). Not
        # the position: the fetch loop may already have fetched past it.
        lanes = [lane for t in tasks for lane in t.lanes.values()]
        committed = await asyncio.gather(*(self.consumer.committed(lane.tp) for lane in lanes))
        never = [lane.tp for lane, off in zip(lanes, committed, strict=True) if off is None]
        starts = await self.reader.beginning_offsets(never) if never else {}
        for lane, off in zip(lanes, committed, strict=True):
            lane.committed = starts[lane.tp] if off is None else off
        wanted: dict[TopicPartition, tuple[Task, str]] = {}
        for t in tasks:
            for table in t.group.tables:
                wanted[TopicPartition(self.changelog_topic(table), t.partition)] = (t, table.name)
            for topic in t.group.replay:
                wanted[TopicPartition(topic, t.partition)] = (t, topic)
        dead = [TopicPartition(self.config.deadletters, p) for p in self._deadletter_partitions]
        records = await read_partitions(self.reader, [*wanted, *dead])
        replayed: dict[Task, dict[str, list[Any]]] = {t: {} for t in tasks}
        for tp, (task, name) in wanted.items():
            got = records.get(tp, [])
            if name in task.stores:
                store = task.stores[name]
                for r in got:
                    store.restore(r.key, r.value)
            else:
                replayed[task][name] = got
        marks = _deadletter_marks(r for tp in dead for r in records.get(tp, []))
        for task in tasks:
            for topic in task.group.inputs:
                mark = marks.get((topic, task.partition))
                if mark is not None:
                    task.deadletter_marks[topic] = mark
            await task.processor.recover(replayed[task])
        for task in tasks:
            task.ready.set()
        self.ready.set()
        log.info(
            "recovered %d tasks in %.3fs (%d records read back)",
            len(tasks),
            time.monotonic() - started,
            sum(len(v) for v in records.values()),
        )

    def _recovery_done(self, fut: asyncio.Future[None]) -> None:
        if fut.cancelled() or fut.exception() is None:
            return
        exc = fut.exception()
        if isinstance(exc, CommitFailedError | IllegalStateError):
            log.info("recovery stopped, the group is rebalancing: %r", exc)
            return
        self._task_failed(exc)  # type: ignore[arg-type]

    def on_task_error(self, exc: BaseException) -> None:
        """A task, its recovery or its chained work failed: stop the worker (or tell the test)."""
        self._task_failed(exc)

    def _task_failed(self, exc: BaseException) -> None:
        if isinstance(exc, Fenced):
            log.warning("engine: %s; stopping (another worker owns the partition now)", exc)
        else:
            log.error("engine: a task failed: %r", exc, exc_info=exc)
        if self.on_error is not None:
            self.on_error(exc)
        else:
            asyncio.ensure_future(self.crash(exc))

    async def _die(self, why: str) -> None:
        log.critical("%s; exiting so that nothing more is sent for lost partitions", why)
        if self.config.exit_on_fatal:
            logging.shutdown()
            os._exit(70)
        raise EngineError(why)

    # ------------------------------------------------------------ introspection
    def describe(self) -> dict[str, Any]:
        """Per input partition: fetched, processed, committed offsets and counters (for /debug)."""
        out: dict[str, Any] = {}
        for task in self.tasks.values():
            for lane in task.lanes.values():
                out[f"{lane.tp.topic}:{lane.tp.partition}"] = {
                    "task": f"{task.group.name}[{task.partition}]",
                    "ready": task.ready.is_set(),
                    "processed": lane.processed,
                    "committed": lane.committed,
                    "fetched_records": lane.fetched,
                    "processed_records": lane.done,
                    "discarded_records": lane.discarded,
                    "queued_records": task.queued,
                    "paused": task.paused,
                }
        return out


def _retrieved(fut: asyncio.Future[Any]) -> None:
    """Mark a background future's exception as seen (the caller that needed it re-raises it)."""
    if not fut.cancelled():
        fut.exception()


def _done(output: Any) -> bool:
    return bool(getattr(output, "done", lambda: True)())


def _deadletter_marks(records: Iterable[Any]) -> dict[tuple[str, int], int]:
    """(source topic, source partition) -> highest source offset on the dead-letter topic."""
    marks: dict[tuple[str, int], int] = {}
    for r in records:
        try:
            letter = loads(r.value)
        except (ValueError, TypeError):
            continue
        if not isinstance(letter, dict):
            continue
        topic, partition, offset = (
            letter.get("source_topic"),
            letter.get("source_partition"),
            letter.get("source_offset"),
        )
        if type(topic) is str and type(partition) is int and type(offset) is int:
            key = (topic, partition)
            if offset > marks.get(key, -1):
                marks[key] = offset
    return marks
