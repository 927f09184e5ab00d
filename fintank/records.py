"""Records shared by every topology: ticks, dead letters, and what a bolt emits.

Records are frozen slotted dataclasses; `fintank.codec` turns them into the
JSON of CONTRACT.md (orjson serialises dataclasses natively, in field order).
Trading and analytics records live beside their bolts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(slots=True, unsafe_hash=True)
class Tick:
    """A valid quote (CONTRACT.md `ticks`). Prices are always floats, even if sent as integers.

    Immutable by convention (and hashable), not ``frozen``: one is built per
    tick on the hottest path, and a frozen dataclass's ``__init__``
    (``object.__setattr__`` per field) costs 0.8 µs against 0.2 µs, a third of
    parsing a tick.
    """

    symbol: str
    exchange: str
    bid: float
    ask: float
    timestamp: float
    bid_size: float | None = None
    ask_size: float | None = None

    @property
    def mid(self) -> float:
        return (self.bid + self.ask) / 2


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A record fintank could not accept (CONTRACT.md `deadletters`), keyed by its source topic.

    ``source_partition`` and ``source_offset`` (optional fields, a contract
    extension) say which input record it judges: the engine reads them back
    after a crash so that a redelivered record is not dead-lettered twice.
    """

    source_topic: str
    reason: str
    payload: str
    timestamp: float
    source_partition: int | None = None
    source_offset: int | None = None


@dataclass(frozen=True, slots=True)
class Emit:
    """One record a bolt emits.

    ``output`` is a logical output name, equal to a field of `fintank.config.Topics`
    ("executions", "deadletters", ...); the topology maps it to the configured topic.
    """

    output: str
    key: str
    value: Any
