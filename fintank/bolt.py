"""The one shape of a bolt: a batch in (plus ``now``), what it emits out.

A `Bolt` is a class whose instance owns one partition of its inputs (the
engine makes one per assigned partition). It holds its state in the tables
it declares (in-memory dicts, staged by the bolt and published by the
runtime), reads no clock and does no I/O: `process` returns an `Out`, and the
runtime sends what it says, in the order it says, with the guarantees of
docs/engine.md (outputs before state, state before offsets, fenced sends).

    class Spread(Bolt):
        inputs = ("ticks",)
        outputs = ("spreads",)

        def process(self, batch: Batch, now: float) -> Out:
            out = Out()
            for record in batch.records:
                tick = orjson.loads(record.value)
                out.emit("spreads", tick["symbol"], {"spread": tick["ask"] - tick["bid"]})
            return out
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

from fintank.codec import payload_text
from fintank.engine.spec import Table
from fintank.engine.store import PartitionStore
from fintank.engine.task import Batch
from fintank.records import DeadLetter, Emit

__all__ = ["Batch", "Bolt", "Out", "State", "Table"]


@dataclass(slots=True)
class Out:
    """What a bolt emits for one batch, clock tick or recovery.

    ``emits`` go to the outputs they name (each declared on the bolt), keyed;
    a value is JSON-encoded by fintank's codec (bytes are sent as they are).
    ``points`` are InfluxDB line-protocol lines. ``deadletters`` are
    (offset, letter) pairs judging records of the batch just processed: the
    runtime sends each once, across crashes. ``then`` runs once every emit
    above is delivered (called with the wall clock then, if it is a function):
    what must follow delivery, such as a fill after its execution, or the
    InfluxDB point of a record that must not exist without it.
    """

    emits: list[Emit] = field(default_factory=list)
    points: list[str] = field(default_factory=list)
    deadletters: list[tuple[int, DeadLetter]] = field(default_factory=list)
    then: Out | Callable[[float], Out] | None = None

    def emit(self, output: str, key: str, value: Any) -> None:
        """Emit ``value`` to ``output``, keyed by ``key``."""
        self.emits.append(Emit(output, key, value))

    def point(self, line: str) -> None:
        """Write ``line`` to InfluxDB."""
        self.points.append(line)

    def deadletter(self, offset: int, letter: DeadLetter) -> None:
        """Dead-letter the record at ``offset`` of the batch, with its reason in ``letter``."""
        self.deadletters.append((offset, letter))

    def extend(self, other: Out) -> Out:
        """Append ``other``'s emits, points and dead letters; chain its ``then`` after ours."""
        self.emits += other.emits
        self.points += other.points
        self.deadletters += other.deadletters
        if other.then is not None:
            self.then = other.then if self.then is None else _both(self.then, other.then)
        return self

    def __bool__(self) -> bool:
        return bool(self.emits or self.points or self.deadletters or self.then)


def _both(
    first: Out | Callable[[float], Out], second: Out | Callable[[float], Out]
) -> Callable[[float], Out]:
    def run(now: float) -> Out:
        out = Out()
        out.extend(first(now) if callable(first) else first)
        return out.extend(second(now) if callable(second) else second)

    return run


@dataclass(frozen=True, slots=True)
class State:
    """One partition's tables, as a bolt sees them (plain in-memory stores)."""

    partition: int
    tables: Mapping[str, PartitionStore]

    def table(self, name: str) -> PartitionStore:
        return self.tables[name]


class Bolt:
    """A Storm-style bolt: one partition's batches in, `Out` out. Subclass it.

    Declarations (class attributes):
    ``inputs``  the topology streams it reads; several must be co-partitioned
                (same key, same partition count): partition *p* of each reaches
                the same instance, and the runtime checks this at start-up;
    ``outputs`` the streams it may emit to (the runtime refuses any other);
    ``tables``  the state it keeps (`Table`), one partition per instance;
    ``replay``  outputs of its own read back when a partition is assigned,
                before its first batch (`recover`): what it already emitted;
    ``every``   seconds between `tick` calls (the wall clock), or None.
    """

    inputs: ClassVar[tuple[str, ...]] = ()
    outputs: ClassVar[tuple[str, ...]] = ()
    tables: ClassVar[tuple[Table, ...]] = ()
    replay: ClassVar[tuple[str, ...]] = ()
    every: ClassVar[float | None] = None

    def __init__(self, state: State) -> None:
        self.state = state
        self.partition = state.partition

    def table(self, name: str) -> PartitionStore:
        """This partition of the table ``name`` (declared in ``tables``)."""
        return self.state.table(name)

    def process(self, batch: Batch, now: float) -> Out:
        """Records fetched together from one partition of one input, in offset order."""
        raise NotImplementedError

    def tick(self, now: float) -> Out:
        """Every ``every`` seconds, between batches, once the inputs are caught up."""
        return Out()

    def recover(self, replayed: Mapping[str, Sequence[Any]], now: float) -> Out:
        """After the tables were restored: the records of each ``replay`` output, in order."""
        return Out()

    def stats(self) -> Mapping[str, int]:
        """Counters for ``GET /health`` (summed over this worker's instances of the bolt)."""
        return {}


def bolt_name(cls: type[Bolt]) -> str:
    """A bolt's name in its topology: its ``name`` attribute, else its class name, lower case."""
    name = getattr(cls, "name", None)
    return str(name) if isinstance(name, str) else cls.__name__.lower()


def declared(cls: type[Bolt], names: Iterable[str]) -> list[str]:
    """The names in ``names`` that ``cls`` does not declare as an output."""
    outputs = set(cls.outputs)
    return sorted({n for n in names if n not in outputs})


def decoded(
    batch: Batch, decode: Callable[[bytes], Any], now: float
) -> tuple[Batch, list[tuple[int, DeadLetter]]]:
    """``batch`` with each record's value decoded, and the records that did not decode as
    (offset, dead letter) pairs: what the runtime does for a stream with ``decode``."""
    kept = []
    failed = []
    for record in batch.records:
        try:
            kept.append(replace(record, value=decode(record.value)))
        except Exception as exc:  # noqa: BLE001 - any failure to decode is the record's fault
            reason = f"cannot decode a {batch.name} record: {exc}"
            failed.append(
                (record.offset, DeadLetter(batch.topic, reason, payload_text(record.value), now))
            )
    out = Batch(batch.topic, batch.partition, kept)
    out.name = batch.name
    return out, failed
