"""The persister's batching, retry and backpressure rules, against a transport double.

These tests are about the persister's own logic. What a real InfluxDB or
VictoriaMetrics does with the lines is the integration tests' job.
"""

import asyncio

import pytest

from fintank.errors import SinkError
from fintank.sinks.influx import InfluxPersister
from fintank.sinks.transports import TransientWriteError


class RecordingTransport:
    """Keeps every batch it is given; fails the first ``fail`` writes transiently."""

    name = "recording"

    def __init__(self, fail: int = 0, reject: bool = False) -> None:
        self.batches: list[list[str]] = []
        self.fail = fail
        self.reject = reject
        self.closed = False

    async def write(self, lines: list[str]) -> None:
        if self.fail:
            self.fail -= 1
            raise TransientWriteError("server down")
        if self.reject:
            raise SinkError("HTTP 400: bad line")
        self.batches.append(list(lines))

    async def close(self) -> None:
        self.closed = True


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def test_flush_writes_in_batches_of_batch_size_in_order() -> None:
    async def scenario() -> RecordingTransport:
        transport = RecordingTransport()
        persister = InfluxPersister(transport, batch_size=3, max_buffer=10)
        persister.add([f"l{i}" for i in range(7)])
        await persister.flush()
        return transport

    transport = run(scenario())

    assert transport.batches == [["l0", "l1", "l2"], ["l3", "l4", "l5"], ["l6"]]


def test_transient_failures_are_retried_and_nothing_is_lost() -> None:
    async def scenario() -> tuple[RecordingTransport, InfluxPersister]:
        transport = RecordingTransport(fail=3)
        persister = InfluxPersister(transport, batch_size=2, max_buffer=4, max_backoff=0.01)
        persister.add(["a", "b", "c"])
        await persister.flush()
        return transport, persister

    transport, persister = run(scenario())

    assert transport.batches == [["a", "b"], ["c"]]
    assert (persister.stats.retries, persister.stats.written) == (3, 3)


def test_full_buffer_makes_wait_for_room_block_until_flushed() -> None:
    async def scenario() -> tuple[bool, bool]:
        persister = InfluxPersister(RecordingTransport(), batch_size=2, max_buffer=4)
        persister.add(["a", "b", "c", "d"])
        waiter = asyncio.ensure_future(persister.wait_for_room())
        await asyncio.sleep(0.01)
        blocked = not waiter.done()
        await persister.flush()
        await asyncio.sleep(0)
        return blocked, waiter.done()

    assert run(scenario()) == (True, True)


def test_run_loop_flushes_a_partial_batch_after_the_interval() -> None:
    async def scenario() -> RecordingTransport:
        transport = RecordingTransport()
        persister = InfluxPersister(transport, batch_size=100, flush_interval=0.02)
        loop_task = asyncio.ensure_future(persister.run())
        persister.add(["x"])
        await asyncio.sleep(0.1)
        await persister.close()
        await loop_task
        return transport

    transport = run(scenario())

    assert transport.batches == [["x"]]
    assert transport.closed


def test_close_flushes_what_is_left() -> None:
    async def scenario() -> RecordingTransport:
        transport = RecordingTransport()
        persister = InfluxPersister(transport, batch_size=100)
        persister.add(["x", "y"])
        await persister.close()
        return transport

    assert run(scenario()).batches == [["x", "y"]]


def test_rejected_batch_is_counted_not_retried_forever() -> None:
    async def scenario() -> InfluxPersister:
        persister = InfluxPersister(RecordingTransport(reject=True), batch_size=10)
        persister.add(["bad"])
        await persister.flush()
        return persister

    persister = run(scenario())

    assert (persister.stats.rejected, len(persister)) == (1, 0)


def test_max_buffer_below_batch_size_is_refused() -> None:
    with pytest.raises(ValueError):
        InfluxPersister(RecordingTransport(), batch_size=10, max_buffer=5)


class GatedTransport(RecordingTransport):
    """Each write waits until the test opens the gate once."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Semaphore(0)

    async def write(self, lines: list[str]) -> None:
        await self.gate.acquire()
        await super().write(lines)


def test_written_returns_only_once_the_marked_lines_are_written() -> None:
    async def scenario() -> list[tuple[bool, bool]]:
        transport = GatedTransport()
        persister = InfluxPersister(transport, batch_size=2, max_buffer=10)
        persister.add(["a", "b"])
        first = asyncio.ensure_future(persister.written(persister.mark()))
        persister.add(["c", "d"])
        second = asyncio.ensure_future(persister.written(persister.mark()))
        flushing = asyncio.ensure_future(persister.flush())
        seen = []
        for _ in range(2):
            await asyncio.sleep(0.01)
            seen.append((first.done(), second.done()))
            transport.gate.release()
        await flushing
        await asyncio.sleep(0.01)
        seen.append((first.done(), second.done()))
        return seen

    assert run(scenario()) == [(False, False), (True, False), (True, True)]


def test_written_with_nothing_pending_returns_at_once() -> None:
    async def scenario() -> int:
        persister = InfluxPersister(RecordingTransport(), batch_size=2, max_buffer=10)
        persister.add(["a"])
        await persister.flush()
        persister.add([])
        await asyncio.wait_for(persister.written(persister.mark()), 1)
        return persister.mark()

    assert run(scenario()) == 1


def test_rejected_lines_count_as_done_for_written() -> None:
    async def scenario() -> int:
        persister = InfluxPersister(RecordingTransport(reject=True), batch_size=2, max_buffer=10)
        persister.add(["bad"])
        mark = persister.mark()
        await persister.flush()
        await asyncio.wait_for(persister.written(mark), 1)
        return persister.stats.rejected

    assert run(scenario()) == 1
