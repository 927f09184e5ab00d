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
        ({"FINTANK_BROKER": "localhost"}, "FINTANK_BROKER must look like kafka://host:port"),
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


def test_analytics_settings_are_read() -> None:
    settings = Settings.from_env(
        {
            "FINTANK_CANDLE_GRACE": "0.5",
            "FINTANK_SMA_PERIOD": "10",
            "FINTANK_EMA_PERIOD": "12",
            "FINTANK_RSI_PERIOD": "7",
            "FINTANK_RSI_LOW": "25",
            "FINTANK_RSI_HIGH": "75.5",
            "FINTANK_ALERT_WINDOW": "60",
            "FINTANK_ALERT_THRESHOLD_PCT": "2.5",
        }
    )

    assert (
        settings.candle_grace,
        settings.sma_period,
        settings.ema_period,
        settings.rsi_period,
        settings.rsi_low,
        settings.rsi_high,
        settings.alert_window,
        settings.alert_threshold_pct,
    ) == (0.5, 10, 12, 7, 25.0, 75.5, 60.0, 2.5)


def test_analytics_defaults_are_the_contracts() -> None:
    settings = Settings.from_env({})

    assert (settings.candle_grace, settings.sma_period, settings.ema_period) == (2.0, 20, 20)
    assert (settings.rsi_period, settings.rsi_low, settings.rsi_high) == (14, 30.0, 70.0)
    assert (settings.alert_window, settings.alert_threshold_pct) == (300.0, 5.0)


@pytest.mark.parametrize(
    "env",
    [
        {"FINTANK_CANDLE_GRACE": "0"},
        {"FINTANK_SMA_PERIOD": "2", "FINTANK_EMA_PERIOD": "100000", "FINTANK_RSI_PERIOD": "2"},
        {"FINTANK_RSI_LOW": "0", "FINTANK_RSI_HIGH": "100"},
        {"FINTANK_RSI_LOW": "49.9", "FINTANK_RSI_HIGH": "50"},
        {"FINTANK_ALERT_WINDOW": "0.001", "FINTANK_ALERT_THRESHOLD_PCT": "0.01"},
    ],
)
def test_analytics_bounds_are_accepted(env: dict[str, str]) -> None:
    Settings.from_env(env)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"FINTANK_CANDLE_GRACE": "nan"}, "FINTANK_CANDLE_GRACE must be >= 0 seconds"),
        ({"FINTANK_CANDLE_GRACE": "-1"}, "FINTANK_CANDLE_GRACE must be >= 0 seconds"),
        ({"FINTANK_CANDLE_GRACE": "inf"}, "FINTANK_CANDLE_GRACE must be >= 0 seconds"),
        ({"FINTANK_CANDLE_GRACE": "soon"}, "FINTANK_CANDLE_GRACE must be a number"),
        ({"FINTANK_SMA_PERIOD": "1"}, "FINTANK_SMA_PERIOD must be 2..100000, got 1"),
        ({"FINTANK_EMA_PERIOD": "1"}, "FINTANK_EMA_PERIOD must be 2..100000, got 1"),
        ({"FINTANK_RSI_PERIOD": "1"}, "FINTANK_RSI_PERIOD must be 2..100000, got 1"),
        ({"FINTANK_RSI_PERIOD": "-14"}, "FINTANK_RSI_PERIOD must be 2..100000, got -14"),
        ({"FINTANK_SMA_PERIOD": "100001"}, "FINTANK_SMA_PERIOD must be 2..100000"),
        ({"FINTANK_EMA_PERIOD": "20.0"}, "FINTANK_EMA_PERIOD must be an integer, got '20.0'"),
        ({"FINTANK_RSI_LOW": "nan"}, "FINTANK_RSI_LOW (nan) and FINTANK_RSI_HIGH (70.0)"),
        ({"FINTANK_RSI_HIGH": "nan"}, "FINTANK_RSI_LOW (30.0) and FINTANK_RSI_HIGH (nan)"),
        ({"FINTANK_RSI_LOW": "-5"}, "FINTANK_RSI_LOW (-5.0) and FINTANK_RSI_HIGH"),
        ({"FINTANK_RSI_HIGH": "101"}, "FINTANK_RSI_HIGH (101.0) must satisfy"),
        (
            {"FINTANK_RSI_LOW": "70", "FINTANK_RSI_HIGH": "70"},
            "FINTANK_RSI_LOW (70.0) and FINTANK_RSI_HIGH (70.0) must satisfy 0 <= low < high",
        ),
        ({"FINTANK_RSI_LOW": "80"}, "FINTANK_RSI_LOW (80.0) and FINTANK_RSI_HIGH (70.0)"),
        ({"FINTANK_ALERT_WINDOW": "nan"}, "FINTANK_ALERT_WINDOW must be > 0 seconds, got nan"),
        ({"FINTANK_ALERT_WINDOW": "0"}, "FINTANK_ALERT_WINDOW must be > 0 seconds, got 0.0"),
        ({"FINTANK_ALERT_WINDOW": "-300"}, "FINTANK_ALERT_WINDOW must be > 0 seconds"),
        ({"FINTANK_ALERT_WINDOW": "inf"}, "FINTANK_ALERT_WINDOW must be > 0 seconds"),
        ({"FINTANK_ALERT_THRESHOLD_PCT": "nan"}, "FINTANK_ALERT_THRESHOLD_PCT must be > 0"),
        ({"FINTANK_ALERT_THRESHOLD_PCT": "-5"}, "FINTANK_ALERT_THRESHOLD_PCT must be > 0"),
        ({"FINTANK_ALERT_THRESHOLD_PCT": "0"}, "FINTANK_ALERT_THRESHOLD_PCT must be > 0"),
        ({"FINTANK_ALERT_THRESHOLD_PCT": "five"}, "FINTANK_ALERT_THRESHOLD_PCT must be a number"),
    ],
)
def test_bad_analytics_values_fail_with_one_line_naming_the_variable(
    env: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError) as err:
        Settings.from_env(env)

    assert message in str(err.value)
    assert "\n" not in str(err.value)
