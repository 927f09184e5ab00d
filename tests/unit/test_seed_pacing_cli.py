"""`fintank seed` and `invoke queue-ticks` pacing options without a broker: --duration,
--json, their errors, the summary, and the overload alarm on stderr.

Sends go to a stand-in producer (`FakeProducer` of test_fintank_cli: sends
resolve at once); the schedule itself is tested in test_pacing.py and on the
real stack in tests/integration/test_seed_pacing.py.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner, Result

import fintank.cli as cli
from fintank.config import PREFIX
from fintank.generators import INVALID_TICKS
from fintank.pacing import NS_PER_MS
from fintank.producer import send_scheduled
from fintank.records import Tick
from fintank.ticks import parse_tick
from tests.unit.test_fintank_cli import FakeProducer, assert_one_line_error, use_producer

REPO = Path(__file__).resolve().parents[2]
INVOKE = Path(sys.executable).with_name("invoke")
SUMMARY_KEYS = {
    "topic",
    "valid",
    "invalid",
    "sent",
    "target_rate",
    "achieved_rate",
    "seconds",
    "lag_ms",
    "missed",
    "overloads",
}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No FINTANK_* setting of the person running the tests leaks in."""
    for name in list(os.environ):
        if name.startswith(PREFIX):
            monkeypatch.delenv(name)


def run(*args: str, **env: str) -> Result:
    return CliRunner().invoke(cli.main, list(args), env=env)


@pytest.fixture
def producer(monkeypatch: pytest.MonkeyPatch) -> FakeProducer:
    fake = FakeProducer()
    use_producer(monkeypatch, fake)
    return fake


# ----------------------------------------------------------------- wrong arguments


@pytest.mark.parametrize("command", ["ticks", "orders"])
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--duration", "abc"],
            "invalid value for '--duration': 'abc' is not a valid float",
        ),
        (["--duration"], "option '--duration' requires an argument"),
        (
            ["--count", "10", "--duration", "3"],
            "--count and --duration exclude each other: give one of them",
        ),
        (["--duration", "3", "--count", "1000"], "--count and --duration exclude each other"),
        (["--duration", "0"], "--duration must be a number of seconds > 0"),
        (["--duration", "-1"], "--duration must be a number of seconds > 0"),
        (["--duration", "nan"], "--duration must be a number of seconds > 0"),
        (["--duration", "inf"], "--duration must be a number of seconds > 0"),
        (["--duration", "1", "--rate", "-1"], "--rate must be >= 0"),
        (["--duration", "1", "--invalid", "-1"], "--count and --invalid must be >= 0"),
        (["--dry-run", "--json"], "--json prints the summary of a send; --dry-run sends nothing"),
        (
            ["--dry-run", "--duration", "1", "--rate", "0"],
            "--dry-run with --duration needs a --rate > 0 (to know how many)",
        ),
        (["--json", "yes"], "got unexpected extra argument (yes)"),
    ],
)
def test_a_wrong_pacing_argument_is_one_line_and_exit_2(
    command: str, args: list[str], message: str
) -> None:
    line = assert_one_line_error(run("seed", command, *args))

    assert line.startswith(f"fintank: {message}"), line


def test_the_duration_type_error_names_the_command_to_ask_for_help() -> None:
    line = assert_one_line_error(run("seed", "ticks", "--duration", "abc"))

    assert line == (
        "fintank: invalid value for '--duration': 'abc' is not a valid float "
        "(see 'fintank seed ticks --help')"
    )


def test_help_names_the_new_options() -> None:
    helped = run("seed", "ticks", "--help")

    assert helped.exit_code == 0
    assert "--duration SECONDS" in helped.stdout and "--json" in helped.stdout


# ------------------------------------------------------------------------- dry runs


def test_a_dry_run_with_a_duration_prints_the_ticks_due_within_it() -> None:
    result = run(
        "seed", "ticks", "--dry-run", "--duration", "0.05", "--rate", "1000", "--invalid", "2"
    )

    parsed = [parse_tick(line.encode()) for line in result.stdout.splitlines()]
    assert result.exit_code == 0, result.stderr
    assert len(parsed) == 52
    assert all(isinstance(p, Tick) for p in parsed[:50])
    assert all(isinstance(p, str) for p in parsed[50:])


def test_a_float_rate_and_duration_give_the_slots_due_within_it() -> None:
    result = run("seed", "orders", "--dry-run", "--duration", "1", "--rate", "2.5")

    assert result.exit_code == 0, result.stderr
    assert len(result.stdout.splitlines()) == 3  # due at 0, 0.4 and 0.8 s


# ------------------------------------------------------------------------ summaries


def test_json_is_one_object_on_stdout_with_the_figures(producer: FakeProducer) -> None:
    result = run("seed", "ticks", "--count", "30", "--rate", "1000", "--invalid", "2", "--json")

    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1
    doc = json.loads(lines[0])
    assert set(doc) == SUMMARY_KEYS
    assert doc["topic"] == "ticks" and doc["sent"] == 32 == len(producer.sent)
    assert (doc["valid"], doc["invalid"]) == (30, 2)
    assert doc["target_rate"] == 1000.0 and doc["achieved_rate"] > 0
    assert set(doc["lag_ms"]) == {"p50", "p99", "max"}
    assert 0 <= doc["lag_ms"]["p50"] <= doc["lag_ms"]["p99"] <= doc["lag_ms"]["max"]
    assert isinstance(doc["missed"], int) and isinstance(doc["overloads"], int)
    assert [v for _, _, v in producer.sent][-2:] == INVALID_TICKS[:2]  # after the valid ones


def test_the_summary_in_words_is_two_lines(producer: FakeProducer) -> None:
    result = run("seed", "orders", "--count", "5", "--rate", "0")

    lines = result.stdout.splitlines()
    assert result.exit_code == 0, result.stderr
    assert lines[0] == "sent 5 records to 'orders' (5 valid, 0 invalid)"
    assert lines[1].startswith("rate ") and "(as fast as possible)" in lines[1]
    assert lines[1].endswith("no schedule, no lag")


def test_at_a_rate_the_words_give_the_lag_percentiles(producer: FakeProducer) -> None:
    result = run("seed", "ticks", "--count", "20", "--rate", "2000")

    second = result.stdout.splitlines()[1]
    assert result.exit_code == 0, result.stderr
    assert "(target 2,000/s)" in second
    assert "schedule lag p50 " in second and " p99 " in second and " max " in second


def test_a_duration_at_rate_0_sends_until_it_is_over_then_the_invalid_ones(
    producer: FakeProducer,
) -> None:
    result = run("seed", "ticks", "--duration", "0.2", "--rate", "0", "--invalid", "3", "--json")

    doc = json.loads(result.stdout)
    assert result.exit_code == 0, result.stderr
    assert doc["sent"] == len(producer.sent) == doc["valid"] + 3 and doc["valid"] > 0
    assert doc["lag_ms"] is None and doc["target_rate"] == 0.0
    values = [v for _, _, v in producer.sent]
    assert all(isinstance(parse_tick(v), Tick) for v in values[:-3])
    assert all(isinstance(parse_tick(v), str) for v in values[-3:])


def test_a_duration_at_a_rate_sends_the_slots_due_within_it(producer: FakeProducer) -> None:
    result = run("seed", "ticks", "--duration", "0.1", "--rate", "500", "--json")

    doc = json.loads(result.stdout)
    assert result.exit_code == 0, result.stderr
    assert doc["sent"] == doc["valid"] == 50 == len(producer.sent)


# ------------------------------------------------------------------------ the alarm


class SlowProducer(FakeProducer):
    """Each send blocks for 2 ms: at 1,000/s the sender falls further behind with each record."""

    async def send(self, topic: str, value: bytes, key: bytes | None) -> asyncio.Future[None]:
        time.sleep(0.002)
        return await super().send(topic, value, key)


def test_an_overloaded_sender_says_so_once_on_stderr_and_goes_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    producer = SlowProducer()
    use_producer(monkeypatch, producer)

    result = run("seed", "ticks", "--count", "200", "--rate", "1000", "--json")

    assert result.exit_code == 0, result.stderr
    alarms = [line for line in result.stderr.splitlines() if "overload" in line]
    assert len(alarms) == 1, result.stderr
    assert alarms[0].startswith("fintank: CRITICAL overload: 100 ticks in a row went out late")
    assert alarms[0].endswith("sending on")
    doc = json.loads(result.stdout)
    assert doc["sent"] == 200 == len(producer.sent)
    assert doc["overloads"] == 1 and doc["missed"] >= 100


def test_send_scheduled_logs_critical_once_per_episode_on_a_fake_clock(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The real sender, with a clock that moves only when a send (3 ms, then 0) or a sleep does."""
    now = [0]

    class Timed(FakeProducer):
        async def send(self, topic: str, value: bytes, key: bytes | None) -> asyncio.Future[None]:
            now[0] += 3 * NS_PER_MS if len(self.sent) < 300 else 0
            return await super().send(topic, value, key)

    async def sleep(ns: int) -> None:
        now[0] += ns

    use_producer(monkeypatch, Timed())
    records: list[tuple[bytes | None, bytes]] = [(None, b"%d" % i) for i in range(1000)]

    with caplog.at_level(logging.WARNING, logger="fintank.producer"):
        summary = asyncio.run(
            send_scheduled(
                "h:1", "t", records, 1000, 1000, "ticks", clock=lambda: now[0], sleep=sleep
            )
        )

    critical = [r for r in caplog.records if r.levelno == logging.CRITICAL]
    assert [r.getMessage().split(":")[0] for r in critical] == ["overload"]
    assert any("back on schedule" in r.getMessage() for r in caplog.records)
    assert summary.sent == 1000 and summary.overloads == 1
    assert summary.lag_ms is not None and summary.lag_ms[2] > 500  # fell 600 ms behind


# ------------------------------------------------------------------- invoke queue-ticks


def invoke(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(PREFIX)}
    return subprocess.run(
        [str(INVOKE), *args], cwd=REPO, capture_output=True, text=True, env=env, timeout=60
    )


def test_queue_ticks_takes_a_float_rate_and_a_duration() -> None:
    done = invoke("queue-ticks", "--dry-run", "--duration", "0.01", "--rate", "1000.5")

    lines = done.stdout.splitlines()
    assert done.returncode == 0, done.stderr
    assert len(lines) == 11  # due at 0, 0.9995, ..., 9.995 ms
    assert all(isinstance(parse_tick(line.encode()), Tick) for line in lines)
    assert orjson.loads(lines[0])["symbol"] == "VTI"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("--count", "3", "--duration", "1"),
            "fintank: --count and --duration exclude each other: give one of them",
        ),
        (("--duration", "-2"), "fintank: --duration must be a number of seconds > 0"),
        (
            ("--dry-run", "--json"),
            "fintank: --json prints the summary of a send; --dry-run sends nothing",
        ),
    ],
)
def test_queue_ticks_errors_are_the_same_one_line(args: tuple[str, ...], message: str) -> None:
    done = invoke("queue-ticks", *args)

    assert done.returncode == 2
    assert done.stderr.strip() == message
