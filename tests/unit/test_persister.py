"""The persister's batching, retry and backpressure rules, against a transport double.

These tests are about the persister's own logic. What a real InfluxDB or
VictoriaMetrics does with the lines is the integration tests' job.
"""

import asyncio

import pytest

from fintank.errors import SinkError
from fintank.records import DeadLetter
from fintank.sinks.influx import InfluxPersister
from fintank.sinks.transports import RefusedWriteError, RejectedPointsError, TransientWriteError


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


# ------------------------------------------------------------------ refusals and rejections
class ContentTransport(RecordingTransport):
    """Refuses any batch holding a line that starts with ``bad`` for its content, as a real
    server does: the message does not say which line (``named`` lines only if ``name``)."""

    def __init__(self, name: bool = False) -> None:
        super().__init__()
        self.name_lines = name
        self.attempts: list[list[str]] = []

    async def write(self, lines: list[str]) -> None:
        self.attempts.append(list(lines))
        bad = [line for line in lines if line.startswith("bad")]
        if bad:
            named = {line: f"unable to parse: {line} is bad" for line in bad}
            raise RejectedPointsError(
                "HTTP 400: partial write", "field type conflict", named if self.name_lines else {}
            )
        self.batches.append(list(lines))


class Letters:
    """The persister's dead-letter sink: keeps what it was given; fails the first ``fail``."""

    def __init__(self, fail: int = 0) -> None:
        self.sent: list[DeadLetter] = []
        self.fail = fail

    async def __call__(self, letters: list[DeadLetter]) -> None:
        if self.fail:
            self.fail -= 1
            raise ConnectionError("kafka away")
        self.sent.extend(letters)


def test_points_refused_for_content_are_found_by_bisection_and_dead_lettered_alone() -> None:
    lines = [f"m,k=v f={i} {i}" for i in range(16)]
    lines[3] = "bad,k=v f=3 3"
    lines[12] = "bad,k=v f=12 12"
    letters = Letters()

    async def scenario() -> tuple[ContentTransport, InfluxPersister]:
        transport = ContentTransport()
        persister = InfluxPersister(transport, batch_size=16, max_buffer=16, deadletter=letters)
        persister.add(lines)
        mark = persister.mark()
        await persister.flush()
        await asyncio.wait_for(persister.written(mark), 1)
        return transport, persister

    transport, persister = run(scenario())

    written = [line for batch in transport.batches for line in batch]
    assert sorted(written) == sorted(line for line in lines if not line.startswith("bad"))
    assert len(written) == len(set(written)) == 14  # each good line in one successful write
    assert [(d.source_topic, d.payload) for d in letters.sent] == [
        ("influxdb:bad", "bad,k=v f=3 3"),
        ("influxdb:bad", "bad,k=v f=12 12"),
    ]
    assert all(d.reason == "recording refused the point: field type conflict" for d in letters.sent)
    assert (persister.stats.written, persister.stats.rejected, len(persister)) == (14, 2, 0)
    assert len(transport.attempts) <= 2 * 2 * 4 + 1  # log2(16) levels, two culprits


def test_lines_the_server_names_are_dead_lettered_at_once_and_the_rest_written_in_one_go() -> None:
    letters = Letters()

    async def scenario() -> ContentTransport:
        transport = ContentTransport(name=True)
        persister = InfluxPersister(transport, batch_size=10, max_buffer=10, deadletter=letters)
        persister.add(["a 1", "bad one", "b 2", "bad two"])
        await persister.flush()
        return transport

    transport = run(scenario())

    assert transport.attempts == [["a 1", "bad one", "b 2", "bad two"], ["a 1", "b 2"]]
    assert {d.payload: d.reason for d in letters.sent} == {
        "bad one": "recording refused the point: unable to parse: bad one is bad",
        "bad two": "recording refused the point: unable to parse: bad two is bad",
    }


def test_refused_lines_count_as_done_only_once_their_dead_letters_are_delivered() -> None:
    letters = Letters(fail=2)

    async def scenario() -> tuple[InfluxPersister, int]:
        persister = InfluxPersister(
            ContentTransport(), batch_size=4, max_buffer=4, max_backoff=0.01, deadletter=letters
        )
        persister.add(["ok 1", "bad 2"])
        await persister.flush()
        return persister, persister.mark()

    persister, mark = run(scenario())

    assert [d.payload for d in letters.sent] == ["bad 2"]  # delivered on the third try
    assert persister._done == mark == 2


class RefusingTransport(RecordingTransport):
    """Answers each write with the next refusal of ``answers`` (None: accept)."""

    def __init__(self, answers: list[str | None]) -> None:
        super().__init__()
        self.answers = list(answers)

    async def write(self, lines: list[str]) -> None:
        answer = self.answers.pop(0) if self.answers else None
        if answer == "down":
            raise TransientWriteError("recording: connection refused")
        if answer is not None:
            raise RefusedWriteError(answer)
        await super().write(lines)


def test_a_refusal_is_retried_never_dropped_and_logged_once_per_episode(
    caplog: pytest.LogCaptureFixture,
) -> None:
    wrong = 'recording: authentication failed writing to database "d" (HTTP 401)'
    missing = 'recording: database "d" not found (HTTP 404)'
    answers: list[str | None] = [wrong] * 5 + [missing] * 3 + [None] + ["down"] * 4
    seen: list[tuple[str | None, bool]] = []

    async def scenario() -> tuple[RefusingTransport, InfluxPersister]:
        transport = RefusingTransport(answers)
        persister = InfluxPersister(transport, batch_size=1, max_buffer=4, max_backoff=0.01)
        persister.add(["a", "b"])
        mark = persister.mark()
        flushing = asyncio.ensure_future(persister.flush())
        while transport.answers[:1] != [None]:
            await asyncio.sleep(0.001)
            seen.append((persister.problem, persister._done >= mark))
        await flushing
        await asyncio.wait_for(persister.written(mark), 1)
        return transport, persister

    with caplog.at_level("INFO", logger="fintank.sinks.influx"):
        transport, persister = run(scenario())

    assert transport.batches == [["a"], ["b"]]  # nothing dropped, in order
    assert {problem for problem, _ in seen} <= {None, wrong, missing}
    assert not any(done for _, done in seen)  # nothing counted written while refused
    assert persister.problem is None
    assert persister.stats.retries == 12
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 2  # once for the 401 episode, once when it became a 404
    assert errors[0].startswith(wrong) and errors[1].startswith(missing)
    assert "not committed" in errors[0]
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 3  # refusals over; an outage starts; it ends
    assert "succeed again" in warnings[0] and "(8 retries)" in warnings[0]
    assert "write failed" in warnings[1]
    assert "succeed again" in warnings[2] and "(4 retries)" in warnings[2]
