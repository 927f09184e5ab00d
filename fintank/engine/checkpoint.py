"""Where recovery starts reading a task's replay topics: a checkpoint in the commit's metadata.

A task replays its own outputs (the ledger's executions and fills, the dead
letters) when it takes over a partition, to learn what its redelivered records
already did. Only the outputs of work *after* the last committed snapshot
matter: below the committed offsets nothing is redelivered. So each commit
carries, as Kafka's per-partition commit metadata, the offsets from which those
topics must be read back; one OffsetCommit writes offsets and metadata
together, so a checkpoint is never ahead of the offsets it belongs to.

The bound committed with snapshot N is taken from snapshots up to N-1
(docs/engine.md, "Bounded recovery"): records a producer delivered are
appended before anything it sends later, so 1 + the highest offset delivered
by snapshot N-1 is below every output of snapshot N (whose follow-up work,
such as a fill after its execution, may not be delivered when N commits) and
of all later work. Partitions a task has not written to yet are bounded by
their end offsets read at its recovery, before it sent anything.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from fintank.codec import JSONDecodeError, dumps, loads
from fintank.engine.kafka import TopicPartition

#: The metadata's marker and version; anything else (an empty string, another
#: tool's metadata) means "no checkpoint": replay from the beginning.
VERSION = "fintank/1"


def encode(bounds: Mapping[TopicPartition, int]) -> str:
    """``{"v": "fintank/1", "replay": {"topic": {"partition": offset}}}`` (sorted, compact)."""
    replay: dict[str, dict[str, int]] = {}
    for tp in sorted(bounds):
        replay.setdefault(tp.topic, {})[str(tp.partition)] = bounds[tp]
    return dumps({"v": VERSION, "replay": replay}).decode()


def decode(metadata: str | None) -> dict[TopicPartition, int]:
    """The bounds in ``metadata``; {} if it holds none (or not ours)."""
    if not metadata:
        return {}
    try:
        obj = loads(metadata)
    except JSONDecodeError:
        return {}
    if type(obj) is not dict or obj.get("v") != VERSION or type(obj.get("replay")) is not dict:
        return {}
    out: dict[TopicPartition, int] = {}
    for topic, parts in obj["replay"].items():
        if type(parts) is not dict:
            return {}
        for partition, offset in parts.items():
            if not partition.isdigit() or type(offset) is not int or offset < 0:
                return {}
            out[TopicPartition(topic, int(partition))] = offset
    return out


def lowest(checkpoints: Iterable[Mapping[TopicPartition, int]]) -> dict[TopicPartition, int]:
    """Per partition, the lowest bound that every checkpoint has (a partition missing from
    one of them is missing from the result: read it from its beginning)."""
    result: dict[TopicPartition, int] | None = None
    for bounds in checkpoints:
        if result is None:
            result = dict(bounds)
            continue
        result = {tp: min(off, bounds[tp]) for tp, off in result.items() if tp in bounds}
    return result or {}


def raised(bounds: dict[TopicPartition, int], more: Mapping[TopicPartition, int]) -> None:
    """Raise ``bounds`` to ``more`` where that is higher (bounds only ever move forward)."""
    for tp, off in more.items():
        if off > bounds.get(tp, -1):
            bounds[tp] = off
