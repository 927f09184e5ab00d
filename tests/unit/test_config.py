"""Settings come from FINTANK_* variables and fail with one line naming the variable."""

import pytest

from fintank.config import Settings
from fintank.errors import ConfigError


def test_defaults_are_valid() -> None:
    settings = Settings.from_env({})

    assert settings.bootstrap == "127.0.0.1:9092"
    assert settings.topics.ticks == "ticks"


def test_values_and_topic_names_are_read() -> None:
    settings = Settings.from_env(
        {
            "FINTANK_BATCH_SIZE": "100",
            "FINTANK_TOPIC_TICKS": "quotes",
            "FINTANK_FLUSH_INTERVAL": "2",
        }
    )

    assert (settings.batch_size, settings.topics.ticks, settings.flush_interval) == (
        100,
        "quotes",
        2.0,
    )


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"FINTANK_BATCH_SIZE": "many"}, "FINTANK_BATCH_SIZE must be an integer, got 'many'"),
        ({"FINTANK_FLUSH_INTERVAL": "soon"}, "FINTANK_FLUSH_INTERVAL must be a number"),
        ({"FINTANK_BROKER": "localhost:9092"}, "FINTANK_BROKER must look like kafka://host:port"),
        ({"FINTANK_INFLUX_TRANSPORT": "v3"}, "FINTANK_INFLUX_TRANSPORT must be v1 or v2"),
        ({"FINTANK_PARTITIONS": "0"}, "FINTANK_PARTITIONS must be >= 1"),
        ({"FINTANK_WEB_PORT": "70000"}, "FINTANK_WEB_PORT must be a port"),
        ({"FINTANK_TOPIC_FILLS": " "}, "FINTANK_TOPIC_FILLS must not be empty"),
        (
            {"FINTANK_BATCH_SIZE": "10", "FINTANK_MAX_BUFFER": "5"},
            "FINTANK_MAX_BUFFER (5) must be >=",
        ),
    ],
)
def test_bad_values_fail_with_one_line(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        Settings.from_env(env)

    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_kraft_cluster_ids_never_start_with_a_dash() -> None:
    from fintank.stack.stack import _cluster_id

    ids = [_cluster_id() for _ in range(2000)]

    assert not any(i.startswith("-") for i in ids)
    assert all(len(i) == 22 for i in ids)
