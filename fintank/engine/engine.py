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
import gc
import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import mode

from fintank.codec import loads
from fintank.counters import EngineCounters
from fintank.engine import checkpoint, kafka
from fintank.engine.assignor import CopartitionedAssignor, Routing
from fintank.engine.kafka import CommitFailedError, IllegalStateError, KafkaError, TopicPartition
from fintank.engine.restore import read_partitions
from fintank.engine.spec import Group, Table
from fintank.engine.store import PartitionStore
from fintank.engine.task import Batch, Snapshot, Task
from fintank.errors import FintankError

log = logging.getLogger(__name__)


def _boot_clock() -> float:
    """Seconds on a clock that runs on while the process is stopped or the machine sleeps."""
    return time.clock_gettime(time.CLOCK_BOOTTIME)


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

    async def wait_for_room(self) -> None: ...

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
    #: The dead-letter topic (its records say which input record they judge), if any.
    deadletters: str | None = None
    commit_interval: float = 0.5
    #: Records queued for one task before its partitions are paused.
    max_queued: int = 100_000
    #: Records one getmany returns at most (aiokafka decodes them all before returning
    #: them), which is also the largest batch a processor is handed.
    max_batch: int = 5_000
    #: For ``warm_up`` seconds after an assignment, batches are this small: the first
    #: InfluxDB write and the next fetch run between them instead of after a whole
    #: backlog (assignment to first write 0.6 s -> 0.2 s); then larger batches cost
    #: less per record (docs/performance.md).
    first_batch: int = 500
    warm_up: float = 0.5
    #: How long a revoke waits for a task's batch in hand and for its outputs.
    revoke_timeout: float = 5.0
    #: How long a whole revoke may take: under the rebalance timeout (30 s), after
    #: which the coordinator would drop us while we may still be sending.
    revoke_deadline: float = 20.0
    #: How long a successful commit proves membership for `Engine.fence` (seconds from
    #: when the commit was sent). Well under the session timeout: see docs/engine.md.
    lease: float = 3.0
    #: Seconds between two attempts of a fence the group coordinator did not answer.
    fence_retry: float = 0.5
    #: Tune the garbage collector for a long-running worker (startup objects frozen,
    #: young collections every 50,000 allocations): 15% less CPU per tick, measured.
    tune_gc: bool = True
    #: Replication factor of the changelog topics the engine creates, and their
    #: min.insync.replicas (``FINTANK_REPLICATION_FACTOR``, ``FINTANK_MIN_INSYNC_REPLICAS``).
    replication: int = 1
    min_insync: int = 1
    #: On a fatal error in a revoke, exit the process at once (records still in the
    #: producer die with it). Tests of the engine itself turn this off.
    exit_on_fatal: bool = True


class _Listener(kafka.ConsumerRebalanceListener):  # type: ignore[misc]
    """aiokafka's rebalance callbacks. aiokafka only logs what they raise and goes on
    with the rebalance, so anything unexpected stops the worker here instead."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    async def on_partitions_revoked(self, revoked: Any) -> None:
        await self.engine.on_revoked(set(revoked))

    async def on_partitions_assigned(self, assigned: Any) -> None:
        try:
            await self.engine.on_assigned(set(assigned))
        except EngineError:
            raise
        except Exception as exc:  # noqa: BLE001
            log.exception("assignment failed")
            await self.engine._die(f"assignment failed: {exc!r}")


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
        clock: Callable[[], float] = _boot_clock,
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
        self.counters = EngineCounters()  # for GET /metrics (fintank.metrics reads them)
        for topic in self.group_of:
            # Series that exist (at 0) from the first scrape: a query's increase() then
            # counts the first batch too, not only what came after the series appeared.
            self.counters.records_in[topic] += 0
            self.counters.deadletters[topic] += 0
        for g in groups:
            self.counters.batch_histogram(g.name)  # at 0 too, before its first batch
            for table in g.tables:
                self.counters.records_out[self.changelog_topic(table)] += 0
        self.ready = asyncio.Event()  # assigned and recovered at least once
        self.consumer: Any = None
        self.producer: Any = None
        self.reader: Any = None
        self.admin: Any = None  # committed offsets with their metadata (recovery)
        self._fetching: asyncio.Future[None] | None = None
        self._deadletter_partitions: list[int] = []
        self._partitions: dict[str, int] = {}  # group -> partition count of its inputs
        self._proof = -1e9  # monotonic time a commit that then succeeded was sent
        self._warm_until = -1e9  # batches stay small until then (see EngineConfig.warm_up)
        self._cycle_lock = asyncio.Lock()
        self._commit_lock = asyncio.Lock()
        self._stopping = False
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
        if self.config.tune_gc:
            gc.collect()
            gc.freeze()
            gc.set_threshold(50_000, 50, 100)
        await self.connect()
        self.add_future(self.persister.run())
        self._fetching = self.add_future(self._fetch_loop())
        self.add_future(self._commit_loop())

    async def on_stop(self) -> None:
        self._stopping = True  # an assignment arriving now creates no task
        if self._fetching is not None:
            await asyncio.wait([self._fetching], timeout=5.0)
        if self.consumer is not None:
            # Drain and commit as a revoke would, then leave the group.
            with contextlib.suppress(Exception):
                await self.on_revoked(set(self.assigned))
            with contextlib.suppress(Exception):
                async with asyncio.timeout(10.0):
                    await self.consumer.stop()
        with contextlib.suppress(Exception):
            # InfluxDB down: give up after a while; those lines' offsets were not committed.
            async with asyncio.timeout(10.0):
                await self.persister.close()
        for client in (self.producer, self.reader):
            if client is not None:
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(10.0):
                        await client.stop()
        if self.admin is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(10.0):
                    await self.admin.close()

    async def connect(self) -> None:
        """Check and create topics, start the clients, join the group (no loops yet)."""
        self.assignor.url = self.url
        await self.prepare_topics()
        self.producer = self.clients.producer()
        self.reader = self.clients.reader()
        self.admin = self.clients.admin()
        self.consumer = self.clients.group_consumer(self.assignor)
        await self.producer.start()
        await self.reader.start()
        await self.admin.start()
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
        tps = [
            TopicPartition(self.config.deadletters, p)
            for p in self._deadletter_partitions
            if self.config.deadletters
        ]
        for g in self.groups.values():
            n = self._partitions.get(g.name, 0)
            topics = [*g.inputs, *g.replay, *(self.changelog_topic(t) for t in g.tables)]
            tps += [TopicPartition(topic, p) for topic in topics for p in range(n)]
        if tps:
            await self.reader.beginning_offsets(tps)
            await self.reader.end_offsets(tps)
        # The producer's first send to a topic waits for its metadata too.
        changelogs = [self.changelog_topic(t) for g in self.groups.values() for t in g.tables]
        for topic in sorted({*self.outputs.values(), *changelogs}):
            await self.producer.partitions_for(topic)
        log.info("metadata of %d partitions fetched in %.3fs", len(tps), time.monotonic() - started)

    async def prepare_topics(self) -> None:
        """Check the groups' inputs exist and are co-partitioned; create missing changelogs."""
        admin = self.clients.admin()
        await admin.start()
        try:
            names = set(await admin.list_topics())
            inputs = sorted({t for g in self.groups.values() for t in g.inputs})
            replays = sorted({t for g in self.groups.values() for t in g.replay})
            dead = [self.config.deadletters] if self.config.deadletters else []
            needed = [*inputs, *replays, *dead]
            missing = sorted({t for t in needed if t not in names})
            if missing:
                raise EngineError(
                    f"topics {missing} do not exist; create them first (fintank topics create)"
                )
            described = await admin.describe_topics(sorted(set(needed)))
            counts = {d["topic"]: len(d["partitions"]) for d in described}
            if self.config.deadletters:
                self._deadletter_partitions = list(range(counts[self.config.deadletters]))
            wanted: dict[str, int] = {}
            for g in self.groups.values():
                have = {t: counts[t] for t in g.inputs}
                if len(set(have.values())) != 1:
                    raise EngineError(
                        f"group {g.name!r}: its inputs must have one partition count "
                        f"(they meet by partition), got {have}"
                    )
                self._partitions[g.name] = counts[g.inputs[0]]
                for topic in g.replay:
                    if counts[topic] != counts[g.inputs[0]]:
                        raise EngineError(
                            f"group {g.name!r}: {topic} has {counts[topic]} partitions, its "
                            f"inputs {counts[g.inputs[0]]}; partition p of it must hold what "
                            "partition p of the inputs emitted"
                        )
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
                        "min.insync.replicas": str(self.config.min_insync),
                    },
                )
                for name, n in wanted.items()
                if name not in names
            ]
            if new:
                with contextlib.suppress(kafka.TopicAlreadyExistsError):
                    refused = kafka.create_errors(await admin.create_topics(new))
                    if refused:
                        raise EngineError(
                            f"kafka refused to create changelogs with {self.config.replication} "
                            f"replicas, min.insync.replicas {self.config.min_insync}: "
                            + "; ".join(f"{t}: {why}" for t, why in sorted(refused.items()))
                        )
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
                # At most a batch of records: aiokafka decodes what it returns before
                # returning it, and a 4 MiB x partitions backlog would hold the first
                # batch back for a quarter of a second.
                fetched = await self.consumer.getmany(timeout_ms=200, max_records=self._batch())
            except KafkaError as exc:
                log.warning("fetch: %r; retrying", exc)
                await asyncio.sleep(0.2)
                continue
            self.dispatch(fetched)
            await asyncio.sleep(0)  # getmany does not suspend while records are buffered

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
            step = self._batch()
            for i in range(0, len(records), step):
                task.offer(Batch(tp.topic, tp.partition, records[i : i + step]))
            if task.queued > self.config.max_queued and not task.paused:
                task.paused = True
                self.consumer.pause(*(lane.tp for lane in task.lanes.values()))

    def _batch(self) -> int:
        """How many records a batch holds at most now (small just after an assignment)."""
        if self.clock() < self._warm_until:
            return self.config.first_batch
        return self.config.max_batch

    async def caught_up(self, task: Task) -> bool:
        """Whether ``task`` has processed everything its inputs held at the last fetch.

        Nothing queued, and each input fetched up to its high-water mark (the
        position, not the last record's offset: it steps over the markers a
        transactional writer leaves).
        """
        if task.queue or task.closing:
            return False
        for lane in task.lanes.values():
            if lane.tp not in self.assigned:
                return False
            # What a previous owner may have processed comes first (its records are
            # redelivered to us): a bolt's clock may assume none is left (the ledger).
            if max(lane.processed, lane.committed) < task.inputs_at_restore.get(lane.tp, 0):
                return False
            end = self.consumer.highwater(lane.tp)
            if end is not None and await self.consumer.position(lane.tp) < end:
                return False
        if task.recheck_end:
            # Resumed after a pause: the high-water marks above are from before it (a
            # paused partition is not fetched), so ask the brokers for the ends once.
            lanes = [lane.tp for lane in task.lanes.values()]
            ends = await self.reader.end_offsets(lanes)
            for tp in lanes:
                if await self.consumer.position(tp) < ends[tp]:
                    return False
            task.recheck_end = False
        return True

    def maybe_resume(self, task: Task) -> None:
        if task.paused and task.queued <= self.config.max_queued // 2 and not task.closing:
            task.paused = False
            task.recheck_end = True  # its high-water marks went stale while paused
            live = [lane.tp for lane in task.lanes.values() if lane.tp in self.assigned]
            if live:
                self.consumer.resume(*live)

    async def send(
        self, topic: str, key: bytes | None, value: bytes | None, partition: int | None = None
    ) -> Any:
        """Hand one record to the producer; returns its delivery future."""
        self.counters.records_out[topic] += 1
        return await self.producer.send(topic, value=value, key=key, partition=partition)

    # ------------------------------------------------------------ fencing and commits
    async def fence(self, task: Task) -> None:
        await self.fence_lanes([task])

    async def fence_lanes(self, tasks: Sequence[Task]) -> None:
        """Prove this worker is still a member owning ``tasks``' partitions, or raise `Fenced`.

        The proof is a commit the group coordinator accepted: it refuses one
        unless our member id and generation are current. A proof holds for
        ``lease`` seconds from when that commit was *sent* (on a clock that
        runs on while the process is frozen or the machine sleeps), far less
        than the session timeout after which the coordinator could give our
        partitions away. Within the lease no round trip is needed; past it, a
        commit of offsets already committed renews it, and a member that was
        frozen past its session timeout gets CommitFailedError here and sends
        nothing.
        """
        if any(t.revoked for t in tasks):
            raise Fenced(f"{list(tasks)}: revoked")
        if self.clock() - self._proof < self.config.lease:
            return
        self.stats["fences"] += 1

        def committed() -> dict[TopicPartition, tuple[int, str]]:
            return {
                lane.tp: (lane.committed, t.committed_meta)
                for t in tasks
                for lane in t.lanes.values()
                if lane.committed >= 0
            }

        waiting_since = None
        while True:
            try:
                if not await self._commit(committed):
                    raise Fenced(f"{list(tasks)}: no committed position to prove ownership with")
                if waiting_since is not None:
                    waited = self.clock() - waiting_since
                    log.info("fence: the group coordinator answered after %.1fs", waited)
                return
            except (CommitFailedError, IllegalStateError) as exc:
                self.stats["fenced"] += 1
                raise Fenced(
                    f"{list(tasks)}: this worker no longer owns the partitions ({exc})"
                ) from exc
            except (KafkaError, TimeoutError) as exc:
                # No answer either way: the group coordinator is unreachable or moving
                # (its broker died; Kafka moves it after the broker session timeout, about
                # 10 s). Without a proof nothing may be sent, and failing the task would
                # stop the worker for a broker's failover: ask again until the coordinator
                # answers, or refuses, or a revoke closes the tasks (tests/integration/
                # test_broker_fault.py).
                if any(t.closing or t.revoked for t in tasks):
                    raise Fenced(f"{list(tasks)}: closed while unproven ({exc!r})") from exc
                if waiting_since is None:
                    waiting_since = self.clock()
                    log.warning(
                        "fence: the group coordinator did not answer (%r); asking again every "
                        "%ss, sending nothing meanwhile",
                        exc,
                        self.config.fence_retry,
                    )
                await asyncio.sleep(self.config.fence_retry)

    async def _commit(self, build: Callable[[], Mapping[TopicPartition, tuple[int, str]]]) -> bool:
        """Commit the offsets (with their metadata) ``build`` returns, built under the commit lock.

        One lock for every commit, so a fence (re-committing what is committed)
        can never land after a newer commit and move an offset back. Returns
        False if there was nothing to commit.
        """
        async with self._commit_lock:
            offsets = dict(build())
            if not offsets:
                return False
            sent = self.clock()
            async with asyncio.timeout(self.config.revoke_timeout):
                await self.consumer.commit(
                    {tp: kafka.OffsetAndMetadata(off, meta) for tp, (off, meta) in offsets.items()}
                )
            self._proof = max(self._proof, sent)
            self.stats["commits"] += 1
            for task in list(self.tasks.values()):
                for lane in task.lanes.values():
                    if lane.tp in offsets:
                        lane.committed = max(lane.committed, offsets[lane.tp][0])
            return True

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
            except (KafkaError, TimeoutError) as exc:
                log.warning("commit point failed, retrying at the next: %r", exc)

    async def cycle(self, tasks: Iterable[Task] | None = None, wait: float | None = None) -> None:
        """One commit point: snapshot tasks, wait for their outputs, publish state, commit.

        A snapshot stays in flight until its state is published and its offsets
        committed, and its task takes no new one meanwhile: a task whose outputs
        or lines are not durable yet (say InfluxDB is down) waits, the others go
        on, and a failed publish or commit is retried at the next commit point.
        A task that failed (its processor raised, or its outputs were lost) is
        never snapshotted again: nothing of it is published or committed.
        """
        async with self._cycle_lock:
            chosen = [
                t for t in (list(self.tasks.values()) if tasks is None else tasks) if not t.failed
            ]
            for task in chosen:
                if task.inflight is None and task.ready.is_set() and (task.changed or task.pending):
                    async with task.lock:
                        snap = None if task.failed else task.snapshot()
                    if snap is not None:
                        snap.durable = asyncio.ensure_future(self._durable(snap))
                        snap.durable.add_done_callback(_retrieved)
                        task.inflight = snap
            inflight = [t.inflight for t in chosen if t.inflight is not None]
            waiting = [s.durable for s in inflight if not s.durable.done()]
            if waiting:
                timeout = self.config.commit_interval if wait is None else wait
                await asyncio.wait(waiting, timeout=timeout)
            done = []
            for snap in inflight:
                if not snap.durable.done():
                    continue
                exc = None if snap.durable.cancelled() else snap.durable.exception()
                if snap.durable.cancelled() or isinstance(exc, Fenced):
                    snap.task.failed = True  # its partitions moved on: it commits nothing more
                elif exc is not None:
                    snap.task.failed = True
                    raise OutputsLost(f"{snap.task}: outputs not delivered: {exc!r}") from exc
                else:
                    done.append(snap)
            if done:
                await self._publish(done)
                for snap in done:
                    snap.task.inflight = None
                self.stats["cycles"] += 1

    async def _durable(self, snap: Snapshot) -> None:
        if snap.outputs:
            delivered = await asyncio.gather(*snap.outputs)
            tracked = snap.task.tracked
            topics = {tp.topic for tp in tracked}
            bounds = snap.bounds
            for meta in delivered:  # RecordMetadata of a send; None of chained work
                if getattr(meta, "topic", None) in topics:
                    tp = TopicPartition(meta.topic, meta.partition)
                    if tp in tracked and meta.offset >= bounds.get(tp, 0):
                        bounds[tp] = meta.offset + 1
        # Chained work (a fill after its execution's delivery) persists lines
        # after the snapshot was taken: wait for the task's newest mark too.
        marks = [m for m in (snap.persisted, snap.task.last_persisted) if m is not None]
        if marks:
            await self.persister.written(max(marks))

    async def _publish(self, snaps: Sequence[Snapshot]) -> None:
        """Fence, append the snapshots' state, commit their offsets (idempotent: safe to retry)."""
        fresh = [s for s in snaps if not s.published]
        changes = [c for s in fresh for c in s.changes]
        if changes:
            await self.fence_lanes([s.task for s in fresh if s.changes])
            futures = [
                await self.send(topic, key.encode("utf-8"), value, partition)
                for topic, partition, key, value in changes
            ]
            await asyncio.gather(*futures)
        for snap in fresh:
            snap.published = True
        # Every lane of a task is committed with the same checkpoint (the lanes that did
        # not move at their committed offsets), so recovery finds one bound per task.
        metas = {s.task: checkpoint.encode(s.task.replay_bounds(s.offsets)) for s in snaps}

        def offsets() -> dict[TopicPartition, tuple[int, str]]:
            out: dict[TopicPartition, tuple[int, str]] = {}
            for s in snaps:
                for lane in s.task.lanes.values():
                    off = s.offsets.get(lane.tp, lane.committed)
                    if off >= 0:
                        out[lane.tp] = (off, metas[s.task])
            return out

        await self._commit(offsets)
        for s in snaps:
            s.task.committed_meta = metas[s.task]
            checkpoint.raised(s.task.checkpoint, s.bounds)

    # ------------------------------------------------------------ rebalance
    async def on_revoked(self, revoked: set[TopicPartition]) -> None:
        """Stop every task, wait for the batches in hand and their outputs, commit, drop them.

        Only then may the partitions go to another member: this worker sends
        nothing more for them. Every record already handed to the producer must
        be delivered first; if it cannot be within ``revoke_timeout`` (or the
        whole revoke overruns ``revoke_deadline``), it could still go out later,
        after the new owner started, so the worker exits instead.
        """
        self.stats["rebalances"] += 1
        self.ready.clear()
        self._proof = -1e9  # the next generation must be proven afresh
        tasks = list(self.tasks.values())
        try:
            async with asyncio.timeout(self.config.revoke_deadline):
                await self._drain(tasks)
        except EngineError:
            raise
        except TimeoutError:
            await self._die(f"revoke: did not finish in {self.config.revoke_deadline}s")
        except Exception as exc:  # noqa: BLE001 - anything else leaves us unsure what went out
            log.exception("revoke failed")
            await self._die(f"revoke failed: {exc!r}")
        finally:
            for t in tasks:
                t.revoked = True
                t.closing = True
                t.cancel_chained()
                t.cancel_runner()
            self.tasks.clear()
            self.assigned = set()

    async def _drain(self, tasks: Sequence[Task]) -> None:
        if self.recovering is not None and not self.recovering.done():
            self.recovering.cancel()
            await asyncio.wait([self.recovering])  # (our own cancellation still propagates)
        timeout = self.config.revoke_timeout
        stopped = await asyncio.gather(*(t.stop(timeout) for t in tasks))
        if not all(stopped):
            slow = [t for t, ok in zip(tasks, stopped, strict=True) if not ok]
            await self._die(f"revoke: the batch in hand of {slow} did not finish in {timeout}s")
        chained = [f for t in tasks for f in t.chained]
        if chained:  # fills waiting for their executions: let them go out first
            await asyncio.wait(chained, timeout=timeout)
        ready = [t for t in tasks if t.ready.is_set() and not t.failed]
        try:
            # Twice: a snapshot already in flight first, then what came after it.
            for _ in range(2):
                await self.cycle(ready, wait=timeout)
        except (Fenced, CommitFailedError, IllegalStateError, KafkaError, TimeoutError) as exc:
            log.info("revoke: final commit skipped: %r", exc)
        for t in tasks:
            t.cancel_chained()  # not done in time: the next owner repairs what they did not send
        stuck = [t for t in ready if t.inflight is not None]
        if stuck:
            log.warning(
                "revoke: %s not durable in %ss (InfluxDB?); their offsets stay uncommitted",
                stuck,
                timeout,
            )
        # Whatever any task handed to the producer (outputs after a stuck
        # snapshot, fills sent during recovery) must be on Kafka before we let go.
        try:
            async with asyncio.timeout(timeout):
                await self.producer.flush()
        except TimeoutError:
            await self._die(f"revoke: outputs still in the producer after {timeout}s")

    async def on_assigned(self, assigned: set[TopicPartition]) -> None:
        """Create a task per assigned partition of each group; restore them in the background.

        No await before the tasks exist: aiokafka fetches nothing for the new
        assignment before this returns (positions are not known yet), and every
        batch it fetches afterwards finds its task.
        """
        if self._stopping:
            return
        self.assigned = set(assigned)
        self._warm_until = self.clock() + self.config.warm_up
        new: list[Task] = []
        for group, partition in sorted(
            {(self.group_of[tp.topic].name, tp.partition) for tp in assigned}
        ):
            g = self.groups[group]
            stores = {t.name: PartitionStore(t, partition) for t in g.tables}
            task = Task(self, g, partition, stores)
            task.tracked = {TopicPartition(t, partition) for t in g.replay}
            task.tracked.update(self._deadletter_tps())
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
        committed = await self.admin.list_consumer_group_offsets(
            self.config.app_id, partitions=[lane.tp for lane in lanes]
        )

        def offset_of(tp: TopicPartition) -> int:
            got = committed.get(tp)
            return -1 if got is None else int(got.offset)

        never = [lane.tp for lane in lanes if offset_of(lane.tp) < 0]
        starts = await self.reader.beginning_offsets(never) if never else {}
        for lane in lanes:
            off = offset_of(lane.tp)
            lane.committed = starts[lane.tp] if off < 0 else off
        # Replay from each task's checkpoint (from where it last committed: every lane
        # carries the same; the lowest, to be safe), or from the beginning without one.
        replay_from: dict[TopicPartition, int] = {}
        for t in tasks:
            metas = [committed.get(lane.tp) for lane in t.lanes.values()]
            bounds = checkpoint.lowest(
                checkpoint.decode(None if m is None else m.metadata) for m in metas
            )
            for tp in t.tracked:
                replay_from[tp] = min(replay_from.get(tp, bounds.get(tp, 0)), bounds.get(tp, 0))
        wanted: dict[TopicPartition, tuple[Task, str]] = {}
        for t in tasks:
            for table in t.group.tables:
                wanted[TopicPartition(self.changelog_topic(table), t.partition)] = (t, table.name)
            for topic in t.group.replay:
                wanted[TopicPartition(topic, t.partition)] = (t, topic)
        dead = self._deadletter_tps()
        ends: dict[TopicPartition, int] = {}
        lane_tps = [lane.tp for lane in lanes]
        records = await read_partitions(
            self.reader, [*wanted, *dead], starts=replay_from, ends=ends, also_ends=lane_tps
        )
        for t in tasks:
            # Nothing this incarnation sends is below the ends read now; what a previous
            # owner sent for records we will process again may be (Task.replay_bounds).
            t.checkpoint = {tp: ends[tp] for tp in t.tracked if tp in ends}
            t.floor = {tp: max(replay_from.get(tp, 0), 0) for tp in t.tracked}
            t.inputs_at_restore = {lane.tp: ends[lane.tp] for lane in t.lanes.values()}
            first = committed.get(next(iter(t.lanes.values())).tp)
            t.committed_meta = "" if first is None or first.offset < 0 else first.metadata or ""
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
        took = time.monotonic() - started
        self.counters.recovered(took)
        log.info(
            "recovered %d tasks in %.3fs (%d records read back)",
            len(tasks),
            took,
            sum(len(v) for v in records.values()),
        )

    def _deadletter_tps(self) -> list[TopicPartition]:
        topic = self.config.deadletters
        return [TopicPartition(topic, p) for p in self._deadletter_partitions] if topic else []

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
            # The group moved on without us (a freeze, a long pause): stop every
            # task now; aiokafka rejoins the group (its commit and heartbeat saw
            # the unknown member) and the revoke and assign that follow start over.
            log.warning("engine: %s; stopping all tasks until the group takes us back", exc)
            self._stop_all(fenced=True)
            return
        log.error("engine: a task failed: %r", exc, exc_info=exc)
        if self.on_error is not None:
            self.on_error(exc)
        else:
            asyncio.ensure_future(self.crash(exc))

    def _stop_all(self, fenced: bool) -> None:
        """Close every task at once: nothing more is processed or sent for its partitions."""
        for task in self.tasks.values():
            task.closing = True
            task.revoked = task.revoked or fenced
            task.queue.clear()
            task.queued = 0
            task.cancel_chained()
            task.cancel_runner()
        if self.recovering is not None and not self.recovering.done():
            self.recovering.cancel()
        self.ready.clear()

    async def _die(self, why: str) -> None:
        log.critical("%s; exiting so that nothing more is sent for lost partitions", why)
        if self.config.exit_on_fatal:
            logging.shutdown()
            os._exit(70)
        raise EngineError(why)

    # ------------------------------------------------------------ introspection
    def lags(self) -> dict[TopicPartition, int]:
        """Per assigned input partition: records between the last one processed (or committed)
        and its high-water mark as of the last fetch. Partitions not fetched yet are left out."""
        out: dict[TopicPartition, int] = {}
        consumer = self.consumer
        if consumer is None:
            return out
        for task in list(self.tasks.values()):
            for lane in task.lanes.values():
                end = consumer.highwater(lane.tp)
                done = max(lane.processed, lane.committed)
                if end is not None and done >= 0:
                    out[lane.tp] = max(0, end - done)
        return out

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
