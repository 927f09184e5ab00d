"""The `fintank` command as a person runs it (``python -m fintank.cli``) against the real test stack.

Each test has its own topics (the ``env`` fixture); the command runs in a
temporary folder, so it depends on nothing in the repository's working directory.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import fields
from pathlib import Path

import orjson
import pytest

from fintank.config import Topics
from fintank.peek import read_topic
from fintank.records import Tick
from fintank.ticks import parse_tick
from fintank.trading import parse_order
from fintank.trading.records import PortfolioOrder
from tests.integration.conftest import Env

BOUND = 20.0  # seconds within which a command facing a dead broker must have given up


def fintank(
    cwd: Path, env: Mapping[str, str], *args: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("FINTANK_")}
    return subprocess.run(
        [sys.executable, "-m", "fintank.cli", *args],
        cwd=cwd,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def assert_one_line_error(done: subprocess.CompletedProcess[str]) -> str:
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, (done.returncode, done.stderr)
    assert len(lines) == 1 and lines[0].startswith("fintank: "), done.stderr
    assert done.stdout == ""
    return lines[0]


def other_topics(env: Env) -> dict[str, str]:
    """env.vars with topic names nobody has created yet."""
    suffix = uuid.uuid4().hex[:8]
    return {
        **env.vars,
        **{f"FINTANK_TOPIC_{f.name.upper()}": f"{f.default}-cli-{suffix}" for f in fields(Topics)},
    }


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def silent_broker() -> Iterator[str]:
    """A TCP port that accepts connections (the kernel's backlog) and never answers a request."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(64)
        yield f"kafka://127.0.0.1:{s.getsockname()[1]}"


def test_topics_create_then_list(env: Env, tmp_path: Path) -> None:
    vars_ = other_topics(env)
    names = {f.name: vars_[f"FINTANK_TOPIC_{f.name.upper()}"] for f in fields(Topics)}

    before = fintank(tmp_path, vars_, "topics", "list")
    created = fintank(tmp_path, vars_, "topics", "create")
    again = fintank(tmp_path, vars_, "topics", "create")
    listed = fintank(tmp_path, vars_, "topics", "list")

    assert before.returncode == 0, before.stderr
    assert f"{names['ticks']}  " in before.stdout and "ticks (missing)" in before.stdout
    assert before.stdout.splitlines()[-1].startswith("fintank's topics: 0 of 11 on kafka")
    assert created.returncode == 0, created.stderr
    assert "kafka: created topics" in created.stdout and names["ticks"] in created.stdout
    assert again.returncode == 0 and "created" not in again.stdout
    assert listed.returncode == 0, listed.stderr
    rows = {line.split()[0]: line.split()[1:] for line in listed.stdout.splitlines()[1:-1]}
    partitions = str(env.settings.partitions)
    for role, name in names.items():
        want = "1" if role == "deadletters" else partitions
        assert rows[name] == [want, role], (name, rows[name])
    assert listed.stdout.splitlines()[-1].startswith("fintank's topics: 11 of 11 on kafka")


def test_seed_ticks_lands_every_tick_on_the_ticks_topic(env: Env, tmp_path: Path) -> None:
    symbols = f"A{env.suffix},B{env.suffix}"

    done = fintank(
        tmp_path, env.vars, "seed", "ticks", "--count", "50", "--rate", "0", "--symbols", symbols
    )

    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == (  # then the summary (tests/unit/test_pacing.py)
        f"sent 50 records to {env.settings.topics.ticks!r} (50 valid, 0 invalid)"
    )
    assert done.stderr.splitlines()[-1] == "ticks: 50/50"  # not a terminal: a line per tenth
    records = asyncio.run(read_topic(env.settings.bootstrap, env.settings.topics.ticks))
    assert len(records) == 50
    ticks = [parse_tick(orjson.dumps(r.value)) for r in records]
    assert all(isinstance(t, Tick) for t in ticks)
    assert {r.key for r in records} == set(symbols.split(","))
    assert all(r.key == r.value["symbol"] for r in records)


def test_seed_ticks_at_a_rate_takes_its_time(env: Env, tmp_path: Path) -> None:
    started = time.monotonic()
    done = fintank(tmp_path, env.vars, "seed", "ticks", "--count", "40", "--rate", "20")
    took = time.monotonic() - started

    assert done.returncode == 0, done.stderr
    assert took >= 1.9  # 40 ticks at 20/s
    assert len(asyncio.run(read_topic(env.settings.bootstrap, env.settings.topics.ticks))) == 40


def test_seed_orders_lands_valid_and_invalid_orders(env: Env, tmp_path: Path) -> None:
    done = fintank(
        tmp_path, env.vars, "seed", "orders", "--count", "12", "--invalid", "4", "--rate", "0"
    )

    assert done.returncode == 0, done.stderr
    assert "sent 16 records" in done.stdout and "(12 valid, 4 invalid)" in done.stdout
    records = asyncio.run(read_topic(env.settings.bootstrap, env.settings.topics.orders))
    assert len(records) == 16
    valid = [r for r in records if r.key != "invalid"]
    assert len(valid) == 12
    for r in valid:
        order = parse_order(orjson.dumps(r.value))
        assert isinstance(order, PortfolioOrder)
        assert r.key == r.value["portfolio_order_id"]


def test_status_shows_the_test_stack(env: Env, tmp_path: Path) -> None:
    done = fintank(tmp_path, env.vars, "status")

    assert done.returncode == 0, done.stderr
    kafka = next(line for line in done.stdout.splitlines() if line.startswith("kafka "))
    assert kafka.split()[1] == "up" and "127.0.0.1:19092" in kafka


def test_seeding_a_missing_topic_is_one_line_soon(env: Env, tmp_path: Path) -> None:
    vars_ = {**env.vars, "FINTANK_TOPIC_TICKS": f"nowhere-{env.suffix}"}

    started = time.monotonic()
    line = assert_one_line_error(fintank(tmp_path, vars_, "seed", "ticks", "--count", "1"))

    assert time.monotonic() - started < BOUND
    assert line.startswith(f"fintank: topic 'nowhere-{env.suffix}' does not exist at kafka")


COMMANDS = [
    ("seed", "ticks", "--count", "1"),
    ("seed", "orders", "--count", "1"),
    ("topics", "list"),
    ("topics", "create"),
]


def run_all(tmp_path: Path, broker: str) -> list[tuple[subprocess.CompletedProcess[str], float]]:
    """Each of COMMANDS against ``broker``, concurrently; each with the seconds it took."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("FINTANK_")}
    started = time.monotonic()
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "fintank.cli", *args],
            cwd=tmp_path,
            env={**clean, "FINTANK_BROKER": broker},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for args in COMMANDS
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        results.append(
            (
                subprocess.CompletedProcess(proc.args, proc.returncode, out, err),
                time.monotonic() - started,
            )
        )
    return results


def test_an_unreachable_broker_is_one_line_and_exit_2(tmp_path: Path) -> None:
    port = closed_port()

    for done, took in run_all(tmp_path, f"kafka://127.0.0.1:{port}"):
        line = assert_one_line_error(done)
        assert line.startswith(f"fintank: cannot reach kafka at 127.0.0.1:{port}"), line
        assert took < BOUND, (done.args, took)


def test_a_broker_that_never_answers_is_given_up_on_within_seconds(
    tmp_path: Path, silent_broker: str
) -> None:
    address = silent_broker.removeprefix("kafka://")

    for done, took in run_all(tmp_path, silent_broker):
        line = assert_one_line_error(done)
        assert line == f"fintank: kafka at {address} did not answer within 10 s", line
        assert took < BOUND, (done.args, took)


def test_up_on_a_running_stack_says_so(env: Env, tmp_path: Path) -> None:
    done = fintank(tmp_path, env.vars, "up")

    assert done.returncode == 0, done.stderr
    for service in ("kafka", "influxdb", "victoria-metrics"):
        assert f"{service}: already running" in done.stdout


def free_port() -> int:
    return closed_port()


def health(port: int) -> dict[str, object] | None:
    import json
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as resp:
            return dict(json.loads(resp.read()))
    except (OSError, ValueError):
        return None


def test_worker_becomes_the_faust_worker_of_the_built_in_topology(env: Env, tmp_path: Path) -> None:
    port = free_port()
    vars_ = {**env.vars, "FINTANK_WEB_PORT": str(port), "FINTANK_STATE_DIR": str(tmp_path)}
    clean = {k: v for k, v in os.environ.items() if not k.startswith("FINTANK_")}
    with open(tmp_path / "worker.log", "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "fintank.cli", "worker"],
            cwd=tmp_path,
            env={**clean, **vars_},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 120
        state = health(port)
        while not (state and state.get("ready")) and time.monotonic() < deadline:
            assert proc.poll() is None, (tmp_path / "worker.log").read_text()[-2000:]
            time.sleep(0.5)
            state = health(port)
        cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes().split(b"\0")

        assert state and state.get("ready"), (tmp_path / "worker.log").read_text()[-2000:]
        # The same process, now faust (os.execv): this interpreter, -m faust, the topology.
        assert cmdline[:5] == [
            sys.executable.encode(),
            b"-m",
            b"faust",
            b"-A",
            b"topologies.fintank",
        ]
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
