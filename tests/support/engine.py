"""A cluster of workers running the real engine on the in-memory broker, for engine tests.

`Echo` stands for a topology: per input record it sends an ``out`` record,
keeps a count per key and the newest offset per input in a table, persists
a line, dead-letters ``bad`` records, and for ``exec`` records sends one
``exec`` and then (once delivered) one ``fill`` that must each exist exactly
once, with a ledger rebuilt from those topics at assignment, as
`fintank.agents.Market` does for executions and fills. It also checks, as it
goes, what only it can see (the offsets it is handed, sends after a revoke);
`Cluster.on_send` checks every record handed to a producer. Violations are
collected in `World`.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fintank.codec import loads
from fintank.engine import Engine, EngineConfig, Fenced, Group, Table
from fintank.engine.kafka import CommitFailedError, TopicPartition
from fintank.engine.task import Batch, Context
from fintank.records import DeadLetter
from tests.support.broker import FakeBroker, FakeClients, FakePersister, Send

INPUTS = ("in-a", "in-b")
PARTITIONS = 3
SEEN = Table("seen", lambda v: v, int)
APP = "machine"
CHANGELOG = f"{APP}-seen-changelog"
KEYS = ["k0", "k1", "k2", "k3", "k4", "k5"]
SESSION_TIMEOUT = 10.0


def src_of(topic: str, partition: int, offset: int) -> str:
    return f"{topic}/{partition}/{offset}"


@dataclass
class Worker:
    """One worker process: its engine, clock, persister and what the machine knows of it."""

    name: str
    engine: Engine
    clients: FakeClients
    persister: FakePersister
    clock: list[float]
    state: str = "member"  # member | zombie | dead
    revocations: int = 0  # revoke callbacks that returned
    revoking: bool = False
    errors: list[BaseException] = field(default_factory=list)
    assigned_from: dict[TopicPartition, int] = field(default_factory=dict)


class World:
    """What the machine observed, for the invariants."""

    def __init__(self) -> None:
        self.violations: list[str] = []

    def violate(self, what: str) -> None:
        self.violations.append(what)


class Echo:
    """The processor under the engine (one per task)."""

    def __init__(
        self, ctx: Context, world: World, worker: Worker, gate: asyncio.Event | None = None
    ) -> None:
        self.ctx = ctx
        self.gate = gate
        self.world = world
        self.worker = worker
        self.epoch = worker.revocations
        self.seen = ctx.table(SEEN.name)
        self.execs: dict[str, str] = {}  # src -> key (fills go where their exec went)
        self.filled: set[str] = set()
        self.expect: dict[str, int] = {}  # topic -> next offset this processor must see

    def alive(self, what: str) -> None:
        if self.worker.revocations > self.epoch:
            self.world.violate(
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
            self.world.violate(f"{self.worker.name} {tp}: batch at {batch.first}, expected {first}")
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


def run(loop: asyncio.AbstractEventLoop, coro: Any) -> Any:
    return loop.run_until_complete(coro)


async def settle(rounds: int = 60) -> None:
    for _ in range(rounds):
        await asyncio.sleep(0)


class Cluster:
    """Workers running the real `Engine` with `Echo` on one `FakeBroker`, driven step by step.

    Every method runs the event loop itself, so a test (or a state machine
    rule) reads as a sequence of plain calls.
    """

    def __init__(self, seed: int = 0) -> None:
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)
        self.broker = FakeBroker()
        for t in INPUTS:
            self.broker.create(t, PARTITIONS)
        for t in ("out", "exec", "fill"):
            self.broker.create(t, PARTITIONS)
        self.broker.create("deadletters", 1)
        self.broker.send_hooks.append(self.on_send)
        self.world = World()
        self.workers: list[Worker] = []
        self.rng = random.Random(seed)
        self.background: list[asyncio.Task[Any]] = []
        self.produced: dict[str, bytes] = {}  # src -> value
        self.high_water: dict[TopicPartition, int] = {}  # highest committed offset seen

    def new_worker(self, revoke_timeout: float = 5.0, gate: asyncio.Event | None = None) -> Worker:
        """A worker joining the broker (not yet in the group: `rebalance` takes it in).

        ``gate``: each `Echo.on_batch` waits for it, so a test can hold a batch in hand.
        """
        name = f"w{len(self.workers)}"
        clients = FakeClients(self.broker, name)
        persister = FakePersister()
        clock = [1000.0]
        holder: dict[str, Worker] = {}
        group = Group(
            "g",
            INPUTS,
            lambda ctx: Echo(ctx, self.world, holder["w"], gate),
            tables=(SEEN,),
            replay=("exec", "fill"),
        )
        config = EngineConfig(
            app_id=APP,
            deadletters="deadletters",
            commit_interval=0.01,
            max_queued=4,
            revoke_timeout=revoke_timeout,
            exit_on_fatal=False,
        )
        engine = Engine(
            config,
            [group],
            {"out": "out", "exec": "exec", "fill": "fill", "deadletters": "deadletters"},
            persister,
            clients,
            f"http://{name}",
            clock=lambda: clock[0],
        )
        worker = Worker(name, engine, clients, persister, clock)
        engine.on_error = lambda exc: self.task_failed(worker, exc)
        holder["w"] = worker
        run(self.loop, engine.connect())
        consumer = clients.consumer
        assert consumer is not None
        listener = consumer.listener
        machine = self

        class Watch:
            async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
                worker.revoking = True
                try:
                    await listener.on_partitions_revoked(revoked)
                finally:
                    worker.revoking = False
                    worker.revocations += 1

            async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
                worker.assigned_from = {tp: machine.broker.committed.get(tp, 0) for tp in assigned}
                await listener.on_partitions_assigned(assigned)

        consumer.listener = Watch()
        self.workers.append(worker)
        return worker

    def task_failed(self, worker: Worker, exc: BaseException) -> None:
        worker.errors.append(exc)
        if worker.state == "dead":
            return  # what a killed process does no longer matters
        if isinstance(exc, Fenced) and worker.state != "member":
            if worker.state == "zombie":
                self.kill(worker)  # what the worker process does: it stops
            return
        self.world.violate(f"{worker.name}: task failed: {exc!r}")

    def kill(self, worker: Worker) -> None:
        worker.state = "dead"
        for task in worker.engine.tasks.values():
            task.closing = True
            task.cancel_chained()
            if task._runner is not None:
                task._runner.cancel()
        if worker.engine.recovering is not None:
            worker.engine.recovering.cancel()
        producer = worker.clients.producer_
        if producer is not None:
            producer.alive = False
            self.broker.lose(producer, self.rng)

    def members(self) -> list[Worker]:
        return [w for w in self.workers if w.state == "member"]

    def live(self) -> list[Worker]:
        return [w for w in self.workers if w.state in ("member", "zombie")]

    def consumer(self, w: Worker) -> Any:
        return w.clients.consumer

    def rebalance(self, members: list[Worker]) -> None:
        """Move the group to ``members``, delivering and writing as it goes (a healthy cluster)."""
        task = self.loop.create_task(self.broker.rebalance([self.consumer(w) for w in members]))
        self.run_until(task)
        task.result()

    def run_until(self, task: asyncio.Task[Any]) -> None:
        """Run the loop, delivering every send and writing every line, until ``task`` is done.

        A healthy cluster answers at once: a send is delivered a step or two
        after it is made, so a revoke can finish while a task still has work
        queued (it must not touch it).
        """
        for _ in range(2000):
            run(self.loop, settle(2))
            self.broker.deliver_all()
            for w in self.workers:
                run(self.loop, w.persister.write_all())
            if task.done():
                return
        raise AssertionError(f"{task} did not finish")

    def on_send(self, send: Send) -> None:
        """Invariants 3 and 4 at the moment a record is handed to a producer."""
        worker = next(w for w in self.workers if w.clients.producer_ is send.producer)
        topic = send.tp.topic
        fenced_topic = topic in ("exec", "fill", "deadletters", CHANGELOG)
        if fenced_topic and worker.state != "member":
            self.world.violate(f"{worker.name} ({worker.state}) sent to {topic}")
        if topic == CHANGELOG:
            consumer = self.consumer(worker)
            owns = any(tp.partition == send.tp.partition for tp in consumer.assignment())
            if not (owns and (self.broker.is_current(consumer) or worker.revoking)):
                self.world.violate(f"{worker.name} wrote {send.tp} without owning it")
            key = send.key.decode() if send.key else ""
            if key.startswith("mark:") and send.value is not None:
                topic_in = key[len("mark:") :]
                mark = loads(send.value)
                delivered = self.delivered_srcs("out")
                for o in range(mark + 1):
                    src = src_of(topic_in, send.tp.partition, o)
                    if src not in delivered:
                        self.world.violate(
                            f"changelog mark {mark} for {topic_in}/{send.tp.partition} before out {src}"
                        )
                        break

    def delivered_srcs(self, topic: str) -> set[str]:
        return {loads(r.value)["src"] for r in self.broker.records(topic)}

    # ------------------------------------------------------------------ steps
    def settle(self, rounds: int = 60) -> None:
        run(self.loop, settle(rounds))

    def produce(self, topic: str, key: str, value: bytes) -> str:
        """An input record from outside; returns its src id."""
        rec = self.broker.produce(topic, key, value)
        src = src_of(topic, rec.partition, rec.offset)
        self.produced[src] = value
        return src

    def poll(self, w: Worker, limit: int = 3, steps: int = 10) -> int:
        """One getmany of ``w``'s consumer, handed to its engine, then ``steps`` loop steps;
        returns the records fetched."""
        consumer = self.consumer(w)
        consumer.fetch_limit = limit
        fetched = consumer.fetch()
        w.engine.dispatch(fetched)
        self.settle(steps)
        return sum(len(v) for v in fetched.values())

    def write_lines(self, w: Worker) -> None:
        run(self.loop, w.persister.write_all())
        self.settle(10)

    def start_cycle(self, w: Worker, wait: float = 0) -> asyncio.Task[None]:
        """A commit point of ``w`` in the background.

        ``wait``: how long it waits for its snapshot's outputs and lines (0: it
        publishes only what is durable already; the rest stays in flight for
        the next commit point).
        """
        task = self.loop.create_task(self._cycle(w, wait))
        self.background.append(task)
        self.settle(10)
        return task

    async def _cycle(self, w: Worker, wait: float = 0) -> None:
        try:
            await w.engine.cycle(wait=wait)
        except (Fenced, CommitFailedError) as exc:
            if w.state == "member":
                self.world.violate(f"{w.name}: a member was refused at a commit point: {exc!r}")

    def leave(self, w: Worker) -> None:
        """A clean stop: the worker revokes (drains and commits), then leaves the group."""
        consumer = self.consumer(w)
        task = self.loop.create_task(consumer.listener.on_partitions_revoked(consumer.assignment()))
        self.run_until(task)
        task.result()
        w.state = "dead"
        consumer.assigned = None
        self.rebalance(self.members())

    def crash(self, w: Worker) -> None:
        """SIGKILL: nothing more runs; undelivered sends are partly lost; the group moves on."""
        self.kill(w)
        self.rebalance(self.members() or [self.new_worker()])

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
        self.broker.expel(self.consumer(w))  # its session ran out while it was frozen
        w.clock[0] += SESSION_TIMEOUT + 1
        w.state = "zombie"
        self.rebalance(self.members() or [self.new_worker()])

    def drain(self) -> None:
        """Let everything run to the end: fetch, process, deliver, write, commit."""
        for _ in range(100):
            progressed = False
            for w in self.live():
                fetched = self.consumer(w).fetch()
                if fetched:
                    progressed = True
                    w.engine.dispatch(fetched)
            self.settle()
            if self.broker.pending:
                progressed = True
                self.broker.deliver_all()
            for w in self.live():
                run(self.loop, w.persister.write_all())
                if any(t.queue for t in w.engine.tasks.values()):
                    progressed = True
            self.settle()
            if not progressed:
                break
        for w in self.members():
            self.run_until(self.loop.create_task(self._cycle(w, wait=5.0)))

    def close(self) -> None:
        tasks = asyncio.all_tasks(self.loop)
        for task in tasks:
            task.cancel()
        self.loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        self.loop.close()
        asyncio.set_event_loop(None)

    # ------------------------------------------------------------------ checks
    def check_no_violation(self) -> None:
        assert not self.world.violations, self.world.violations

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

    def deadlettered(self) -> list[str]:
        return [
            src_of(d["source_topic"], d["source_partition"], d["source_offset"])
            for d in (loads(r.value) for r in self.broker.records("deadletters"))
        ]

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
