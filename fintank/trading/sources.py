"""Components already taken in, known by where they came from (bounded, exact).

The Orders bolt sends a portfolio order's components again when the order is
delivered to it again (after a crash or a rebalance, before its offset was
committed), since it cannot know whether the first send arrived. Each
component carries the orders partition and offset it came from, and a
symbol's components from one orders partition arrive in offset order (one
producer, one partition; a re-send starts again from the committed offset).
So a component whose source offset is below the highest seen from its orders
partition, or equal to it with an id already seen, is a repeat.

The marks live in the symbol's book (`SymbolBook.taken`): one changelog record
holds both the resting components and what was taken in, so they never
disagree after a crash. Bounded by the orders partitions, where a set of
every component id grew forever. Market's own redelivery (its changelog
behind its committed offsets) is the ledger's to judge: recovery replays what
was executed since the last commit.
"""

from __future__ import annotations

from typing import Any, TypeAlias

from fintank.trading.records import ComponentOrder

#: (orders partition, highest source offset taken in, the component ids at that offset)
Taken: TypeAlias = tuple[tuple[int, int, tuple[str, ...]], ...]


def take_in(taken: Taken, comp: ComponentOrder) -> Taken | None:
    """``taken`` with ``comp`` noted if it is new; None if it is a repeat.

    A component without a source (written before sources existed) is always new:
    the ledger decides about it.
    """
    source, offset = comp.source_partition, comp.source_offset
    if source is None or offset is None:
        return taken
    cid = comp.component_order_id
    for partition, highest, ids in taken:
        if partition == source:
            if offset < highest or (offset == highest and cid in ids):
                return None
            if offset == highest:
                return _put(taken, source, offset, (*ids, cid))
    return _put(taken, source, offset, (cid,))


def _put(taken: Taken, source: int, offset: int, ids: tuple[str, ...]) -> Taken:
    return tuple(sorted((*(m for m in taken if m[0] != source), (source, offset, ids))))


def taken_from_json(obj: Any) -> Taken:
    return tuple((int(p), int(o), tuple(ids)) for p, o, ids in obj)
