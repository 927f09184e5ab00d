"""The engine's invariants, one scenario each, on the in-memory broker (docs/engine.md).

The state machine (tests/property/engine) explores every interleaving; these
are the readable cases, each written so that the failure it guards against
is the one the old faust hand-off had (see docs/engine.md, "What went wrong").
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from fintank.engine import EngineError
from fintank.engine.kafka import TopicPartition, partition_for
from tests.support.engine import CHANGELOG, PARTITIONS, Cluster, Worker


def key_for(partition: int) -> str:
    """A key that lands on ``partition``."""
    return next(
        k
        for k in (f"key{i}" for i in range(1000))
        if partition_for(k.encode(), PARTITIONS) == partition
    )


K0 = key_for(0)
A0 = TopicPartition("in-a", 0)


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    c = Cluster()
    yield c
    c.check_no_violation()
    c.close()


def one_worker(c: Cluster, **kwargs: object) -> Worker:
    w = c.new_worker(**kwargs)  # type: ignore[arg-type]
    c.rebalance([w])
    return w


def committed(c: Cluster, tp: TopicPartition = A0) -> int:
    """The group's committed offset (0 if none: the same place a new member starts)."""
    return c.broker.committed.get(tp, 0)


def test_every_fetched_record_reaches_its_processor_in_order_without_a_timer(
    cluster: Cluster,
) -> None:
    w = one_worker(cluster)
    for _ in range(10):
        cluster.produce("in-a", K0, b"x")

    while cluster.poll(w, limit=2):  # five fetches of two, no clock involved
        pass

    cluster.broker.deliver_all()
    task = w.engine.tasks[("g", 0)]
    assert task.lanes["in-a"].processed == 10
    assert [r["src"] for r in _outs(cluster)] == [f"in-a/0/{i}" for i in range(10)]


def test_a_commit_waits_until_outputs_are_delivered_and_lines_written(cluster: Cluster) -> None:
    w = one_worker(cluster)
    for _ in range(3):
        cluster.produce("in-a", K0, b"x")
    cluster.poll(w)

    cycle = cluster.start_cycle(w, wait=5.0)
    assert committed(cluster) == 0  # outputs not delivered yet
    cluster.broker.deliver_all()
    cluster.settle()
    assert committed(cluster) == 0  # lines not written yet
    cluster.write_lines(w)
    cluster.run_until(cycle)

    assert committed(cluster) == 3
    cluster.check_committed_means_durable()


def test_one_undelivered_output_holds_back_the_commit_of_a_never_committed_partition(
    cluster: Cluster,
) -> None:
    """The old engine could commit past a one-offset gap (faust's ``min(acked) - committed > 1``)
    and skipped its gap check for never-committed partitions."""
    w = one_worker(cluster)
    cluster.produce("in-a", K0, b"x")
    cluster.poll(w)  # offset 0
    cluster.broker.deliver_all()  # its output is on Kafka
    cluster.produce("in-a", K0, b"x")
    cluster.poll(w)  # offset 1: its output stays in the producer
    cluster.write_lines(w)

    cycle = cluster.start_cycle(w, wait=5.0)
    for _ in range(5):
        cluster.settle()
        assert committed(cluster) == 0  # neither 1 nor 2 while offset 1 is not durable
    cluster.broker.deliver_all()
    cluster.run_until(cycle)

    assert committed(cluster) == 2
    cluster.check_committed_means_durable()


def test_revoke_waits_for_the_batch_in_hand_then_nothing_more_is_sent(cluster: Cluster) -> None:
    gate = asyncio.Event()
    w = one_worker(cluster, gate=gate)
    cluster.produce("in-a", K0, b"exec")
    cluster.produce("in-a", K0, b"x")
    cluster.poll(w, limit=1)  # the exec record is in hand, held by the gate
    cluster.poll(w, limit=1)  # the next one waits in the queue
    consumer = w.consumer
    revoking = cluster.loop.create_task(
        consumer.listener.on_partitions_revoked(consumer.assignment())
    )
    cluster.settle()
    assert not revoking.done()  # it waits for the batch in hand

    gate.set()
    cluster.run_until(revoking)

    assert [r["src"] for r in _outs(cluster)] == ["in-a/0/0"]  # the queued batch was dropped
    assert committed(cluster) == 1  # and is not committed: the next owner processes it
    sent = len(cluster.broker.pending) + sum(
        len(p) for log in cluster.broker.logs.values() for p in log
    )
    cluster.settle()
    assert (
        len(cluster.broker.pending)
        + sum(len(p) for log in cluster.broker.logs.values() for p in log)
        == sent
    )  # nothing after the revoke returned (the fill was sent before it)
    assert [r["src"] for r in _records(cluster, "fill")] == ["in-a/0/0"]


def test_a_zombie_cannot_send_a_second_exec(cluster: Cluster) -> None:
    a = one_worker(cluster)
    cluster.produce("in-a", K0, b"x")
    cluster.poll(a)
    cluster.freeze(a)  # the group moves on to a new worker, b
    cluster.produce("in-a", K0, b"exec")

    sent_before = cluster.broker.step
    cluster.poll(a)  # the zombie wakes up and fetches the exec record first
    assert all(t.closing and t.revoked for t in a.engine.tasks.values())  # its fence failed
    assert not [s for s in cluster.broker.pending if s.producer is a.clients.producer_]
    assert cluster.broker.step == sent_before  # it sent nothing, not even an ``out`` record
    cluster.drain()  # b processes the record

    assert [r["src"] for r in _records(cluster, "exec")] == ["in-a/0/1"]
    cluster.check_at_most_once()


def test_state_reaches_the_changelog_only_after_its_outputs(cluster: Cluster) -> None:
    w = one_worker(cluster)
    cluster.produce("in-a", K0, b"x")
    cluster.poll(w)
    cycle = cluster.start_cycle(w, wait=5.0)
    cluster.write_lines(w)

    assert not any(s.tp.topic == CHANGELOG for s in cluster.broker.pending)
    cluster.broker.deliver_all()  # the output...
    cluster.settle()
    assert any(s.tp.topic == CHANGELOG for s in cluster.broker.pending)  # ...then the state
    cluster.run_until(cycle)


def test_a_dead_letter_is_sent_once_across_a_crash_and_redelivery(cluster: Cluster) -> None:
    w = one_worker(cluster)
    cluster.produce("in-a", K0, b"bad")
    cluster.poll(w)
    cluster.broker.deliver_all()  # the dead letter is on Kafka, the offset is not committed

    cluster.crash(w)  # a new worker takes over and is handed the record again
    cluster.drain()

    assert cluster.deadlettered() == ["in-a/0/0"]
    assert committed(cluster) == 1


def test_a_revoke_whose_outputs_cannot_be_delivered_stops_the_worker(cluster: Cluster) -> None:
    w = one_worker(cluster, revoke_timeout=0.05)
    cluster.produce("in-a", K0, b"x")
    cluster.poll(w)
    consumer = w.consumer

    # Kafka takes nothing: the records would sit in the producer and could go out later.
    with pytest.raises(EngineError, match="still in the producer"):
        cluster.loop.run_until_complete(
            consumer.listener.on_partitions_revoked(consumer.assignment())
        )


def test_a_revoke_while_influxdb_is_down_commits_nothing_it_has_not_written(
    cluster: Cluster,
) -> None:
    w = one_worker(cluster, revoke_timeout=0.05)
    cluster.produce("in-a", K0, b"x")
    cluster.poll(w)
    consumer = w.consumer
    revoking = cluster.loop.create_task(
        consumer.listener.on_partitions_revoked(consumer.assignment())
    )
    for _ in range(50):  # Kafka is fine, InfluxDB never confirms
        cluster.broker.deliver_all()
        cluster.settle()
        cluster.loop.run_until_complete(asyncio.sleep(0.005))
        if revoking.done():
            break

    revoking.result()
    assert committed(cluster) == 0  # the next owner processes the record again


def test_a_task_far_behind_pauses_its_partitions_until_it_catches_up(cluster: Cluster) -> None:
    gate = asyncio.Event()
    w = one_worker(cluster, gate=gate)
    for _ in range(8):
        cluster.produce("in-a", K0, b"x")
    cluster.poll(w, limit=1)  # in hand
    cluster.poll(w, limit=5)  # 5 queued > max_queued (4): paused
    consumer = w.consumer
    assert A0 in consumer.paused
    assert cluster.poll(w) == 0  # paused: nothing fetched

    gate.set()
    cluster.settle()

    assert A0 not in consumer.paused
    cluster.drain()
    cluster.check_everything_processed()


def _records(c: Cluster, topic: str) -> list[dict[str, object]]:
    from fintank.codec import loads

    return [loads(r.value) for r in c.broker.records(topic)]


def _outs(c: Cluster) -> list[dict[str, object]]:
    return _records(c, "out")


def test_a_changelog_write_that_fails_is_retried_and_nothing_is_committed_past_it(
    cluster: Cluster,
) -> None:
    from aiokafka.errors import KafkaTimeoutError

    w = one_worker(cluster)
    cluster.produce("in-a", K0, b"x")
    cluster.poll(w)
    cluster.write_lines(w)
    cluster.broker.deliver_all()  # the output
    cycle = cluster.start_cycle(w, wait=5.0)
    state = [s for s in cluster.broker.pending if s.tp.topic == CHANGELOG]
    assert state
    cluster.broker.fail(state[0], KafkaTimeoutError())
    cluster.broker.deliver_all()
    cluster.settle()
    assert cycle.done()
    assert committed(cluster) == 0  # the state did not land: the offset waits

    cluster.run_until(cluster.start_cycle(w, wait=5.0))  # the next commit point retries it

    assert committed(cluster) == 1
    marks = [r for r in cluster.broker.records(CHANGELOG) if r.key == b"mark:in-a"]
    assert marks  # the very same snapshot's state, published this time


def test_a_task_whose_processor_raised_publishes_and_commits_nothing(cluster: Cluster) -> None:
    w = one_worker(cluster)
    cluster.produce("in-a", K0, b"x")
    cluster.poll(w)
    cluster.broker.deliver_all()
    cluster.write_lines(w)
    cluster.run_until(cluster.start_cycle(w, wait=5.0))
    assert committed(cluster) == 1
    task = w.engine.tasks[("g", 0)]
    echo = task.processor

    async def broken(batch: object) -> None:
        echo.seen.stage(0, "n:half-done", 99)  # staged, then the batch fails
        raise RuntimeError("a bug in a bolt")

    echo.on_batch = broken  # type: ignore[method-assign]
    cluster.violations.clear()
    cluster.produce("in-a", K0, b"x")
    cluster.poll(w)
    cluster.run_until(cluster.start_cycle(w, wait=5.0))

    assert task.failed
    assert committed(cluster) == 1
    assert not [r for r in cluster.broker.records(CHANGELOG) if r.key == b"n:half-done"]
    assert any("a bug in a bolt" in str(e) for e in w.errors)
    cluster.violations.clear()  # the failure itself was reported by the engine


def test_lines_persisted_by_chained_work_are_written_before_the_commit(cluster: Cluster) -> None:
    """A fill's InfluxDB line is written after its execution's delivery, after the snapshot."""
    w = one_worker(cluster)
    cluster.produce("in-a", K0, b"exec")
    cluster.poll(w)
    cluster.write_lines(w)  # the batch's own line is written
    cycle = cluster.start_cycle(w, wait=5.0)
    for _ in range(20):  # Kafka delivers the exec, then the fill; its line is not written
        cluster.broker.deliver_all()
        cluster.settle()
    assert "fill:in-a/0/0" in w.persister.lines
    assert committed(cluster) == 0
    cluster.write_lines(w)
    cluster.run_until(cycle)

    assert committed(cluster) == 1


def test_a_task_behind_its_inputs_is_not_caught_up_so_its_clock_waits(cluster: Cluster) -> None:
    """Closing windows by the wall clock while history is still queued would make ticks late."""
    gate = asyncio.Event()
    w = one_worker(cluster, gate=gate)
    for _ in range(4):
        cluster.produce("in-a", K0, b"x")
    task = w.engine.tasks[("g", 0)]

    def caught_up() -> bool:
        return bool(cluster.loop.run_until_complete(w.engine.caught_up(task)))

    assert not caught_up()  # records on the log, none fetched yet
    cluster.poll(w, limit=2)
    assert not caught_up()  # fetched half of them
    cluster.poll(w, limit=2)
    assert not caught_up()  # all fetched, one batch in hand and one queued
    gate.set()
    cluster.settle()

    assert caught_up()
