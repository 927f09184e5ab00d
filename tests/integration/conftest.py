"""Integration fixtures: the real stack, started by the project's own code on test ports.

The suite uses its own state folder and ports, so it never touches a stack
that `invoke up` started for a person. Each test gets its own topics, app id
and database (a unique suffix), so tests cannot see each other's records.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, fields
from pathlib import Path

import pytest

from fintank.config import Settings, Topics
from fintank.stack import Stack
from fintank.stack.topics import ensure_topics
from fintank.stack.worker import Worker

REPO = Path(__file__).resolve().parents[2]
INVOKE = Path(sys.executable).with_name("invoke")

TEST_STACK_ENV = {
    "FINTANK_STATE_DIR": str(REPO / ".state-test"),
    "FINTANK_KAFKA_PORT": "19092",
    "FINTANK_BROKER": "kafka://127.0.0.1:19092",
    "FINTANK_INFLUX_PORT": "18086",
    "FINTANK_INFLUX_URL": "http://127.0.0.1:18086",
    "FINTANK_VICTORIA_PORT": "18428",
    "FINTANK_INFLUX_V2_URL": "http://127.0.0.1:18428",
    # The test VictoriaMetrics takes any token; fintank has no default one (v2 needs it).
    "FINTANK_INFLUX_TOKEN": "fintank-test-token",
    "FINTANK_WEB_PORT": "16066",
    "FINTANK_FLUSH_INTERVAL": "0.2",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    """Kafka, InfluxDB and VictoriaMetrics, up for the whole session (installed if missing)."""
    the_stack = Stack(Settings.from_env(TEST_STACK_ENV))
    the_stack.up()
    yield the_stack
    if os.environ.get("FINTANK_KEEP_TEST_STACK") != "1":
        the_stack.down()


@dataclass
class Env:
    """One test's isolated configuration: its environment and the settings it parses to."""

    vars: dict[str, str]
    settings: Settings
    suffix: str

    def invoke(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run an invoke task as a person would, with this test's environment."""
        return subprocess.run(
            [str(INVOKE), *args],
            cwd=REPO,
            env={**os.environ, **self.vars},
            capture_output=True,
            text=True,
            check=check,
            timeout=300,
        )


@pytest.fixture
def env(stack: Stack) -> Env:
    """A unique app id, topic set and InfluxDB database on the session's stack."""
    suffix = uuid.uuid4().hex[:8]
    env_vars = dict(TEST_STACK_ENV)
    env_vars["FINTANK_APP_ID"] = f"fintank-test-{suffix}"
    env_vars["FINTANK_INFLUX_DATABASE"] = f"test_{suffix}"
    for f in fields(Topics):
        env_vars[f"FINTANK_TOPIC_{f.name.upper()}"] = f"{f.default}-{suffix}"
    settings = Settings.from_env(env_vars)
    asyncio.run(ensure_topics(settings, log=lambda _: None))
    Stack(settings).create_database()
    return Env(env_vars, settings, suffix)


@pytest.fixture
def start_worker(env: Env) -> Iterator[object]:
    """Start workers of topologies.fintank with the test's environment (plus overrides)."""
    started: list[Worker] = []

    def start(name: str = "worker", **overrides: str) -> Worker:
        run_env = {**os.environ, **env.vars, **overrides}
        worker = Worker(Settings.from_env(run_env), name=f"{name}-{env.suffix}")
        worker.start(timeout=120, env=run_env)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()
