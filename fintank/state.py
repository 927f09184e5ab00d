"""Faust tables written with an explicit partition.

A faust ``Table`` picks the changelog partition from the *current event*
(``Table.partition_for_key``) and refuses writes outside one. fintank's
agents receive whole record batches (`fintank.batching`), not faust events,
and always know the partition the state belongs to, so they write through
`StateTable`: the value goes into the table's local store and its changelog
partition is given explicitly. Faust still owns the rest: the changelog
topic, recovery on start and rebalance, and standby replicas.

Values are fintank records; the changelog holds their JSON (our orjson
codec), so after recovery the store holds dicts until first read, when
``from_json`` turns them back into records.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

V = TypeVar("V")


class StateTable(Generic[V]):
    """A typed view of a faust Table keyed by ``str``, written with `set(partition, key, value)`."""

    def __init__(self, table: Any, from_json: Callable[[dict[str, Any]], V], kind: type) -> None:
        self.table = table
        self.from_json = from_json
        self.kind = kind
        self._staged: dict[str, int] = {}

    def get(self, key: str) -> V | None:
        """The value for ``key`` on this worker, or None."""
        data = self.table.data
        value = data.get(key)
        if value is None or type(value) is self.kind:
            return value  # type: ignore[return-value]
        record = self.from_json(value)  # a dict restored from the changelog
        data[key] = record
        return record

    def set(self, partition: int, key: str, value: V) -> None:
        """Store ``value`` and append it to the changelog partition ``partition``."""
        self.table.data[key] = value
        self.table.send_changelog(partition, key, value)

    def stage(self, partition: int, key: str, value: V) -> None:
        """Store ``value`` now, but append it to the changelog only at `publish`.

        For state whose changelog must not get ahead of an output: the caller
        publishes after the output was delivered (see topologies/fintank.py).
        """
        self.table.data[key] = value
        self._staged[key] = partition

    def publish(self) -> None:
        """Append every staged value (its latest version) to the changelog."""
        staged, self._staged = self._staged, {}
        data = self.table.data
        for key, partition in staged.items():
            self.table.send_changelog(partition, key, data[key])
