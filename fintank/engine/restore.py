"""Read partitions back from their beginning to their end (as of the call), outside any group.

Used at assignment to restore tables from their changelogs and to replay
output topics (what was already emitted). One reader is reused for every
recovery: its connections are already open, which keeps a worker's first
batch close to its assignment.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from fintank.engine.kafka import TopicPartition


async def read_partitions(
    reader: Any, tps: Sequence[TopicPartition], timeout: float = 120.0
) -> dict[TopicPartition, list[Any]]:
    """Every record of each partition up to its end offset now (ConsumerRecords, in order)."""
    if not tps:
        return {}
    # Offsets first, then assign: an assigned partition is fetched at once, and a
    # long-poll fetch on the connection would delay the offset requests behind it.
    ends = await reader.end_offsets(list(tps))
    starts = await reader.beginning_offsets(list(tps))
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
