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

import faust

from fintank.codec import CODEC_NAME, KEY_CODEC_NAME, dumps

V = TypeVar("V")


def codec_table(app: faust.App, name: str, partitions: int) -> Any:
    """A faust Table keyed by ``str`` whose changelog uses fintank's codecs.

    faust-streaming 0.15 takes a table's serializers from its key and value
    *types* only ("json" for ``str``) and ignores the schema's. JSON keys
    (``b'"VTI"'``) hash to other partitions than the raw keys fintank's records
    carry, and faust's table routing hashes the serialized key: half the
    requests went to a worker that does not own the key. So the serializers
    are set here, and the changelog topic (built when the table was added to
    the app) is built again with them.
    """
    schema: Any = faust.Schema(
        key_type=str, key_serializer=KEY_CODEC_NAME, value_serializer=CODEC_NAME
    )
    table: Any = app.Table(name, partitions=partitions, schema=schema)
    table.key_serializer = KEY_CODEC_NAME
    table.value_serializer = CODEC_NAME
    table._changelog_topic = None
    return table


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

    def all_keys(self) -> list[str]:
        """Every key held on this worker (a snapshot: safe to write while iterating)."""
        return list(self.table.data)

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

    def stage_delete(self, partition: int, key: str) -> None:
        """Remove ``key`` now; its changelog tombstone goes out at `publish`."""
        self.table.data.pop(key, None)
        self._staged[key] = partition

    def take(self) -> list[tuple[int, str, bytes | None]]:
        """Serialise every staged value now and unstage it: (partition, key, bytes or None).

        For a caller that sends the changelog later (`send_taken`) while later
        batches go on changing the same records.
        """
        staged, self._staged = self._staged, {}
        data = self.table.data
        taken = []
        for key, partition in staged.items():
            value = data.get(key)
            taken.append((partition, key, None if value is None else dumps(value)))
        return taken

    def send_taken(self, taken: list[tuple[int, str, bytes | None]]) -> list[Any]:
        """Append values taken earlier (`take`) to the changelog; None is a Kafka tombstone,
        as faust's own deletes send it.

        Returns the delivery futures.
        """
        return [
            self.table.send_changelog(partition, key, raw, value_serializer="raw")
            for partition, key, raw in taken
        ]

    def publish(self) -> None:
        """Append every staged value (its latest version, or a tombstone) to the changelog."""
        self.send_taken(self.take())
