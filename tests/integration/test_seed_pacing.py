"""The paced generator on the real test stack: `fintank seed ticks --rate 1000 --duration 3
--json` and `invoke queue-ticks`, their printed figures checked for shape against what
landed on the topic (not for a timing threshold: speed belongs to `invoke bench`).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson

from fintank.peek import read_topic
from fintank.records import Tick
from fintank.ticks import parse_tick
from tests.integration.conftest import Env

KEYS = {
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


def fintank(cwd: Path, env: Mapping[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("FINTANK_")}
    return subprocess.run(
        [sys.executable, "-m", "fintank.cli", *args],
        cwd=cwd,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def assert_summary_shape(doc: dict[str, Any], rate: float) -> None:
    assert set(doc) == KEYS
    assert doc["target_rate"] == rate
    assert doc["achieved_rate"] > 0 and doc["seconds"] > 0
    assert set(doc["lag_ms"]) == {"p50", "p99", "max"}
    lag = doc["lag_ms"]
    assert 0 <= lag["p50"] <= lag["p99"] <= lag["max"]
    assert 0 <= doc["missed"] <= doc["sent"] and doc["overloads"] >= 0


def test_seed_ticks_at_1000_per_second_for_3_seconds_prints_its_figures(
    env: Env, tmp_path: Path
) -> None:
    symbols = f"A{env.suffix},B{env.suffix}"

    done = fintank(
        tmp_path,
        env.vars,
        *("seed", "ticks", "--rate", "1000", "--duration", "3", "--json", "--symbols", symbols),
    )

    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 1, done.stdout
    doc = json.loads(lines[0])
    print(f"\nseed ticks --rate 1000 --duration 3: {doc}")  # the figures, with pytest -s
    assert_summary_shape(doc, 1000.0)
    assert doc["topic"] == env.settings.topics.ticks
    assert doc["sent"] == doc["valid"] == 3000 and doc["invalid"] == 0  # the slots due in 3 s
    records = asyncio.run(read_topic(env.settings.bootstrap, env.settings.topics.ticks))
    assert len(records) == doc["sent"]
    assert all(isinstance(parse_tick(orjson.dumps(r.value)), Tick) for r in records)
    assert {r.key for r in records} == set(symbols.split(","))
    overloads = [line for line in done.stderr.splitlines() if "CRITICAL overload" in line]
    assert len(overloads) <= doc["overloads"]  # each episode said once, if any


def test_queue_ticks_paces_and_summarizes_the_same(env: Env) -> None:
    done = env.invoke(
        *("queue-ticks", "--rate", "1000", "--duration", "1", "--invalid", "2", "--json")
    )

    doc = json.loads(done.stdout)
    assert_summary_shape(doc, 1000.0)
    assert (doc["valid"], doc["invalid"], doc["sent"]) == (1000, 2, 1002)
    records = asyncio.run(read_topic(env.settings.bootstrap, env.settings.topics.ticks))
    assert len(records) == 1002
    assert [r.key for r in records if r.key == "invalid"] == ["invalid", "invalid"]
