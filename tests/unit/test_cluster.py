"""The local Kafka cluster's layout and configs (fintank.stack.cluster), without starting Java;
the replication settings and `fintank up --brokers` refusing what cannot work."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

import fintank.cli as cli
from fintank.config import PREFIX, Settings, servers
from fintank.errors import ConfigError, StackError
from fintank.stack import Stack, cluster


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No FINTANK_* setting of the person running the tests leaks in."""
    for name in list(os.environ):
        if name.startswith(PREFIX):
            monkeypatch.delenv(name)


def props(text: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in text.splitlines() if line and line[0] != "#")
    return {k: v for k, v in pairs}


# ---------------------------------------------------------------- layout
def test_three_nodes_have_their_own_ids_ports_and_folders(tmp_path: Path) -> None:
    nodes = cluster.nodes(tmp_path, 9092, 3)

    assert [n.node_id for n in nodes] == [1, 2, 3]
    assert [(n.port, n.controller) for n in nodes] == [(9092, 9093), (9102, 9103), (9112, 9113)]
    assert [n.home for n in nodes] == [
        tmp_path / "kafka",
        tmp_path / "kafka" / "node-2",
        tmp_path / "kafka" / "node-3",
    ]
    assert len({n.data for n in nodes}) == 3
    assert len({n.pid_file for n in nodes}) == 3
    ports = [p for n in nodes for p in (n.port, n.controller)]
    assert len(set(ports)) == len(ports)  # no node's controller is another node's broker


def test_one_node_is_where_the_single_broker_always_was(tmp_path: Path) -> None:
    [node] = cluster.nodes(tmp_path, 19092, 1)

    assert (node.port, node.controller) == (19092, 19093)
    assert node.pid_file == tmp_path / "kafka" / "kafka.pid"
    assert node.data == tmp_path / "kafka" / "data"
    assert node.log_file == tmp_path / "kafka" / "kafka.log"


@pytest.mark.parametrize("brokers", [0, -1, 10])
def test_a_broker_count_out_of_range_is_one_line(brokers: int, tmp_path: Path) -> None:
    with pytest.raises(StackError, match=r"^--brokers must be 1\.\.9, got -?\d+$"):
        cluster.nodes(tmp_path, 9092, brokers)


def test_ports_past_65535_are_refused_naming_the_setting(tmp_path: Path) -> None:
    with pytest.raises(StackError, match="FINTANK_KAFKA_PORT 65520") as err:
        cluster.nodes(tmp_path, 65520, 3)
    assert "\n" not in str(err.value)


def test_the_bootstrap_names_every_node_and_parses_as_fintank_broker(tmp_path: Path) -> None:
    nodes = cluster.nodes(tmp_path, 9092, 3)

    assert cluster.servers(nodes) == "127.0.0.1:9092,127.0.0.1:9102,127.0.0.1:9112"
    assert cluster.bootstrap(nodes) == "kafka://127.0.0.1:9092,127.0.0.1:9102,127.0.0.1:9112"
    assert servers(cluster.bootstrap(nodes)) == cluster.servers(nodes).split(",")


# ---------------------------------------------------------------- server.properties
def test_each_node_is_a_combined_voter_of_one_static_quorum(tmp_path: Path) -> None:
    nodes = cluster.nodes(tmp_path, 9092, 3)
    settings = Settings(replication_factor=3, min_insync_replicas=2)

    configs = [props(cluster.server_properties(n, nodes, settings)) for n in nodes]

    voters = "1@127.0.0.1:9093,2@127.0.0.1:9103,3@127.0.0.1:9113"
    for node, conf in zip(nodes, configs, strict=True):
        assert conf["process.roles"] == "broker,controller"
        assert conf["node.id"] == str(node.node_id)
        assert conf["controller.quorum.voters"] == voters
        assert conf["listeners"] == (
            f"PLAINTEXT://127.0.0.1:{node.port},CONTROLLER://127.0.0.1:{node.controller}"
        )
        assert conf["advertised.listeners"] == f"PLAINTEXT://127.0.0.1:{node.port}"
        assert conf["log.dirs"] == str(node.data)
        assert conf["default.replication.factor"] == "3"
        assert conf["min.insync.replicas"] == "2"
        assert conf["offsets.topic.replication.factor"] == "3"
        assert conf["transaction.state.log.replication.factor"] == "3"
        assert conf["transaction.state.log.min.isr"] == "2"
        assert conf["auto.create.topics.enable"] == "false"
    assert len({c["log.dirs"] for c in configs}) == 3


def test_a_single_node_keeps_its_config(tmp_path: Path) -> None:
    [node] = nodes = cluster.nodes(tmp_path, 9092, 1)

    conf = props(cluster.server_properties(node, nodes, Settings(partitions=6)))

    assert conf["node.id"] == "1"
    assert conf["controller.quorum.voters"] == "1@127.0.0.1:9093"
    assert conf["num.partitions"] == "6"
    assert conf["offsets.topic.replication.factor"] == "1"
    assert conf["min.insync.replicas"] == "1"


# ---------------------------------------------------------------- replication settings
def test_replication_defaults_to_one_copy() -> None:
    settings = Settings.from_env({})

    assert (settings.replication_factor, settings.min_insync_replicas) == (1, 1)


def test_replication_settings_are_read() -> None:
    env = {"FINTANK_REPLICATION_FACTOR": "3", "FINTANK_MIN_INSYNC_REPLICAS": "2"}

    settings = Settings.from_env(env)

    assert (settings.replication_factor, settings.min_insync_replicas) == (3, 2)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"FINTANK_REPLICATION_FACTOR": "3", "FINTANK_MIN_INSYNC_REPLICAS": "4"},
            "FINTANK_MIN_INSYNC_REPLICAS (4) must be <= FINTANK_REPLICATION_FACTOR (3)",
        ),
        (
            {"FINTANK_MIN_INSYNC_REPLICAS": "2"},
            "FINTANK_MIN_INSYNC_REPLICAS (2) must be <= FINTANK_REPLICATION_FACTOR (1)",
        ),
        ({"FINTANK_REPLICATION_FACTOR": "0"}, "FINTANK_REPLICATION_FACTOR must be >= 1, got 0"),
        ({"FINTANK_MIN_INSYNC_REPLICAS": "0"}, "FINTANK_MIN_INSYNC_REPLICAS must be >= 1, got 0"),
        ({"FINTANK_REPLICATION_FACTOR": "three"}, "FINTANK_REPLICATION_FACTOR must be an integer"),
    ],
)
def test_a_bad_replication_setting_is_one_line_naming_it(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        Settings.from_env(env)

    assert str(err.value).startswith(message)
    assert "\n" not in str(err.value)


def test_a_cluster_of_three_gets_three_copies_and_two_in_sync_unless_set() -> None:
    assert cluster.replicated_env({}, 3) == {
        "FINTANK_REPLICATION_FACTOR": "3",
        "FINTANK_MIN_INSYNC_REPLICAS": "2",
    }
    assert cluster.replicated_env({}, 5)["FINTANK_REPLICATION_FACTOR"] == "3"
    assert cluster.replicated_env({}, 2) == {
        "FINTANK_REPLICATION_FACTOR": "2",
        "FINTANK_MIN_INSYNC_REPLICAS": "1",
    }
    assert cluster.replicated_env({"X": "y"}, 1) == {"X": "y"}
    mine = {"FINTANK_REPLICATION_FACTOR": "2", "FINTANK_MIN_INSYNC_REPLICAS": "1"}
    assert cluster.replicated_env(mine, 3) == mine


def test_more_replicas_than_brokers_is_refused_naming_the_setting() -> None:
    with pytest.raises(StackError, match="^FINTANK_REPLICATION_FACTOR 3 needs as many brokers"):
        cluster.check_replication(Settings(replication_factor=3), 2)
    cluster.check_replication(Settings(replication_factor=3), 3)


# ---------------------------------------------------------------- the state folder
def test_the_cluster_size_is_recorded_and_found(tmp_path: Path) -> None:
    assert cluster.recorded_brokers(tmp_path) is None
    (tmp_path / "kafka" / "data").mkdir(parents=True)
    (tmp_path / "kafka" / "data" / "meta.properties").write_text("cluster.id=abc\nnode.id=1\n")
    assert cluster.recorded_brokers(tmp_path) == 1  # formatted by a fintank that wrote nothing

    cluster.record_brokers(tmp_path, 3)

    assert cluster.recorded_brokers(tmp_path) == 3
    assert cluster.cluster_id_of(cluster.nodes(tmp_path, 9092, 3)) == "abc"


def test_status_and_down_see_every_node_of_the_recorded_cluster(tmp_path: Path) -> None:
    cluster.record_brokers(tmp_path, 3)

    stack = Stack(Settings(state_dir=str(tmp_path), kafka_port=29092))

    assert [s.name for s in stack.services][:3] == ["kafka-1", "kafka-2", "kafka-3"]
    assert stack.kafka is stack.kafka_nodes[0]
    assert [s.pid_file for s in stack.kafka_nodes] == [n.pid_file for n in stack.nodes]
    assert "127.0.0.1:29112 (broker)" in stack.kafka_nodes[2].address


def _running(tmp_path: Path, brokers: int) -> None:
    """A cluster of ``brokers`` recorded under ``tmp_path`` whose node 1 "runs" (its pid
    file names this live process: nothing is started or signalled by the checks)."""
    cluster.record_brokers(tmp_path, brokers)
    (tmp_path / "kafka" / "kafka.pid").write_text(f"{os.getpid()}\n")


def test_another_size_than_the_running_cluster_is_refused(tmp_path: Path) -> None:
    _running(tmp_path, 3)

    with pytest.raises(StackError) as err:
        Stack(Settings(state_dir=str(tmp_path), kafka_port=29092), brokers=1).check_size()

    assert str(err.value) == (
        f"kafka: a 3-broker cluster runs under {tmp_path / 'kafka'}; "
        "stop it (fintank down) before starting 1"
    )


def test_another_size_than_the_stopped_cluster_is_refused(tmp_path: Path) -> None:
    cluster.record_brokers(tmp_path, 1)

    with pytest.raises(StackError, match=r"holds a 1-broker cluster; start it with --brokers 1"):
        Stack(Settings(state_dir=str(tmp_path), kafka_port=29092), brokers=3).check_size()


# ---------------------------------------------------------------- the command line
def up(tmp_path: Path, *args: str, **env: str) -> str:
    """`fintank up ARGS` with its state and ports out of everyone's way; its one error line."""
    base = {
        "FINTANK_STATE_DIR": str(tmp_path),
        "FINTANK_KAFKA_PORT": "29092",
        "FINTANK_BROKER": "kafka://127.0.0.1:29092",
        "FINTANK_INFLUX_PORT": "29086",
        "FINTANK_VICTORIA_PORT": "29428",
    }
    result = CliRunner().invoke(cli.main, ["up", *args], env={**base, **env})
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2, (result.exit_code, result.stderr, result.stdout)
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert not (tmp_path / "kafka" / "data").exists()  # nothing was started
    return lines[0]


def test_up_with_another_size_than_the_running_cluster_is_one_line(tmp_path: Path) -> None:
    _running(tmp_path, 3)

    line = up(tmp_path, "--brokers", "1")

    assert re.fullmatch(r"fintank: kafka: a 3-broker cluster runs under .*; stop it .*", line)


def test_up_with_more_replicas_than_brokers_is_one_line(tmp_path: Path) -> None:
    line = up(tmp_path, "--brokers", "2", FINTANK_REPLICATION_FACTOR="3")

    assert line == (
        "fintank: FINTANK_REPLICATION_FACTOR 3 needs as many brokers; "
        "fintank up starts 2 (--brokers)"
    )


def test_up_with_a_bad_min_insync_is_one_line(tmp_path: Path) -> None:
    line = up(tmp_path, "--brokers", "3", FINTANK_MIN_INSYNC_REPLICAS="4")

    assert line == (
        "fintank: FINTANK_MIN_INSYNC_REPLICAS (4) must be <= FINTANK_REPLICATION_FACTOR (3)"
    )


def test_up_with_too_many_brokers_is_one_line(tmp_path: Path) -> None:
    assert up(tmp_path, "--brokers", "12") == "fintank: --brokers must be 1..9, got 12"


# ---------------------------------------------------------------- docs/reliability.md
def test_every_test_the_replicated_kafka_section_names_exists() -> None:
    repo = Path(__file__).resolve().parents[2]
    text = (repo / "docs" / "reliability.md").read_text(encoding="utf-8")
    start = text.index("\n## Replicated Kafka\n")
    end = text.find("\n## ", start + 1)
    named = 0
    for row in text[start : end if end >= 0 else None].splitlines():
        current = None
        for ref in re.findall(r"`([\w/.]*::\w+)`", row):
            path, _, name = ref.partition("::")
            current = repo / path if path else current
            assert current is not None and current.is_file(), ref
            assert re.search(rf"^def {name}\(", current.read_text(), re.M), ref
            named += 1
    assert named >= 13
