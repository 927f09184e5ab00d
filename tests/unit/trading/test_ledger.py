"""Ledger: the rule engine's memory of what was already emitted (CONTRACT.md rule 6).

After a crash the ledger is rebuilt from the ``executions`` and ``fills``
topics (as JSON objects read back from Kafka). An execution without a fill
is returned once, so the caller sends its fill once; a second rebuild (or a
repeat of the same history) must not return it again.
"""

from __future__ import annotations

from typing import Any

import orjson

from fintank.codec import dumps
from fintank.trading.fills import fill_for
from fintank.trading.ledger import Ledger
from fintank.trading.matcher import execute
from fintank.trading.records import Execution
from tests.support.ticks import T0, tick
from tests.support.trading import component

NOW = T0 + 100


def execution(
    cid: str = "po-1/0", taxpayer_id: int | str = 42, order_type: str = "BUY"
) -> Execution:
    """The execution of a 500.0 VTI component ``cid`` at the default quote."""
    comp = component(component_order_id=cid, taxpayer_id=taxpayer_id, order_type=order_type)
    return execute(comp, tick(), NOW)


def as_json(record: Any) -> dict[str, Any]:
    """A record as read back from its topic: the wire bytes decoded."""
    obj: dict[str, Any] = orjson.loads(dumps(record))
    return obj


def fill_json(execution: Execution) -> dict[str, Any]:
    return as_json(fill_for(execution, NOW + 1))


def test_record_execution_keeps_it_by_component_id() -> None:
    # Arrange
    ledger = Ledger()
    done = execution("po-1/0")

    # Act
    ledger.record_execution(done)

    # Assert
    assert ledger.executions == {"po-1/0": done}
    assert ledger.filled == set()


def test_record_fill_marks_the_component_filled() -> None:
    ledger = Ledger()

    ledger.record_fill("po-1/0")
    ledger.record_fill("po-1/0")

    assert ledger.filled == {"po-1/0"}


def test_rebuild_returns_the_executions_whose_fill_is_missing() -> None:
    # Arrange
    ledger = Ledger()
    filled, unfilled = execution("po-1/0"), execution("po-1/1")

    # Act
    missing = ledger.rebuild([as_json(filled), as_json(unfilled)], [fill_json(filled)])

    # Assert
    assert missing == [unfilled]
    assert ledger.executions == {"po-1/0": filled, "po-1/1": unfilled}


def test_rebuild_reads_executions_back_exactly_as_they_were_sent() -> None:
    # 42 and "42" are echoed as given: the JSON round trip must keep the type.
    sent = [execution("a/0", taxpayer_id=42), execution("a/1", taxpayer_id="42", order_type="SELL")]
    ledger = Ledger()

    missing = ledger.rebuild([as_json(e) for e in sent], [])

    assert missing == sent
    assert [type(e.taxpayer_id) for e in missing] == [int, str]


def test_rebuild_claims_missing_fills_so_a_second_rebuild_returns_nothing() -> None:
    # The caller sends the missing fill once; the same history read again
    # (say a second assignment of the partition) must not ask for it again.
    ledger = Ledger()
    history = [as_json(execution("po-1/0"))]
    first = ledger.rebuild(history, [])

    second = ledger.rebuild(history, [])

    assert [e.component_order_id for e in first] == ["po-1/0"]
    assert second == []
    assert ledger.filled == {"po-1/0"}


def test_rebuild_of_a_complete_history_returns_nothing() -> None:
    ledger = Ledger()
    done = [execution("po-1/0"), execution("po-1/1")]

    missing = ledger.rebuild([as_json(e) for e in done], [fill_json(e) for e in done])

    assert missing == []
    assert ledger.filled == {"po-1/0", "po-1/1"}


def test_rebuild_of_an_empty_history_returns_nothing() -> None:
    ledger = Ledger()

    assert ledger.rebuild([], []) == []
    assert (ledger.executions, ledger.filled) == ({}, set())


def test_rebuild_merges_with_what_the_ledger_already_holds() -> None:
    # Arrange: one component executed and filled in memory, a second only on the topic.
    ledger = Ledger()
    in_memory, on_topic = execution("po-1/0"), execution("po-1/1")
    ledger.record_execution(in_memory)
    ledger.record_fill(in_memory.component_order_id)

    # Act
    missing = ledger.rebuild([as_json(on_topic)], [])

    # Assert
    assert missing == [on_topic]
    assert ledger.executions == {"po-1/0": in_memory, "po-1/1": on_topic}
    assert ledger.filled == {"po-1/0", "po-1/1"}


def test_rebuild_also_returns_an_unfilled_execution_recorded_before_it() -> None:
    # "Missing" is judged on the merged ledger, not on the history alone.
    ledger = Ledger()
    recorded = execution("po-1/0")
    ledger.record_execution(recorded)

    missing = ledger.rebuild([], [])

    assert missing == [recorded]
    assert ledger.rebuild([], []) == []


def test_a_fill_on_the_topic_completes_an_execution_recorded_in_memory() -> None:
    ledger = Ledger()
    recorded = execution("po-1/0")
    ledger.record_execution(recorded)

    missing = ledger.rebuild([], [fill_json(recorded)])

    assert missing == []


def test_a_history_holding_a_record_twice_keeps_one_entry_per_component() -> None:
    # Ids are deterministic: a repeat of the same execution or fill is the same entry.
    ledger = Ledger()
    done = execution("po-1/0")

    ledger.rebuild([as_json(done), as_json(done)], [fill_json(done), fill_json(done)])

    assert ledger.executions == {"po-1/0": done}
