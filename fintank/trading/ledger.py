"""What has already been emitted: the rule engine's memory for exactly-once output.

Kafka is at-least-once: after a crash, records whose offsets were not yet
committed come again, and table changelogs may or may not hold their
effects. Outputs are the only trustworthy record of what happened, so the
ledger is rebuilt from the ``executions`` and ``fills`` topics themselves
(`rebuild`) whenever a worker takes over a partition. Components and their
outputs share a partition number (all keyed by symbol, same partition
count), so one partition's history is enough to know that partition's
components. Ids are deterministic, so "already emitted" is a dict lookup.

Bounded: recovery replays only what was emitted since the last commit
(fintank.engine.checkpoint), re-sent components are recognised by their source
(fintank.trading.sources), and once a task has caught up with its inputs
(`forget_old`, called on the Market's clock) nothing redelivered is left to
judge, so entries older than two clock ticks are dropped.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from fintank.trading.records import Execution, execution_from_json


@dataclass(slots=True)
class Ledger:
    """Executions emitted so far (by component id), and the component ids whose fill was emitted."""

    executions: dict[str, Execution] = field(default_factory=dict)
    filled: set[str] = field(default_factory=set)
    # What `forget_old` drops next: the entries older than the last call.
    _older: set[str] = field(default_factory=set)

    def forget_old(self) -> int:
        """Drop what was recorded before the previous call (the caller knows no redelivered
        record is left to judge); returns how many ids were dropped."""
        old = self._older
        for cid in old:
            self.executions.pop(cid, None)
            self.filled.discard(cid)
        self._older = set(self.executions) | self.filled
        return len(old)

    def record_execution(self, execution: Execution) -> None:
        self.executions[execution.component_order_id] = execution

    def record_fill(self, component_order_id: str) -> None:
        self.filled.add(component_order_id)

    def rebuild(
        self, executions: Iterable[dict[str, Any]], fills: Iterable[dict[str, Any]]
    ) -> list[Execution]:
        """Merge one partition's topic history; return the executions whose fill is missing.

        A crash between sending an execution and its fill leaves an execution
        without a fill: the caller sends ``fill_for`` those (once), so every
        component still ends with exactly one execution and one fill.
        """
        for obj in executions:
            self.record_execution(execution_from_json(obj))
        for obj in fills:
            self.record_fill(obj["component_order_id"])
        missing = [e for cid, e in self.executions.items() if cid not in self.filled]
        for execution in missing:
            self.record_fill(execution.component_order_id)  # claimed: the caller sends it once
        return missing
