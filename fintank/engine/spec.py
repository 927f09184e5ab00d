"""What a topology declares to the engine: processing groups, their inputs, tables and processors.

A `Group` is a set of co-partitioned input topics processed together (Storm's
fields grouping; Kafka Streams calls it a sub-topology). For every partition
*p* of a group that the worker is assigned, the engine runs one `Processor`
in one task: it alone reads partition *p* of the group's inputs and writes
partition *p* of the group's tables, so no two tasks ever share state.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from fintank.engine.task import Batch, Context


@dataclass(frozen=True, slots=True)
class Table:
    """A keyed state table, changelogged to the compacted topic ``{app_id}-{name}-changelog``.

    ``from_json`` turns a value read back from the changelog (decoded JSON) into
    the record the processor stored; values whose type is ``kind`` are kept as is.
    """

    name: str
    from_json: Callable[[Any], Any]
    kind: type


class Processor(Protocol):
    """One partition's worth of a group: called by the engine in order, one call at a time."""

    async def recover(self, replayed: Mapping[str, Sequence[Any]]) -> None:
        """After the tables were restored: the records of the group's ``replay`` topics."""

    async def on_batch(self, batch: Batch) -> None:
        """Records fetched together from one input partition, in offset order."""

    async def on_clock(self, now: float) -> None:
        """Every ``Group.clock`` seconds (wall clock ``now``), between batches."""


@dataclass(frozen=True, slots=True)
class Group:
    """Co-partitioned inputs, the tables their processor keeps, and how to make the processor.

    ``replay``: topics whose partition *p* is read back to its end when partition
    *p* is assigned, before the first batch (``Processor.recover``): outputs as
    the record of what was already emitted.
    """

    name: str
    inputs: tuple[str, ...]
    processor: Callable[[Context], Processor]
    tables: tuple[Table, ...] = ()
    replay: tuple[str, ...] = ()
    clock: float | None = None
