"""State of one table partition, held by the one task that owns the partition.

Values live in a dict. A write is *staged*: the value changes at once, and
the key is marked dirty. At a commit point the engine `take`s every dirty
key (serialised there and then, so later writes cannot leak in) and appends
them to the changelog partition, after the outputs that led to them were
delivered and before the input offsets are committed. So the changelog is
never ahead of what was emitted, and one record per key is written per
commit, not one per batch.

After a restore the values are decoded JSON; `get` turns each into its
record (``Table.from_json``) the first time it is read.
"""

from __future__ import annotations

from typing import Any

from fintank.codec import dumps, loads
from fintank.engine.spec import Table


class PartitionStore:
    """One partition of one `Table`: ``get``/``put``/``delete``, restored from its changelog."""

    __slots__ = ("table", "partition", "data", "dirty")

    def __init__(self, table: Table, partition: int) -> None:
        self.table = table
        self.partition = partition
        self.data: dict[str, Any] = {}
        self.dirty: set[str] = set()

    def get(self, key: str) -> Any:
        """The value for ``key``, or None."""
        value = self.data.get(key)
        if value is None or type(value) is self.table.kind:
            return value
        record = self.table.from_json(value)  # decoded JSON restored from the changelog
        self.data[key] = record
        return record

    def all_keys(self) -> list[str]:
        """Every key held (a snapshot: safe to write while iterating)."""
        return list(self.data)

    def __len__(self) -> int:
        return len(self.data)

    def stage(self, partition: int, key: str, value: Any) -> None:
        """Store ``value``; it reaches the changelog at the next commit point."""
        self._check(partition)
        self.data[key] = value
        self.dirty.add(key)

    set = stage  # the positions keeper calls it ``set``

    def put(self, key: str, value: Any) -> None:
        """`stage` in this store's own partition: what a bolt writes."""
        self.stage(self.partition, key, value)

    def delete(self, key: str) -> None:
        """`stage_delete` in this store's own partition."""
        self.stage_delete(self.partition, key)

    def stage_delete(self, partition: int, key: str) -> None:
        """Remove ``key``; its tombstone reaches the changelog at the next commit point."""
        self._check(partition)
        self.data.pop(key, None)
        self.dirty.add(key)

    def take(self) -> list[tuple[str, bytes | None]]:
        """Every dirty key with its value serialised now (None: a tombstone); clears the marks."""
        dirty, self.dirty = self.dirty, set()
        data = self.data
        out = []
        for key in dirty:
            value = data.get(key)
            out.append((key, None if value is None else dumps(value)))
        return out

    def restore(self, key: bytes | None, value: bytes | None) -> None:
        """Apply one changelog record (None value: a tombstone)."""
        if key is None:
            return
        name = key.decode("utf-8")
        if value is None:
            self.data.pop(name, None)
        else:
            self.data[name] = loads(value)

    def _check(self, partition: int) -> None:
        if partition != self.partition:
            raise ValueError(
                f"table {self.table.name!r}: partition {partition} written through "
                f"the store of partition {self.partition}"
            )
