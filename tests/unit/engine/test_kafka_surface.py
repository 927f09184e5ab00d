"""What fintank relies on from aiokafka and faust, pinned.

fintank's engine uses aiokafka's public consumer, producer, admin and
assignor interfaces (`fintank.engine.kafka` imports all of them) and one
private call (`topic_partitions`). faust is used for the worker, the web
server and services only, with its Kafka side switched off
(`fintank.runtime.NoKafka`). If an upgrade changes any of this, these tests
say where, before a worker does.
"""

from __future__ import annotations

import asyncio
import inspect
from importlib.metadata import version

from fintank.engine import kafka
from fintank.engine.assignor import CopartitionedAssignor


def test_the_pinned_versions_are_installed() -> None:
    assert version("aiokafka") == "0.14.0"
    assert version("faust-streaming") == "0.15.3"


def parameters(fn: object) -> list[str]:
    return list(inspect.signature(fn).parameters)  # type: ignore[arg-type]


def test_consumer_calls_the_engine_makes() -> None:
    c = kafka.AIOKafkaConsumer
    for name in (
        "start",
        "stop",
        "subscribe",
        "getmany",
        "pause",
        "resume",
        "assignment",
        "position",
        "committed",
        "commit",
        "beginning_offsets",
        "end_offsets",
        "assign",
        "seek",
        "highwater",
    ):
        assert callable(getattr(c, name)), name
    assert parameters(c.subscribe)[1:4] == ["topics", "pattern", "listener"]
    assert parameters(c.getmany)[1:] == ["partitions", "timeout_ms", "max_records"]
    assert parameters(c.commit)[1:] == ["offsets"]
    assert inspect.iscoroutinefunction(c.committed)
    assert inspect.iscoroutinefunction(c.position)
    assert not inspect.iscoroutinefunction(c.highwater)  # the last fetch's mark, no request


def test_the_admin_call_recovery_makes_returns_offsets_with_their_metadata() -> None:
    """Recovery reads the committed offsets *and* their metadata (the replay checkpoint,
    fintank.engine.checkpoint) in one request; the consumer's `committed` gives no metadata."""
    fn = kafka.AIOKafkaAdminClient.list_consumer_group_offsets
    assert inspect.iscoroutinefunction(fn)
    assert parameters(fn)[1:] == ["group_id", "group_coordinator_id", "partitions"]
    assert kafka.OffsetAndMetadata(5, "m").metadata == "m"


def test_the_clients_accept_fintanks_settings() -> None:
    async def build() -> None:
        settings = kafka.KafkaSettings("127.0.0.1:1", "pinned")
        consumer = kafka.group_consumer(settings, CopartitionedAssignor({"g": ("t",)}, "http://x"))
        assert consumer._enable_auto_commit is False  # noqa: SLF001 - pinned
        producer = kafka.producer(settings)
        assert producer._txn_manager is not None  # idempotence on: a transaction manager  # noqa: SLF001
        kafka.reader(settings)
        kafka.admin(settings)

    asyncio.run(build())


def test_rebalance_listener_and_assignor_interfaces() -> None:
    assert set(kafka.ConsumerRebalanceListener.__abstractmethods__) == {
        "on_partitions_revoked",
        "on_partitions_assigned",
    }
    assert {"name", "assign", "metadata", "on_assignment"} <= set(
        kafka.AbstractPartitionAssignor.__abstractmethods__
    )
    meta = kafka.ConsumerProtocolMemberMetadata(1, ["t"], b"x")
    assert (meta.version, meta.subscription, meta.user_data) == (1, ["t"], b"x")
    assignment = kafka.ConsumerProtocolMemberAssignment(1, [("t", [0, 2])], b"y")
    assert assignment.partitions() == [kafka.TopicPartition("t", 0), kafka.TopicPartition("t", 2)]
    assert assignment.user_data == b"y"


def test_the_coordinator_refuses_a_stale_members_commit_with_commit_failed() -> None:
    # Engine.fence relies on this mapping: a member the group moved on from gets
    # CommitFailedError, never a silent success.
    from aiokafka.consumer.group_coordinator import GroupCoordinator

    source = inspect.getsource(GroupCoordinator.commit_offsets)
    for error in ("UnknownMemberIdError", "IllegalGenerationError", "RebalanceInProgressError"):
        assert error in source
    assert "CommitFailedError" in source


def test_the_assignor_learns_the_assignment_before_the_listener_runs() -> None:
    # Engine.on_assigned reads the routing the assignor took from the assignment.
    from aiokafka.consumer.group_coordinator import GroupCoordinator

    source = inspect.getsource(GroupCoordinator._on_join_complete)  # noqa: SLF001
    assert source.index("assignor.on_assignment") < source.index("on_partitions_assigned")


def test_the_one_private_call_exists() -> None:
    from aiokafka.client import AIOKafkaClient

    assert inspect.iscoroutinefunction(AIOKafkaClient.fetch_all_metadata)
    assert "_client" in inspect.getsource(kafka.topic_partitions)


def test_faust_runs_no_kafka_client_of_its_own() -> None:
    from fintank.config import Settings
    from fintank.runtime import NoKafka, make_app

    app = make_app(Settings())
    assert isinstance(app.boot_strategy, NoKafka)
    assert app.boot_strategy.kafka_consumer() == []
    assert app.boot_strategy.kafka_producer() == []
    assert app.boot_strategy.tables() == []
    assert app.boot_strategy.kafka_conductor() == []


def test_no_fintank_module_reads_kafka_or_faust_internals_outside_the_adapter() -> None:
    from pathlib import Path

    root = Path(__file__).resolve().parents[3]
    private = (
        "._client",
        "._coordinator",
        "._fetcher",
        "._subscription",
        "_committed_offset",
        "_acked",
        "._thread",
        "flow_control",
    )
    offenders = []
    for path in [
        *root.joinpath("fintank").rglob("*.py"),
        *root.joinpath("topologies").rglob("*.py"),
    ]:
        if path.name == "kafka.py" and path.parent.name == "engine":
            continue
        text = path.read_text()
        if "sinks" in path.parts:
            continue  # the InfluxDB transports keep their own ``_client``
        offenders += [f"{path.relative_to(root)}: {p}" for p in private if p in text]
    assert offenders == []


def test_every_producer_fintank_makes_is_the_idempotent_all_acks_one() -> None:
    """Invariant 5: no module builds its own producer with other settings."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[3]
    builders = [
        str(path.relative_to(root))
        for path in [
            *root.joinpath("fintank").rglob("*.py"),
            *root.joinpath("topologies").rglob("*.py"),
        ]
        if "AIOKafkaProducer(" in path.read_text()
    ]
    assert builders == ["fintank/engine/kafka.py"]

    async def build() -> tuple[object, object]:
        p = kafka.producer(kafka.KafkaSettings("127.0.0.1:1", "x"), linger_ms=5)
        return p._sender._acks, p._txn_manager  # noqa: SLF001 - pinned

    acks, txn = asyncio.run(build())
    assert acks == -1  # "all"
    assert txn is not None
