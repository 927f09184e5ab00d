"""The replay checkpoint carried in commit metadata (fintank.engine.checkpoint)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from fintank.engine import checkpoint
from fintank.engine.kafka import TopicPartition

tps = st.builds(
    TopicPartition, st.sampled_from(["executions", "fills", "dead letters"]), st.integers(0, 64)
)
bounds = st.dictionaries(tps, st.integers(0, 2**62))


@given(bounds)
def test_a_checkpoint_reads_back_as_written(b: dict[TopicPartition, int]) -> None:
    assert checkpoint.decode(checkpoint.encode(b)) == b


@given(bounds)
def test_it_fits_kafkas_default_metadata_limit_for_a_task(b: dict[TopicPartition, int]) -> None:
    few = dict(list(b.items())[:12])  # a task tracks its replay topics and the dead letters
    assert len(checkpoint.encode(few).encode()) < 4096  # offset.metadata.max.bytes


def test_metadata_that_is_not_a_checkpoint_means_replay_everything() -> None:
    for metadata in (
        None,
        "",
        "x",
        "[]",
        '{"v":"other"}',
        '{"v":"fintank/1","replay":[]}',
        '{"v":"fintank/1","replay":{"t":{"a":1}}}',
        '{"v":"fintank/1","replay":{"t":{"0":-1}}}',
        '{"v":"fintank/1","replay":{"t":{"0":1.5}}}',
    ):
        assert checkpoint.decode(metadata) == {}, metadata


def test_lowest_keeps_only_what_every_checkpoint_bounds() -> None:
    a, b = TopicPartition("x", 0), TopicPartition("y", 0)
    assert checkpoint.lowest([{a: 5, b: 7}, {a: 3}]) == {a: 3}
    assert checkpoint.lowest([{a: 5}, {}]) == {}
    assert checkpoint.lowest([]) == {}


def test_raised_only_moves_forward() -> None:
    a = TopicPartition("x", 0)
    bounds = {a: 5}
    checkpoint.raised(bounds, {a: 3})
    assert bounds == {a: 5}
    checkpoint.raised(bounds, {a: 9, TopicPartition("y", 1): 2})
    assert bounds == {a: 9, TopicPartition("y", 1): 2}
