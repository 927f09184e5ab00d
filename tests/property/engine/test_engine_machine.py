"""The engine against a reference model, in any interleaving (hypothesis state machine).

The real `Engine` (tasks, stores, assignor, commits, fencing, revoke and
assign) runs on an in-memory broker (`tests.support.broker`) whose every
step the machine chooses: records arrive, members fetch, tasks process,
sends are delivered one by one in any order Kafka allows, InfluxDB lines
are written, commit points run, workers join, leave, crash (their
undelivered sends partly lost) or freeze past their session timeout and wake
up as zombies. `tests.support.engine.Echo` stands for a topology.

Invariants (docs/engine.md numbers them the same way):

1. Each processor sees its partitions' records in offset order, from the
   committed offset on, with no gap; once the machine lets everything run
   (`drain`), every record of every owned partition has been processed,
   with no timer involved.
2. A committed offset never passes a record whose effects are not durable:
   its ``out`` record, its line, its dead letter, its exec and fill.
3. Once a revoke returns, nothing more is sent for those partitions by
   that worker; a zombie never sends an exec, a fill, a dead letter or a
   changelog record.
4. A changelog record is sent only by the partition's owner, and only once
   the outputs it accounts for were delivered.
6. Dead letters, execs and fills exist at most once, ever; exactly once
   below the committed offset.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from tests.support.engine import INPUTS, KEYS, Cluster


class EngineMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.c = Cluster()

    @initialize(n=st.integers(1, 2))
    def start(self, n: int) -> None:
        for _ in range(n):
            self.c.new_worker()
        self.c.rebalance(self.c.members())

    @rule(
        records=st.lists(
            st.tuples(
                st.sampled_from(INPUTS),
                st.sampled_from(KEYS),
                st.sampled_from([b"x", b"x", b"x", b"bad", b"exec"]),
            ),
            min_size=1,
            max_size=6,
        )
    )
    def produce(self, records: list[tuple[str, str, bytes]]) -> None:
        for topic, key, value in records:
            self.c.produce(topic, key, value)

    @precondition(lambda self: self.c.live())
    @rule(data=st.data(), limit=st.integers(1, 4), steps=st.integers(0, 12))
    def poll(self, data: st.DataObject, limit: int, steps: int) -> None:
        self.c.poll(data.draw(st.sampled_from(self.c.live())), limit, steps)

    @rule()
    def let_tasks_run(self) -> None:
        self.c.settle()

    @precondition(lambda self: self.c.broker.deliverable())
    @rule(data=st.data())
    def deliver_one(self, data: st.DataObject) -> None:
        self.c.broker.deliver(data.draw(st.sampled_from(self.c.broker.deliverable())))
        self.c.settle(10)

    @precondition(lambda self: self.c.live())
    @rule(data=st.data())
    def write_lines(self, data: st.DataObject) -> None:
        self.c.write_lines(data.draw(st.sampled_from(self.c.live())))

    @precondition(lambda self: self.c.live())
    @rule(data=st.data())
    def commit_point(self, data: st.DataObject) -> None:
        self.c.start_cycle(data.draw(st.sampled_from(self.c.live())))

    @precondition(lambda self: len(self.c.workers) < 5)
    @rule()
    def join(self) -> None:
        self.c.new_worker()
        self.c.rebalance(self.c.members())

    @precondition(lambda self: len(self.c.members()) >= 2)
    @rule(data=st.data())
    def leave(self, data: st.DataObject) -> None:
        self.c.leave(data.draw(st.sampled_from(self.c.members())))

    @precondition(lambda self: self.c.members())
    @rule(data=st.data())
    def crash(self, data: st.DataObject) -> None:
        self.c.crash(data.draw(st.sampled_from(self.c.members())))

    @precondition(lambda self: self.c.members())
    @rule(data=st.data())
    def freeze_past_session_timeout(self, data: st.DataObject) -> None:
        self.c.freeze(data.draw(st.sampled_from(self.c.members())))

    @rule(seconds=st.sampled_from([0.5, 1.0, 2.0, 4.0]))
    def time_passes(self, seconds: float) -> None:
        for w in self.c.workers:
            w.clock[0] += seconds

    @rule()
    def drain(self) -> None:
        self.c.drain()
        self.c.check_everything_processed()

    @invariant()
    def nothing_violated(self) -> None:
        self.c.check_no_violation()

    @invariant()
    def at_most_once(self) -> None:
        self.c.check_at_most_once()

    @invariant()
    def committed_means_durable(self) -> None:
        self.c.check_committed_means_durable()

    @invariant()
    def committed_never_moves_back(self) -> None:
        self.c.check_committed_never_moves_back()

    def teardown(self) -> None:
        self.c.close()


EngineMachine.TestCase.settings = settings(
    # FINTANK_MACHINE_EXAMPLES=2000 for a long hunt; CI runs the default.
    max_examples=int(os.environ.get("FINTANK_MACHINE_EXAMPLES", "60")),
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestEngineMachine = EngineMachine.TestCase
