"""The group assignor: co-partitioned inputs together, sticky, balanced, and who owns what.

Each processing group (`fintank.engine.spec.Group`) reads one or more topics
that share a partition count and a key (Storm's fields grouping): partition
*p* of all of them must go to one member, so that, say, a symbol's ticks and
its resting components meet in one task. The assignor hands out partition
*numbers* per group, and gives a member every input topic's partition *p*
for each number *p* it owns.

It is sticky: a member keeps the partitions it reported owning, up to its
fair share, so a second worker joining moves only what must move. Members
report their web address and the assignment epoch they last saw in their
subscription metadata; the leader puts everyone's address and the owner of
every partition of every group into each member's assignment. That map is
what HTTP routing (`/positions/{id}` on any worker) and peer discovery
(`/instruments`) read. The epoch (the highest reported, plus one) lets a
member tell whether an assignment directly follows the one it had.

Only aiokafka's documented assignor interface is used (`fintank.engine.kafka`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from fintank.engine.kafka import (
    AbstractPartitionAssignor,
    ClusterMetadata,
    ConsumerProtocolMemberAssignment,
    ConsumerProtocolMemberMetadata,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Routing:
    """Who owns which partition of each group, by web address (as the leader assigned it)."""

    epoch: int = 0
    urls: tuple[str, ...] = ()
    owners: Mapping[str, tuple[int, ...]] = field(default_factory=dict)  # group -> member index

    def owner(self, group: str, partition: int) -> str | None:
        """The web address of the member owning ``partition`` of ``group``, if any."""
        owners = self.owners.get(group, ())
        if partition >= len(owners) or owners[partition] < 0:
            return None
        return self.urls[owners[partition]]

    def partitions(self, group: str) -> int:
        """How many partitions ``group`` had when this routing was made (0 if unknown)."""
        return len(self.owners.get(group, ()))


def balance(
    partitions: int,
    members: Sequence[str],
    previous: Mapping[str, Iterable[int]],
    turn: int = 0,
) -> dict[int, str]:
    """Partition -> member: everyone gets ``partitions // len(members)`` or one more; a member
    keeps what it ``previous``-ly owned up to its share; the rest go to the least loaded.

    Deterministic for the same inputs (members in sorted order). ``turn``
    rotates which members get the extra partitions on a tie, so that several
    groups spread their extras over different members.
    """
    if not members:
        return {}
    members = sorted(members)
    base, extra = divmod(partitions, len(members))
    # The extra partitions go to the members that already hold the most.
    kept = {m: sorted({p for p in previous.get(m, ()) if 0 <= p < partitions}) for m in members}
    order = {m: (i - turn) % len(members) for i, m in enumerate(members)}
    by_holding = sorted(members, key=lambda m: (-len(kept[m]), order[m]))
    cap = {m: base + (1 if i < extra else 0) for i, m in enumerate(by_holding)}
    plan: dict[int, str] = {}
    load = dict.fromkeys(members, 0)
    for m in members:
        for p in kept[m]:
            if p not in plan and load[m] < cap[m]:
                plan[p] = m
                load[m] += 1
    for p in range(partitions):
        if p not in plan:
            m = min((m for m in members if load[m] < cap[m]), key=lambda m: (load[m], order[m]))
            plan[p] = m
            load[m] += 1
    return plan


class CopartitionedAssignor(AbstractPartitionAssignor):  # type: ignore[misc]
    """aiokafka assignor: per group, partition *p* of every input topic to one member."""

    name = "fintank-copartitioned"
    version = 1

    def __init__(self, groups: Mapping[str, Sequence[str]], url: str) -> None:
        self.groups = {name: tuple(topics) for name, topics in groups.items()}
        self.url = url
        self.routing = Routing()
        self.owned: dict[str, list[int]] = {}

    # aiokafka declares these as classmethods; an instance carries this member's state.
    def metadata(self, topics: Iterable[str]) -> ConsumerProtocolMemberMetadata:
        data = {"url": self.url, "epoch": self.routing.epoch, "owned": self.owned}
        return ConsumerProtocolMemberMetadata(self.version, sorted(topics), orjson.dumps(data))

    def assign(
        self,
        cluster: ClusterMetadata,
        members: Mapping[str, ConsumerProtocolMemberMetadata],
    ) -> dict[str, ConsumerProtocolMemberAssignment]:
        info = {m: _member_info(meta.user_data) for m, meta in members.items()}
        member_ids = sorted(members)
        index = {m: i for i, m in enumerate(member_ids)}
        epoch = max((int(i.get("epoch", 0)) for i in info.values()), default=0) + 1
        topics_of: dict[str, dict[str, list[int]]] = {m: {} for m in member_ids}
        owners: dict[str, list[int]] = {}
        for turn, (group, topics) in enumerate(self.groups.items()):
            n = _partition_count(cluster, group, topics)
            subscribed = [m for m in member_ids if set(topics) <= set(members[m].subscription)]
            previous = {m: info[m].get("owned", {}).get(group, ()) for m in subscribed}
            plan = balance(n, subscribed, previous, turn)
            owners[group] = [index[plan[p]] if p in plan else -1 for p in range(n)]
            for p, m in sorted(plan.items()):
                for topic in topics:
                    topics_of[m].setdefault(topic, []).append(p)
        urls = [str(info[m].get("url", "")) for m in member_ids]
        out = {}
        for m in member_ids:
            data = {"epoch": epoch, "urls": urls, "owners": owners, "me": index[m]}
            out[m] = ConsumerProtocolMemberAssignment(
                self.version, sorted(topics_of[m].items()), orjson.dumps(data)
            )
        return out

    def on_assignment(self, assignment: ConsumerProtocolMemberAssignment) -> None:
        data = _member_info(assignment.user_data)
        owners = {g: tuple(int(i) for i in o) for g, o in data.get("owners", {}).items()}
        me = int(data.get("me", -1))
        self.routing = Routing(int(data.get("epoch", 0)), tuple(data.get("urls", ())), owners)
        self.owned = {g: [p for p, i in enumerate(o) if i == me] for g, o in owners.items()}


def _member_info(raw: bytes | None) -> dict[str, Any]:
    if not raw:
        return {}
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return {}
    return data if isinstance(data, dict) else {}


def _partition_count(cluster: ClusterMetadata, group: str, topics: Sequence[str]) -> int:
    counts = {t: len(cluster.partitions_for_topic(t) or ()) for t in topics}
    if len(set(counts.values())) > 1:
        # The engine checks this at start-up with a clear error; if a topic
        # changed since, assign only the partitions every input has.
        log.error("group %s: its input topics are not co-partitioned: %s", group, counts)
    return min(counts.values(), default=0)
