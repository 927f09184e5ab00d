"""The public API: a topology says what does not fit together; a bolt runs without a broker."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from fintank import Batch, Bolt, Out, Table, Topology, TopologyError
from fintank.config import Settings
from fintank.engine import Engine, EngineConfig, EngineError
from fintank.runtime import build, groups
from fintank.testing import Harness
from tests.support.broker import FakeBroker, FakeClients, FakePersister

COUNTS = Table("counts", int, int)


class Count(Bolt):
    """Counts records per key; emits each new count."""

    inputs = ("words",)
    outputs = ("counts",)
    tables = (COUNTS,)

    def process(self, batch: Batch, now: float) -> Out:
        out = Out()
        counts = self.table("counts")
        for record in batch.records:
            word = record.value["word"]
            n = (counts.get(word) or 0) + 1
            counts.put(word, n)
            out.emit("counts", word, {"word": word, "n": n})
        return out


class Join(Bolt):
    inputs = ("words", "users")
    outputs = ("counts",)

    def process(self, batch: Batch, now: float) -> Out:
        return Out()


class Stray(Bolt):
    inputs = ("words",)
    outputs = ("counts",)

    def process(self, batch: Batch, now: float) -> Out:
        out = Out()
        out.emit("elsewhere", "k", 1)
        return out


def words() -> Topology:
    topology = Topology("words")
    topology.stream("words", decode=orjson.loads, key="word")
    topology.stream("counts", key="word")
    topology.stream("deadletters", key="source_topic")
    topology.bolt(Count)
    return topology


def test_a_topology_that_fits_has_no_problems_and_names_its_inputs_and_outputs() -> None:
    topology = words()
    assert topology.problems() == []
    assert topology.inputs() == ["words"]
    assert topology.outputs() == ["counts", "deadletters"]  # undecodable words go there


def test_each_problem_is_one_sentence_naming_what_and_where() -> None:
    topology = Topology("broken")
    topology.stream("words", key="word")
    topology.stream("users", key="user")
    topology.stream("unused")
    topology.bolt(Join)
    topology.route("/x", lambda bolt, request: None, owner=Join)
    assert topology.problems() == [
        "bolt 'join' writes 'counts', which is not a declared stream",
        "bolt 'join' meets words (key=word), users (key=user) by partition number: "
        "they must share one key",
        "stream 'unused' is declared but no bolt reads or writes it",
        "route '/x': give both owner and key, or neither",
    ]
    with pytest.raises(TopologyError, match="topology 'broken': bolt 'join' writes"):
        topology.check()


def test_declaring_a_stream_or_a_bolt_twice_or_a_bolt_reading_nothing_is_refused() -> None:
    topology = words()
    with pytest.raises(TopologyError, match="stream 'words' is declared twice"):
        topology.stream("words")
    with pytest.raises(TopologyError, match="bolt 'count' is declared twice"):
        topology.bolt(Count)

    class Idle(Bolt):
        pass

    with pytest.raises(TopologyError, match="bolt 'idle' reads nothing"):
        topology.bolt(Idle)


def test_a_topology_that_decodes_needs_a_deadletters_stream() -> None:
    topology = Topology("words")
    topology.stream("words", decode=orjson.loads)
    topology.stream("counts")
    topology.bolt(Count)
    with pytest.raises(TopologyError, match="no .deadletters. stream is declared"):
        build(topology, Settings())


def test_the_harness_decodes_dead_letters_and_restores_tables_through_their_changelog() -> None:
    h = Harness(Count, decode={"words": orjson.loads})
    out = h.feed("words", [b'{"word": "a"}', b"not json", b'{"word": "a"}'], now=5.0)
    assert [(e.key, e.value["n"]) for e in out.emits] == [("a", 1), ("a", 2)]
    [(offset, letter)] = out.deadletters
    assert offset == 1
    assert letter.reason.startswith("cannot decode a words record:")
    assert (letter.source_topic, letter.payload, letter.timestamp) == ("words", "not json", 5.0)
    again = h.restarted()
    assert again.table("counts") == {"a": 2}
    assert [e.value["n"] for e in again.feed("words", [b'{"word": "a"}'], now=6.0).emits] == [3]


def test_an_emit_to_an_undeclared_output_is_refused() -> None:
    with pytest.raises(TopologyError, match="bolt 'stray' emitted to 'elsewhere'"):
        Harness(Stray).feed("words", [b"x"], now=1.0)


def test_the_engine_refuses_to_start_when_inputs_met_by_partition_differ_in_count() -> None:
    topology = Topology("join")
    topology.stream("words")
    topology.stream("users")
    topology.stream("counts")
    topology.bolt(Join)
    broker = FakeBroker()
    broker.create("words", 4)
    broker.create("users", 2)
    engine = Engine(
        EngineConfig(app_id="join", deadletters=None),
        groups(topology),
        {"counts": "counts"},
        FakePersister(),
        FakeClients(broker, "w0"),
        "http://w0",
    )
    with pytest.raises(EngineError, match=r"group 'join': its inputs must have one partition"):
        asyncio.run(engine.prepare_topics())
