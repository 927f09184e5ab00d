"""Reading partitions back to their end offsets, as recovery does."""

from __future__ import annotations

import asyncio
from typing import Any

from fintank.engine.kafka import TopicPartition
from fintank.engine.restore import read_partitions
from tests.support.broker import FakeBroker, FakeReader

A, B = TopicPartition("log", 0), TopicPartition("log", 1)


class WrittenWhileReading(FakeReader):
    """A reader of a partition someone keeps appending to while it reads."""

    async def getmany(self, *tps: TopicPartition, timeout_ms: int = 0) -> Any:
        self.broker.append(A, b"k", b"late")
        return await super().getmany(*tps, timeout_ms=timeout_ms)


def test_reads_every_record_up_to_the_end_offset_at_the_call_and_no_further() -> None:
    broker = FakeBroker()
    broker.create("log", 2)
    for i in range(5):
        broker.append(A, b"k", str(i).encode())

    got = asyncio.run(read_partitions(WrittenWhileReading(broker), [A, B]))

    assert [r.offset for r in got[A]] == [0, 1, 2, 3, 4]
    assert got[B] == []


def test_no_partitions_reads_nothing() -> None:
    assert asyncio.run(read_partitions(FakeReader(FakeBroker()), [])) == {}
