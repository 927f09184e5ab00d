"""Every bad setting is one line naming the variable: brokers, app id, topic names, flags.

And several bootstrap servers in FINTANK_BROKER reach every Kafka client
fintank makes as one comma-separated list (aiokafka's form), and faust as URLs.
"""

from __future__ import annotations

import pytest
from aiokafka.conn import collect_hosts

from fintank.config import Settings
from fintank.errors import ConfigError
from fintank.limits import DEFAULT_MAX_FUTURE


@pytest.mark.parametrize(
    ("broker", "bootstrap"),
    [
        ("kafka://127.0.0.1:9092", "127.0.0.1:9092"),
        ("kafka://h1:9092,h2:9093", "h1:9092,h2:9093"),
        ("h1:9092, h2:9093 ,h3:1", "h1:9092,h2:9093,h3:1"),
        ("kafka://h1:9092,kafka://h2:9092", "h1:9092,h2:9092"),
        ("kafka://[::1]:9092", "[::1]:9092"),
    ],
)
def test_several_bootstrap_servers_are_read(broker: str, bootstrap: str) -> None:
    settings = Settings.from_env({"FINTANK_BROKER": broker})

    assert settings.bootstrap == bootstrap
    assert settings.broker_urls == [f"kafka://{s}" for s in bootstrap.split(",")]
    # What aiokafka makes of the string every fintank client is given (consumer,
    # producer, admin: all take ``Settings.bootstrap``); it shuffles them.
    assert sorted(f"{h}:{p}" for h, p, _ in collect_hosts(settings.bootstrap)) == sorted(
        s.replace("[", "").replace("]", "") for s in bootstrap.split(",")
    )


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"FINTANK_BROKER": "kafka://h1:9092,h2:99999"},
            "FINTANK_BROKER must look like kafka://host:port (several: comma-separated), "
            "got 'kafka://h1:9092,h2:99999': 'h2:99999' has a bad port (1..65535)",
        ),
        ({"FINTANK_BROKER": "h1:9092,h2:0"}, "'h2:0' has a bad port (1..65535)"),
        ({"FINTANK_BROKER": "h1:9092,h2:x"}, "'h2:x' has a bad port (1..65535)"),
        ({"FINTANK_BROKER": "h1:9092,h2"}, "'h2' has no port"),
        ({"FINTANK_BROKER": "h1:9092,"}, "an empty entry"),
        ({"FINTANK_BROKER": ""}, "an empty entry"),
        ({"FINTANK_BROKER": "http://h1:9092"}, "'http://h1:9092' is not kafka://"),
        ({"FINTANK_BROKER": "kafka://h1:9092/x"}, "'kafka://h1:9092/x' is not host:port"),
        (
            {"FINTANK_APP_ID": ""},
            "FINTANK_APP_ID is set but empty (unset it to use the topology's name)",
        ),
        ({"FINTANK_APP_ID": "  "}, "FINTANK_APP_ID is set but empty"),
        (
            {"FINTANK_APP_ID": "my app"},
            "FINTANK_APP_ID 'my app' has characters Kafka does not allow in a topic name: ' '",
        ),
        ({"FINTANK_APP_ID": "a" * 201}, "FINTANK_APP_ID 'aaaa"),
        (
            {"FINTANK_TOPIC_FILLS": "executions"},
            "FINTANK_TOPIC_EXECUTIONS and FINTANK_TOPIC_FILLS both name topic 'executions'",
        ),
        (
            {"FINTANK_TOPIC_TICKS": "quotes", "FINTANK_TOPIC_ORDERS": "quotes"},
            "FINTANK_TOPIC_TICKS and FINTANK_TOPIC_ORDERS both name topic 'quotes'",
        ),
        (
            {"FINTANK_TOPIC_TICKS": "md.ticks", "FINTANK_TOPIC_CANDLES": "md_ticks"},
            "FINTANK_TOPIC_TICKS ('md.ticks') and FINTANK_TOPIC_CANDLES ('md_ticks') name "
            "topics that collide in Kafka, which treats '.' and '_' alike",
        ),
        (
            {"FINTANK_TOPIC_ALERTS": "hot/movers"},
            "FINTANK_TOPIC_ALERTS 'hot/movers' has characters Kafka does not allow",
        ),
        ({"FINTANK_TOPIC_ALERTS": ".."}, "FINTANK_TOPIC_ALERTS '..' is not a topic name"),
        ({"FINTANK_TOPIC_ALERTS": "a" * 250}, "is longer than 249 characters"),
        (
            {"FINTANK_FAUST_WEB_VIEWS": "maybe"},
            "FINTANK_FAUST_WEB_VIEWS must be 1 or 0 (true/false, yes/no, on/off), got 'maybe'",
        ),
        ({"FINTANK_MAX_FUTURE": "0"}, "FINTANK_MAX_FUTURE must be > 0 seconds (inf: no limit)"),
        ({"FINTANK_MAX_FUTURE": "nan"}, "FINTANK_MAX_FUTURE must be > 0 seconds"),
        ({"FINTANK_MAX_FUTURE": "-1"}, "FINTANK_MAX_FUTURE must be > 0 seconds"),
        ({"FINTANK_MAX_FUTURE": "a day"}, "FINTANK_MAX_FUTURE must be a number"),
    ],
)
def test_bad_values_are_one_line_naming_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        Settings.from_env(env)

    assert message in str(err.value)
    assert "\n" not in str(err.value)
    assert any(var in str(err.value) for var in env)  # the line names the variable


def test_an_unset_app_id_means_the_topologys_name() -> None:
    assert Settings.from_env({}).app_id == ""


@pytest.mark.parametrize(("raw", "value"), [("1", True), ("yes", True), ("off", False)])
def test_flags_are_read(raw: str, value: bool) -> None:
    assert Settings.from_env({"FINTANK_FAUST_WEB_VIEWS": raw}).faust_web_views is value


def test_max_future_defaults_to_a_day_and_inf_turns_it_off() -> None:
    assert Settings.from_env({}).max_future == DEFAULT_MAX_FUTURE == 86_400.0
    assert Settings.from_env({"FINTANK_MAX_FUTURE": "inf"}).max_future == float("inf")
