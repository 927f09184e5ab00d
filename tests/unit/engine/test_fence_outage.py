"""A fence the group coordinator does not answer (its broker died) waits; it does not fail.

Kafka moves a dead broker's group coordinator to another broker after the
broker session timeout (about 10 s). Meanwhile a commit gets no answer: no
proof of membership, and no refusal either. The task must neither send (no
proof) nor fail (that would stop the worker for a broker's failover); it asks
again until the coordinator answers. The real failover, on three brokers, is
tests/integration/test_broker_fault.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from fintank.engine.kafka import TopicPartition, partition_for
from tests.support.engine import PARTITIONS, Cluster, Worker

K0 = next(k for k in (f"key{i}" for i in range(1000)) if partition_for(k.encode(), PARTITIONS) == 0)
A0 = TopicPartition("in-a", 0)


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    c = Cluster()
    yield c
    c.check_no_violation()
    c.close()


def test_a_fence_without_an_answer_waits_and_then_sends_once(cluster: Cluster) -> None:
    w: Worker = cluster.new_worker(fence_retry=0.001)
    cluster.rebalance([w])
    cluster.produce("in-a", K0, b"x")
    cluster.drain()  # processed and committed: a position to prove ownership with
    cluster.advance(10)  # past the lease: the next send needs a round trip
    cluster.broker.coordinator_down = True

    cluster.produce("in-a", K0, b"exec")
    cluster.poll(w)
    for _ in range(20):  # the fence asks again and again, and gets no answer
        cluster.run(asyncio.sleep(0.002))
    fences = w.engine.stats["fences"]

    assert not cluster.broker.pending  # no proof: nothing sent
    assert not w.errors and not any(t.failed for t in w.engine.tasks.values())
    assert cluster.broker.committed[A0] == 1

    cluster.broker.coordinator_down = False  # the coordinator moved to a live broker
    cluster.run(asyncio.sleep(0.01))  # the fence's next attempt
    cluster.drain()

    assert w.engine.stats["fences"] == fences  # one fence, that waited
    assert cluster.delivered_srcs("exec") == {"in-a/0/1"}
    assert cluster.delivered_srcs("fill") == {"in-a/0/1"}
    assert cluster.broker.committed[A0] == 2
    assert not w.errors
    cluster.check_at_most_once()
    cluster.check_committed_means_durable()
