"""Workers running the real engine on the in-memory broker, driven step by step.

`Workers` owns the broker, the event loop and the workers' lifecycle (join,
rebalance, poll, commit points, leave, crash, freeze, drain); a subclass says
what the workers run. `Cluster` runs `Echo`, for the engine's own tests:
per input record it sends an ``out`` record, keeps a count per key and the
newest offset per input in a table, persists a line, dead-letters ``bad``
records, and for ``exec`` records sends one ``exec`` and then (once
delivered) one ``fill`` that must each exist exactly once, with a ledger
rebuilt from those topics at assignment, as `fintank.bolts.Market` does for
executions and fills. It also checks, as it goes, what only it can see (the
offsets it is handed, sends after a revoke); `Cluster.on_send` checks
every record handed to a producer. Violations are collected in
`Workers.violations`.
"""

from __future__ import annotations

import asyncio
import random
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from fintank.codec import loads
from fintank.engine import Engine, EngineConfig, Fenced, Group, Table
from fintank.engine.kafka import CommitFailedError, IllegalStateError, TopicPartition
from fintank.engine.task import Batch, Context
from fintank.records import DeadLetter
from tests.support.broker import FakeBroker, FakeClients, FakeGroupConsumer, FakePersister, Send

SESSION_TIMEOUT = 10.0


@dataclass
class Worker:
    """One worker process: its engine, clock, persister and what the harness knows of it."""

    name: str
    clients: FakeClients
    persister: FakePersister
    clock: list[float]
    engine: Engine = field(init=False)
    state: str = "member"  # member | zombie | dead
    revocations: int = 0  # revoke callbacks that returned
    revoking: bool = False
    #: The committed offsets of its partitions when they were last assigned to it.
    assigned_from: dict[TopicPartition, int] = field(default_factory=dict)
    errors: list[BaseException] = field(default_factory=list)
    background: list[asyncio.Task[Any]] = field(default_factory=list)  # its commit points

    @property
    def consumer(self) -> FakeGroupConsumer:
        consumer = self.clients.consumer
        assert consumer is not None, f"{self.name} has not connected"
        return consumer


class Watch:
    """A worker's rebalance listener, with what the harness tracks of its callbacks."""

    def __init__(self, listener: Any, worker: Worker, broker: FakeBroker) -> None:
        self.listener = listener
        self.worker = worker
        self.broker = broker

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        self.worker.revoking = True
        try:
            await self.listener.on_partitions_revoked(revoked)
        finally:
            self.worker.revoking = False
            self.worker.revocations += 1

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self.worker.assigned_from = {tp: self.broker.committed.get(tp, 0) for tp in assigned}
        await self.listener.on_partitions_assigned(assigned)


class NoneLands(random.Random):
    """For `FakeBroker.lose`: of a crashed worker's undelivered sends, none lands."""

    def randint(self, a: int, b: int) -> int:
        return a


class Workers(ABC):
    """Workers running the real `Engine` on one `FakeBroker`, driven step by step.

    Every method runs the event loop itself, so a test (or a state machine
    rule) reads as a sequence of plain calls. ``outputs``: the engine's output
    name -> topic, ``deadletters`` among them (one partition; every other
    topic has ``partitions``). ``steps``: how many loop steps `run_until` lets
    pass between deliveries. ``rng``: which of a crashed worker's sends land,
    unless the crash names a seed.
    """

    def __init__(
        self,
        app_id: str,
        inputs: Sequence[str],
        outputs: Mapping[str, str],
        partitions: int,
        *,
        max_queued: int,
        steps: int,
        rng: random.Random,
    ) -> None:
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)
        self.broker = FakeBroker()
        deadletters = outputs["deadletters"]
        self.broker.create(deadletters, 1)
        for topic in (*inputs, *outputs.values()):
            self.broker.create(topic, partitions)  # (the dead-letter topic keeps its one)
        self.config = EngineConfig(
            app_id=app_id,
            deadletters=deadletters,
            commit_interval=0.01,
            max_queued=max_queued,
            exit_on_fatal=False,
        )
        self.outputs = dict(outputs)
        self.steps = steps
        self.rng = rng
        self.workers: list[Worker] = []
        self.violations: list[str] = []

    @abstractmethod
    def new_worker(self) -> Worker:
        """A worker of this cluster's topology (`add_worker`); `rebalance` adds one when no
        member is left."""

    def add_worker(self, groups: Callable[[Worker], Sequence[Group]], **config: Any) -> Worker:
        """A worker joining the broker (not yet in the group: `rebalance` takes it in).

        ``groups``: what it runs, made for it; ``config``: `EngineConfig` fields to change.
        """
        name = f"w{len(self.workers)}"
        clients = FakeClients(self.broker, name)
        worker = Worker(name, clients, FakePersister(), [1000.0])
        clock = worker.clock
        worker.engine = engine = Engine(
            replace(self.config, **config),
            list(groups(worker)),
            self.outputs,
            worker.persister,
            clients,
            f"http://{name}",
            clock=lambda: clock[0],
        )
        engine.on_error = lambda exc: self.task_failed(worker, exc)
        self.run(engine.connect())
        worker.consumer.listener = Watch(worker.consumer.listener, worker, self.broker)
        self.workers.append(worker)
        return worker

    def violate(self, what: str) -> None:
        self.violations.append(what)

    def task_failed(self, worker: Worker, exc: BaseException) -> None:
        worker.errors.append(exc)
        if worker.state == "dead":
            return  # what a killed process was still doing: it never happened
        if isinstance(exc, Fenced) and worker.state != "member":
            if worker.state == "zombie":
                self.kill(worker)  # what the worker process does: it stops
            return
        self.violate(f"{worker.name}: task failed: {exc!r}")

    def kill(self, worker: Worker, seed: int | None = None) -> None:
        """SIGKILL: nothing of the worker runs again; per partition a prefix of its undelivered
        sends lands (drawn from ``seed``, or from ``rng`` if None)."""
        worker.state = "dead"
        for fut in worker.background:
            fut.cancel()
        for task in worker.engine.tasks.values():
            task.closing = True
            task.cancel_chained()
            if task._runner is not None:
                task._runner.cancel()
        if worker.engine.recovering is not None:
            worker.engine.recovering.cancel()
        producer = worker.clients.producer_
        if producer is not None:
            producer.alive = False  # (where the fake producer knows it) nothing more leaves it
            self.broker.lose(producer, self.rng if seed is None else random.Random(seed))

    def members(self) -> list[Worker]:
        return [w for w in self.workers if w.state == "member"]

    def live(self) -> list[Worker]:
        return [w for w in self.workers if w.state in ("member", "zombie")]

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def rebalance(self, members: Sequence[Worker] | None = None) -> None:
        """Move the group to ``members`` (default: the members, or a new worker if none is
        left), delivering and writing as it goes (a healthy cluster)."""
        if members is None:
            members = self.members() or [self.new_worker()]
        task = self.loop.create_task(self.broker.rebalance([w.consumer for w in members]))
        self.run_until(task)
        task.result()

    def run_until(self, task: asyncio.Task[Any]) -> None:
        """Run the loop until ``task`` is done; each ``steps`` steps it is not, every send is
        delivered and every line written.

        A healthy cluster: with few steps a send is delivered a step or two
        after it is made, so a revoke can finish while a task still has work
        queued (it must not touch it); with many, only once the task waits
        (what it does not wait for stays in flight).
        """
        for _ in range(2000):
            self.settle(self.steps)
            if task.done():
                return
            self.broker.deliver_all()
            for w in self.workers:
                self.run(w.persister.write_all())
        raise AssertionError(f"{task} did not finish")

    # ------------------------------------------------------------------ steps
    def settle(self, steps: int = 60) -> None:
        """Let the loop take ``steps`` steps."""

        async def steps_pass() -> None:
            for _ in range(steps):
                await asyncio.sleep(0)

        self.run(steps_pass())

    def poll(self, w: Worker, limit: int = 3, steps: int = 10) -> int:
        """One getmany of ``w``'s consumer, handed to its engine, then ``steps`` loop steps;
        returns the records fetched."""
        consumer = w.consumer
        consumer.fetch_limit = limit
        fetched = consumer.fetch()
        w.engine.dispatch(fetched)
        self.settle(steps)
        return sum(len(v) for v in fetched.values())

    def deliver(self, send: Send) -> None:
        """Kafka takes ``send`` (one of `FakeBroker.deliverable`)."""
        self.broker.deliver(send)
        self.settle(10)

    def write_lines(self, w: Worker) -> None:
        self.run(w.persister.write_all())
        self.settle(10)

    def advance(self, seconds: float) -> None:
        """Time passes on every worker's clock."""
        for w in self.workers:
            w.clock[0] += seconds

    def start_cycle(self, w: Worker, wait: float = 0) -> asyncio.Task[None]:
        """A commit point of ``w`` in the background.

        ``wait``: how long it waits for its snapshot's outputs and lines (0: it
        publishes only what is durable already; the rest stays in flight for
        the next commit point).
        """
        task = self.loop.create_task(self._cycle(w, wait))
        w.background.append(task)
        self.settle(10)
        return task

    async def _cycle(self, w: Worker, wait: float) -> None:
        try:
            await w.engine.cycle(wait=wait)
        except CommitFailedError:
            # The group moved to a new generation while the commit was on its way (another
            # member was expelled): Kafka refuses it and the engine retries at its next
            # commit point. Nothing was committed; the checks of what was are unaffected.
            pass
        except (Fenced, IllegalStateError) as exc:
            if w.state == "member":  # (a zombie's or a dead worker's is refused, as it must be)
                self.violate(f"{w.name}: a member was refused at a commit point: {exc!r}")

    def leave(self, w: Worker) -> None:
        """A clean stop: the worker revokes (drains and commits), then leaves the group."""
        consumer = w.consumer
        task = self.loop.create_task(consumer.listener.on_partitions_revoked(consumer.assignment()))
        self.run_until(task)
        task.result()
        w.state = "dead"
        consumer.assigned = None
        self.rebalance()

    def crash(self, w: Worker, seed: int | None = None) -> None:
        """SIGKILL (`kill`), then the group moves on."""
        self.kill(w, seed)
        self.rebalance()

    def freeze(self, w: Worker) -> None:
        """SIGSTOP longer than the session timeout: the group moves on; the worker wakes up later
        with its tasks, queues and assignment as they were (a zombie).

        The freeze lands between two steps of the worker: what it had handed to
        its producer was on the wire already (delivered). A freeze in the
        microseconds between a fence and the bytes of the send leaving the
        process is the one window no test here covers (docs/engine.md).
        """
        producer = w.clients.producer_
        if producer is not None:
            self.broker.deliver_all(producer)
        self.broker.expel(w.consumer)  # its session ran out while it was frozen
        w.clock[0] += SESSION_TIMEOUT + 1
        w.state = "zombie"
        self.rebalance()

    def drain(self) -> None:
        """Let everything run to the end: fetch, process, deliver, write, commit (or fail if it
        never comes to rest)."""
        for _ in range(300):
            progressed = False
            for w in self.live():
                fetched = w.consumer.fetch()
                if fetched:
                    progressed = True
                    w.engine.dispatch(fetched)
            self.settle()
            if self.broker.pending:
                progressed = True
                self.broker.deliver_all()
            for w in self.live():
                self.run(w.persister.write_all())
                if any(t.queue for t in w.engine.tasks.values()):
                    progressed = True
            for w in self.members():
                if not all(t.ready.is_set() for t in w.engine.tasks.values()):
                    progressed = True
            self.settle()
            if not progressed:
                break
        else:
            raise AssertionError("the cluster did not come to rest")
        for w in self.members():
            self.run_until(self.loop.create_task(self._cycle(w, wait=5.0)))

    def close(self) -> None:
        tasks = asyncio.all_tasks(self.loop)
        for task in tasks:
            task.cancel()
        self.run(asyncio.gather(*tasks, return_exceptions=True))
        self.loop.close()
        asyncio.set_event_loop(None)

    def check_no_violation(self) -> None:
        assert not self.violations, self.violations


# --- Echo: the engine's own tests ----------------------------------------------------

INPUTS = ("in-a", "in-b")
PARTITIONS = 3
SEEN = Table("seen", lambda v: v, int)
APP = "machine"
CHANGELOG = f"{APP}-seen-changelog"
KEYS = ["k0", "k1", "k2", "k3", "k4", "k5"]


def src_of(topic: str, partition: int, offset: int) -> str:
    return f"{topic}/{partition}/{offset}"


class Echo:
    """The processor under the engine (one per task)."""

    def __init__(
        self,
        ctx: Context,
        cluster: Cluster,
        worker: Worker,
        gate: asyncio.Event | None = None,
    ) -> None:
        self.ctx = ctx
        self.gate = gate
        self.cluster = cluster
        self.worker = worker
        self.epoch = worker.revocations
        self.seen = ctx.table(SEEN.name)
        self.execs: dict[str, str] = {}  # src -> key (fills go where their exec went)
        self.filled: set[str] = set()
        self.expect: dict[str, int] = {}  # topic -> next offset this processor must see

    def alive(self, what: str) -> None:
        if self.worker.revocations > self.epoch:
            self.cluster.violate(
                f"{self.worker.name} sent {what} for partition {self.ctx.partition} after its revoke"
            )

    async def recover(self, replayed: Mapping[str, Sequence[Any]]) -> None:
        self.execs = {(v := loads(r.value))["src"]: v["key"] for r in replayed.get("exec", ())}
        self.filled = {loads(r.value)["src"] for r in replayed.get("fill", ())}
        missing = sorted(set(self.execs) - self.filled)
        if missing:
            await self._fill(missing)

    async def on_clock(self, now: float) -> None:
        return None

    async def on_batch(self, batch: Batch) -> None:
        if self.gate is not None:
            await self.gate.wait()
        ctx = self.ctx
        p = ctx.partition
        tp = batch.tp
        first = self.expect.get(batch.topic, self.worker.assigned_from.get(tp, 0))
        if batch.first != first:
            self.cluster.violate(
                f"{self.worker.name} {tp}: batch at {batch.first}, expected {first}"
            )
        self.expect[batch.topic] = batch.end
        mark = self.seen.get(f"mark:{batch.topic}")
        mark = -1 if mark is None else mark
        dead: list[tuple[int, DeadLetter]] = []
        for r in batch.records:
            if r.offset <= mark:
                continue  # applied before a crash: the table says so
            await asyncio.sleep(0)  # a record takes a step: a batch can be caught half done
            src = src_of(batch.topic, p, r.offset)
            key = r.key.decode()
            n = (self.seen.get(f"n:{key}") or 0) + 1
            self.seen.stage(p, f"n:{key}", n)
            self.alive("out")
            await ctx.send("out", key, {"src": src, "n": n})
            if r.value == b"bad":
                dead.append((r.offset, DeadLetter(batch.topic, "bad", "bad", 0.0)))
            if r.value == b"exec" and src not in self.execs:
                await ctx.fence()
                self.alive("exec")
                fut = await ctx.send("exec", key, {"src": src, "key": key})
                self.execs[src] = key
                ctx.track(self._then_fill(fut, src))
            self.seen.stage(p, f"mark:{batch.topic}", r.offset)
            ctx.persist([src])
        if dead:
            self.alive("deadletters")
        await ctx.deadletter(batch.topic, dead)

    async def _then_fill(self, fut: asyncio.Future[Any], src: str) -> None:
        await fut
        await self._fill([src])

    async def _fill(self, srcs: Sequence[str]) -> None:
        await self.ctx.fence()
        for src in srcs:
            self.alive("fill")
            self.filled.add(src)
            await self.ctx.send("fill", self.execs[src], {"src": src})
            self.ctx.persist([f"fill:{src}"])  # as Market writes a fill's line after it


class Cluster(Workers):
    """Workers running `Echo`, with the engine's invariants (docs/engine.md numbers them)."""

    def __init__(self, seed: int = 0) -> None:
        outputs = {"out": "out", "exec": "exec", "fill": "fill", "deadletters": "deadletters"}
        super().__init__(
            APP, INPUTS, outputs, PARTITIONS, max_queued=4, steps=2, rng=random.Random(seed)
        )
        self.broker.send_hooks.append(self.on_send)
        self.produced: dict[str, bytes] = {}  # src -> value
        self.high_water: dict[TopicPartition, int] = {}  # highest committed offset seen

    def new_worker(self, gate: asyncio.Event | None = None, **config: Any) -> Worker:
        """A worker running `Echo`; ``gate``: each `Echo.on_batch` waits for it, so a test can
        hold a batch in hand; ``config``: `EngineConfig` fields to change."""

        def groups(worker: Worker) -> list[Group]:
            def echo(ctx: Context) -> Echo:
                return Echo(ctx, self, worker, gate)

            return [Group("g", INPUTS, echo, tables=(SEEN,), replay=("exec", "fill"))]

        return self.add_worker(groups, **config)

    def produce(self, topic: str, key: str, value: bytes) -> str:
        """An input record from outside; returns its src id."""
        rec = self.broker.produce(topic, key, value)
        src = src_of(topic, rec.partition, rec.offset)
        self.produced[src] = value
        return src

    def on_send(self, send: Send) -> None:
        """Invariants 3 and 4 at the moment a record is handed to a producer."""
        worker = next(w for w in self.workers if w.clients.producer_ is send.producer)
        topic = send.tp.topic
        fenced_topic = topic in ("exec", "fill", "deadletters", CHANGELOG)
        if fenced_topic and worker.state != "member":
            self.violate(f"{worker.name} ({worker.state}) sent to {topic}")
        if topic == CHANGELOG:
            consumer = worker.consumer
            owns = any(tp.partition == send.tp.partition for tp in consumer.assignment())
            if not (owns and (self.broker.is_current(consumer) or worker.revoking)):
                self.violate(f"{worker.name} wrote {send.tp} without owning it")
            key = send.key.decode() if send.key else ""
            if key.startswith("mark:") and send.value is not None:
                topic_in = key[len("mark:") :]
                mark = loads(send.value)
                delivered = self.delivered_srcs("out")
                for o in range(mark + 1):
                    src = src_of(topic_in, send.tp.partition, o)
                    if src not in delivered:
                        self.violate(
                            f"changelog mark {mark} for {topic_in}/{send.tp.partition} before out {src}"
                        )
                        break

    def delivered_srcs(self, topic: str) -> set[str]:
        return {loads(r.value)["src"] for r in self.broker.records(topic)}

    def deadlettered(self) -> list[str]:
        return [
            src_of(d["source_topic"], d["source_partition"], d["source_offset"])
            for d in (loads(r.value) for r in self.broker.records("deadletters"))
        ]

    # ------------------------------------------------------------------ checks
    def check_everything_processed(self) -> None:
        """Invariant 1, after `drain`: every record of every owned partition reached its processor."""
        for w in self.members():
            for task in w.engine.tasks.values():
                assert task.ready.is_set(), f"{w.name} {task} never recovered"
                echo = task.processor
                assert isinstance(echo, Echo)
                for topic in INPUTS:
                    tp = TopicPartition(topic, task.partition)
                    end = self.broker.end(tp)
                    seen = echo.expect.get(topic, w.assigned_from.get(tp, 0))
                    assert seen == end, f"{w.name} {tp}: processed up to {seen} of {end}"

    def check_committed_never_moves_back(self) -> None:
        """A commit lands after a newer one only if offsets can go backwards: they never may."""
        for tp, off in self.broker.committed.items():
            before = self.high_water.get(tp, 0)
            assert off >= before, f"{tp}: committed {off} after {before}"
            self.high_water[tp] = off

    def check_at_most_once(self) -> None:
        """Invariant 6: execs, fills and dead letters never exist twice."""
        for topic in ("exec", "fill"):
            counts = Counter(loads(r.value)["src"] for r in self.broker.records(topic))
            twice = [s for s, n in counts.items() if n > 1]
            assert not twice, f"{topic} twice: {twice}"
        letters = Counter(self.deadlettered())
        twice = [s for s, n in letters.items() if n > 1]
        assert not twice, f"dead-lettered twice: {twice}"

    def check_committed_means_durable(self) -> None:
        """Invariant 2: below every committed offset, every effect is durable."""
        outs = self.delivered_srcs("out")
        execs = self.delivered_srcs("exec")
        fills = self.delivered_srcs("fill")
        letters = set(self.deadlettered())
        lines = {
            line for w in self.workers for line in w.persister.lines[: w.persister.written_count]
        }
        for tp, committed in self.broker.committed.items():
            if tp.topic not in INPUTS:
                continue
            for offset in range(committed):
                src = src_of(tp.topic, tp.partition, offset)
                assert src in outs, f"committed {tp}@{committed} but out {src} not delivered"
                assert src in lines, f"committed {tp}@{committed} but line {src} not written"
                value = self.produced[src]
                if value == b"bad":
                    assert src in letters, f"committed {tp}@{committed}, no dead letter for {src}"
                if value == b"exec":
                    assert src in execs and src in fills, (
                        f"committed {tp}@{committed}, {src} not executed and filled"
                    )
                    assert f"fill:{src}" in lines, f"committed {tp}@{committed}, fill line of {src}"
