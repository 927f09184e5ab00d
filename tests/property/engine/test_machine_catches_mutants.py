"""Each invariant's test fails without the fix: the state machine against broken engines.

A passing state machine proves little unless it would fail on an engine that
breaks the rule. Each test here puts back one of the faults the old faust
hand-off had (docs/engine.md, "What went wrong") into the real engine, as a
small patch, and checks that `EngineMachine` finds a counterexample.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis.stateful import run_state_machine_as_test

from fintank.engine.engine import Engine
from fintank.engine.task import Batch, Context, Task
from tests.property.engine.test_engine_machine import EngineMachine
from tests.support.engine import Cluster
from tests.unit.engine.test_engine import (
    test_revoke_waits_for_the_batch_in_hand_then_nothing_more_is_sent as revoke_scenario,
)

HUNT = settings(
    max_examples=400,
    stateful_step_count=40,
    deadline=None,
    derandomize=True,
    database=None,
    phases=[Phase.generate],  # a counterexample is enough; no shrinking
    report_multiple_bugs=False,
    suppress_health_check=list(HealthCheck),
)


def assert_caught(
    monkeypatch: pytest.MonkeyPatch, target: Any, name: str, fault: Callable[..., Any]
) -> None:
    monkeypatch.setattr(target, name, fault)
    with pytest.raises(AssertionError):
        run_state_machine_as_test(EngineMachine, settings=HUNT)


def test_invariant_1_a_batch_dropped_while_the_partition_is_owned(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The old hand-off: a queued batch could be cleared (faust's flow control) and never fetched again."""
    offer = Task.offer

    def lossy(self: Task, batch: Batch) -> bool:
        if self.queue:
            self.queue.clear()
            self.queued = 0
        return offer(self, batch)

    assert_caught(monkeypatch, Task, "offer", lossy)


def test_invariant_2_offsets_committed_before_outputs_are_delivered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def not_waiting(self: Engine, snap: Any) -> None:
        return None

    assert_caught(monkeypatch, Engine, "_durable", not_waiting)


def test_invariant_2_a_commit_one_offset_past_what_was_processed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """faust's gap check let a commit pass one unprocessed offset."""
    snapshot = Task.snapshot

    def one_past(self: Task) -> Any:
        snap = snapshot(self)
        if snap is not None:
            snap.offsets = {tp: off + 1 for tp, off in snap.offsets.items()}
        return snap

    assert_caught(monkeypatch, Task, "snapshot", one_past)


def test_invariant_3_a_revoke_that_does_not_stop_the_batch_in_hand(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """faust's revoke waited for its own messages only, not for batches in flight.

    The machine rarely holds a batch across a whole revoke (the engine's final
    commit point takes the task's lock), so the scenario that does is used here.
    """

    async def not_stopping(self: Task, timeout: float) -> bool:
        return True  # the task goes on with its queue after the revoke returned

    monkeypatch.setattr(Task, "stop", not_stopping)
    cluster = Cluster()
    try:
        with pytest.raises(AssertionError):
            revoke_scenario(cluster)
            cluster.check_no_violation()
    finally:
        cluster.close()


def test_invariant_3_no_fence_lets_a_zombie_send(monkeypatch: pytest.MonkeyPatch) -> None:
    async def trusting(self: Engine, tasks: Any) -> None:
        return None

    assert_caught(monkeypatch, Engine, "fence_lanes", trusting)


def test_invariant_4_state_published_before_its_outputs_are_delivered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The old StateTable: one staged dict per table, published by whichever agent came next."""
    publish = Engine._publish

    async def eager(self: Engine, snaps: Any) -> None:
        for task in self.tasks.values():
            if task.inflight is not None:
                snap, task.inflight = task.inflight, None
                snap.durable.cancel()
                await publish(self, [snap])
        await publish(self, snaps)

    async def cycle(self: Engine, tasks: Any = None, wait: float | None = None) -> None:
        await original_cycle(self, tasks, 0)
        await eager(self, [])

    original_cycle = Engine.cycle
    assert_caught(monkeypatch, Engine, "cycle", cycle)


def test_invariant_6_dead_letters_sent_again_after_a_crash(monkeypatch: pytest.MonkeyPatch) -> None:
    def forgetful(self: Context, topic: str, offset: int) -> bool:
        return False

    assert_caught(monkeypatch, Context, "deadlettered", forgetful)


def test_invariant_6_a_checkpoint_that_forgets_what_a_previous_owner_sent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Bounded recovery without the floor: the first commit after a recovery checkpoints the
    ends read then, though a record redelivered later had its exec below them."""

    def own_bounds_only(self: Task, committing: Any) -> dict[Any, int]:
        return self.checkpoint

    assert_caught(monkeypatch, Task, "replay_bounds", own_bounds_only)


def test_invariant_6_a_checkpoint_one_offset_too_far(monkeypatch: pytest.MonkeyPatch) -> None:
    """Recovery must read back every output a redelivered record may have had."""
    bounds = Task.replay_bounds

    def one_past(self: Task, committing: Any) -> dict[Any, int]:
        return {tp: off + 1 for tp, off in bounds(self, committing).items()}

    assert_caught(monkeypatch, Task, "replay_bounds", one_past)


def test_the_machine_passes_on_the_real_engine() -> None:
    run_state_machine_as_test(EngineMachine, settings=HUNT)
    asyncio.set_event_loop(None)
