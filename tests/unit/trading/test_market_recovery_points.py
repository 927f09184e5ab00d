"""After a crash, the Market writes the InfluxDB points of what it replays again: a crash
between a record's delivery and its point's write must not lose the point, and the same
tags and time make the second write an overwrite (at least once, never twice)."""

from __future__ import annotations

from dataclasses import replace

from fintank.bolts import Market
from fintank.codec import dumps
from fintank.testing import Harness, Record
from fintank.trading import fill_for
from fintank.trading.points import execution_line, fill_line
from tests.unit.trading.test_records import EXECUTION


def test_replayed_executions_and_fills_have_their_points_written_again() -> None:
    filled = EXECUTION
    unfilled = replace(EXECUTION, component_order_id="po-1/9", execution_id="po-1/9/x")
    fill = fill_for(filled, filled.timestamp + 0.001)
    replayed = {
        "executions": [
            Record("executions", 0, i, None, dumps(e)) for i, e in enumerate([filled, unfilled])
        ],
        "fills": [Record("fills", 0, 0, None, dumps(fill)), Record("fills", 0, 1, None, b"junk")],
    }

    out = Harness(Market).recover(replayed, now=filled.timestamp + 5)

    assert out.points[:3] == [execution_line(filled), execution_line(unfilled), fill_line(fill)]
    assert [e.value.component_order_id for e in out.emits] == ["po-1/9"]  # its missing fill
