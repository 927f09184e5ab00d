"""``FINTANK_LOG_FORMAT=json``: one JSON object per log line, applied where faust sets up logging."""

from __future__ import annotations

import logging
import logging.config
from datetime import datetime

import orjson
import pytest
from mode.utils.logging import setup_logging

from fintank.config import Settings
from fintank.errors import ConfigError
from fintank.logs import JsonFormatter, logging_config
from fintank.runtime import make_app
from fintank.stack.worker import Worker


def record(msg: str, *args: object, exc: BaseException | None = None) -> logging.LogRecord:
    exc_info = (type(exc), exc, exc.__traceback__) if exc is not None else None
    return logging.LogRecord("fintank.engine", logging.WARNING, __file__, 1, msg, args, exc_info)


def test_a_record_is_one_json_line_with_time_level_logger_and_message() -> None:
    line = JsonFormatter().format(record("lag of %d on %s\nsecond line", 7, "ticks:0"))

    assert "\n" not in line
    doc = orjson.loads(line)
    assert set(doc) == {"time", "level", "logger", "message"}
    assert (doc["level"], doc["logger"]) == ("WARNING", "fintank.engine")
    assert doc["message"] == "lag of 7 on ticks:0\nsecond line"
    assert datetime.fromisoformat(doc["time"]).utcoffset() is not None  # ISO-8601 with zone


def test_an_exception_is_one_string_with_its_traceback() -> None:
    try:
        raise ValueError("bad tick")
    except ValueError as exc:
        line = JsonFormatter().format(record("failed", exc=exc))

    assert "\n" not in line
    doc = orjson.loads(line)
    assert doc["exc_info"].startswith("Traceback (most recent call last):")
    assert doc["exc_info"].rstrip().endswith("ValueError: bad tick")


def test_the_setting_is_text_or_json_with_a_one_line_error() -> None:
    assert Settings().log_format == "text"
    assert Settings.from_env({"FINTANK_LOG_FORMAT": "json"}).log_format == "json"
    with pytest.raises(ConfigError) as bad:
        Settings.from_env({"FINTANK_LOG_FORMAT": "yaml"})
    assert str(bad.value) == "FINTANK_LOG_FORMAT must be text or json, got 'yaml'"


def test_the_faust_app_gets_the_json_config_only_when_asked() -> None:
    assert make_app(Settings(app_id="logs-text")).conf.logging_config is None
    assert make_app(Settings(app_id="logs-json", log_format="json")).conf.logging_config == (
        logging_config("json")
    )


def test_faust_s_logging_setup_with_the_config_writes_json_lines(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """What the worker does at start (mode's setup_logging, as faust's Worker calls it)."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    config = logging_config("json")
    assert config is not None
    try:
        setup_logging(loglevel="info", logfile=None, logging_config=dict(config))
        logging.getLogger("fintank.test").info("ready with %d partitions", 4)
        logging.getLogger("aiokafka").debug("below the level: not written")
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)

    lines = [line for line in capsys.readouterr().err.splitlines() if line]
    assert [orjson.loads(line)["message"] for line in lines] == ["ready with 4 partitions"]
    assert orjson.loads(lines[0])["logger"] == "fintank.test"


def test_the_worker_is_quiet_with_json_logs_so_its_banner_does_not_break_the_lines() -> None:
    text = Worker(Settings(), name="w").argv()
    quiet = Worker(Settings(log_format="json"), name="w").argv()

    assert "--quiet" not in text
    assert quiet[quiet.index("worker") - 1] == "--quiet"
