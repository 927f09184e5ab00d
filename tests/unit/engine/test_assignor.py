"""The co-partitioning assignor: balanced, sticky, partition p of a group's inputs together."""

from __future__ import annotations

from collections import Counter

import orjson
from hypothesis import given
from hypothesis import strategies as st

from fintank.engine.assignor import CopartitionedAssignor, Routing, balance
from fintank.engine.kafka import ConsumerProtocolMemberMetadata

members_st = st.lists(st.sampled_from("abcdefgh"), min_size=1, max_size=6, unique=True)


@given(
    partitions=st.integers(0, 24),
    members=members_st,
    previous=st.dictionaries(st.sampled_from("abcdefgh"), st.lists(st.integers(-2, 30))),
)
def test_balance_gives_every_partition_one_owner_and_loads_differ_by_at_most_one(
    partitions: int, members: list[str], previous: dict[str, list[int]]
) -> None:
    plan = balance(partitions, members, previous)

    assert sorted(plan) == list(range(partitions))
    assert set(plan.values()) <= set(members)
    loads = Counter(plan.values())
    counts = [loads.get(m, 0) for m in members]
    assert max(counts) - min(counts) <= 1


@given(partitions=st.integers(1, 24), members=members_st)
def test_balance_is_sticky_a_stable_group_keeps_its_plan(
    partitions: int, members: list[str]
) -> None:
    first = balance(partitions, members, {})
    owned = {m: [p for p, o in first.items() if o == m] for m in members}

    assert balance(partitions, members, owned) == first


@given(partitions=st.integers(1, 24), members=members_st, newcomer=st.sampled_from("xyz"))
def test_a_joining_member_takes_partitions_only_from_the_others_surplus(
    partitions: int, members: list[str], newcomer: str
) -> None:
    before = balance(partitions, members, {})
    owned = {m: [p for p, o in before.items() if o == m] for m in members}

    after = balance(partitions, [*members, newcomer], owned)

    moved = [p for p in range(partitions) if after[p] != before[p]]
    assert all(after[p] == newcomer for p in moved)  # nobody swaps among the old members
    assert len(moved) == Counter(after.values()).get(newcomer, 0)


class Cluster:
    def __init__(self, counts: dict[str, int]) -> None:
        self.counts = counts

    def partitions_for_topic(self, topic: str) -> set[int] | None:
        n = self.counts.get(topic)
        return None if n is None else set(range(n))


def join(assignor: CopartitionedAssignor, topics: list[str]) -> ConsumerProtocolMemberMetadata:
    return assignor.metadata(topics)


def test_partition_p_of_every_input_of_a_group_goes_to_one_member() -> None:
    groups = {"market": ["ticks", "components"], "orders": ["orders"]}
    a = CopartitionedAssignor(groups, "http://a:1")
    b = CopartitionedAssignor(groups, "http://b:1")
    topics = ["ticks", "components", "orders"]
    cluster = Cluster({"ticks": 4, "components": 4, "orders": 2})

    plan = a.assign(cluster, {"m-a": join(a, topics), "m-b": join(b, topics)})

    for member_id, assignment in plan.items():
        by_topic = dict(assignment.assignment)
        assert by_topic.get("ticks") == by_topic.get("components"), member_id
    all_ticks = sorted(
        p for asg in plan.values() for t, ps in asg.assignment if t == "ticks" for p in ps
    )
    assert all_ticks == [0, 1, 2, 3]


def test_every_member_learns_who_owns_every_partition_and_its_own_share() -> None:
    groups = {"positions": ["fintank-positions"]}
    a = CopartitionedAssignor(groups, "http://a:1")
    b = CopartitionedAssignor(groups, "http://b:1")
    topics = ["fintank-positions"]
    plan = a.assign(
        Cluster({"fintank-positions": 4}), {"m-a": join(a, topics), "m-b": join(b, topics)}
    )

    a.on_assignment(plan["m-a"])
    b.on_assignment(plan["m-b"])

    assert a.routing == b.routing
    owners = [a.routing.owner("positions", p) for p in range(4)]
    assert sorted(set(owners)) == ["http://a:1", "http://b:1"]
    assert sorted(a.owned["positions"] + b.owned["positions"]) == [0, 1, 2, 3]
    assert all(owners[p] == "http://a:1" for p in a.owned["positions"])


def test_the_epoch_moves_past_the_highest_any_member_reports() -> None:
    groups = {"g": ["t"]}
    a = CopartitionedAssignor(groups, "http://a:1")
    a.routing = Routing(epoch=7)
    b = CopartitionedAssignor(groups, "http://b:1")

    plan = b.assign(Cluster({"t": 2}), {"m-a": join(a, ["t"]), "m-b": join(b, ["t"])})

    assert orjson.loads(plan["m-a"].user_data)["epoch"] == 8


def test_members_keep_what_they_reported_owning() -> None:
    groups = {"g": ["t"]}
    a = CopartitionedAssignor(groups, "http://a:1")
    b = CopartitionedAssignor(groups, "http://b:1")
    a.owned = {"g": [2, 3]}
    b.owned = {"g": [0, 1]}

    plan = a.assign(Cluster({"t": 4}), {"m-a": join(a, ["t"]), "m-b": join(b, ["t"])})

    assert dict(plan["m-a"].assignment) == {"t": [2, 3]}
    assert dict(plan["m-b"].assignment) == {"t": [0, 1]}


def test_a_member_not_subscribed_to_a_group_gets_none_of_it() -> None:
    groups = {"g": ["t"], "h": ["u"]}
    a = CopartitionedAssignor(groups, "http://a:1")
    b = CopartitionedAssignor(groups, "http://b:1")

    plan = a.assign(Cluster({"t": 2, "u": 2}), {"m-a": join(a, ["t", "u"]), "m-b": join(b, ["t"])})

    assert "u" not in dict(plan["m-b"].assignment)
    assert dict(plan["m-a"].assignment)["u"] == [0, 1]


def test_routing_before_any_assignment_knows_no_owner() -> None:
    assert Routing().owner("g", 0) is None
    assert Routing().partitions("g") == 0
