"""Read partitions back to their end (as of the call), outside any group.

Used at assignment to restore tables from their changelogs and to replay
output topics (what was already emitted). One reader is reused for every
recovery: its connections are already open, which keeps a worker's first
batch close to its assignment.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

from fintank.engine.kafka import TopicPartition


async def read_partitions(
    reader: Any,
    tps: Sequence[TopicPartition],
    timeout: float = 120.0,
    starts: Mapping[TopicPartition, int] | None = None,
    ends: dict[TopicPartition, int] | None = None,
    also_ends: Sequence[TopicPartition] = (),
) -> dict[TopicPartition, list[Any]]:
    """Every record of each partition up to its end offset now (ConsumerRecords, in order).

    ``starts``: where to start reading some partitions (not before their first
    offset); ``ends``: filled with the end offsets read, those of ``also_ends`` (not
    read) too, in the same request.
    """
    if not tps and not also_ends:
        return {}
    # Offsets first, then assign: an assigned partition is fetched at once, and a
    # long-poll fetch on the connection would delay the offset requests behind it.
    end_offsets = await reader.end_offsets([*tps, *also_ends])
    if ends is not None:
        ends.update(end_offsets)
    ends = end_offsets
    firsts = await reader.beginning_offsets(list(tps))
    starts = {tp: max(firsts[tp], (starts or {}).get(tp, 0)) for tp in tps}
    todo = {tp for tp in tps if ends[tp] > starts[tp]}
    out: dict[TopicPartition, list[Any]] = {tp: [] for tp in tps}
    if not todo:
        return out
    reader.assign(sorted(todo))
    try:
        for tp in todo:
            reader.seek(tp, starts[tp])
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while todo:
            if loop.time() > deadline:
                raise TimeoutError(
                    f"reading back {sorted(todo)} did not reach the end in {timeout}s"
                )
            fetched = await reader.getmany(*todo, timeout_ms=200)
            for tp, records in fetched.items():
                end = ends[tp]
                out[tp] += (r for r in records if r.offset < end)
            for tp in list(todo):
                if await reader.position(tp) >= ends[tp]:
                    todo.discard(tp)
    finally:
        reader.assign([])
    return out
