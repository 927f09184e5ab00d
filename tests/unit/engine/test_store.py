"""A task's table partition: staged writes, serialised at the commit point, restored from JSON."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from fintank.codec import dumps
from fintank.engine.spec import Table
from fintank.engine.store import PartitionStore


@dataclass(frozen=True, slots=True)
class Point:
    x: int


def point_from_json(obj: dict[str, int]) -> Point:
    return Point(obj["x"])


TABLE = Table("points", point_from_json, Point)


def test_take_serialises_each_dirty_key_once_as_it_is_now() -> None:
    store = PartitionStore(TABLE, 3)
    store.stage(3, "a", Point(1))
    store.stage(3, "a", Point(2))
    store.stage(3, "b", Point(5))
    store.stage_delete(3, "b")

    taken = dict(store.take())

    assert taken == {"a": dumps(Point(2)), "b": None}
    assert store.take() == []  # nothing dirty any more


def test_a_write_after_take_does_not_change_what_was_taken() -> None:
    store = PartitionStore(TABLE, 0)
    store.stage(0, "a", Point(1))
    taken = store.take()

    store.stage(0, "a", Point(9))

    assert taken == [("a", dumps(Point(1)))]


def test_restore_applies_the_changelog_in_order_and_get_decodes_lazily() -> None:
    store = PartitionStore(TABLE, 0)
    store.restore(b"a", dumps(Point(1)))
    store.restore(b"b", dumps(Point(2)))
    store.restore(b"a", dumps(Point(3)))
    store.restore(b"b", None)  # a tombstone

    assert store.all_keys() == ["a"]
    assert store.get("a") == Point(3)
    assert type(store.data["a"]) is Point  # decoded once, then kept
    assert store.get("b") is None
    assert store.dirty == set()  # a restore is not a change to publish


def test_writing_another_partitions_state_is_refused() -> None:
    store = PartitionStore(TABLE, 1)

    with pytest.raises(ValueError, match="partition 2"):
        store.stage(2, "a", Point(1))
