"""examples/spread.py in real worker processes, on the real Kafka and InfluxDB 1.x.

`fintank topics create examples.spread` makes the example's topics (the test's own,
named by FINTANK_TOPIC_*), and a worker runs it as `fintank worker examples.spread`
does, with the test's app id, database and a free web port. Ticks of two symbols
(one full of line-protocol characters) and two invalid records go in; out come one
``spreads`` record and one InfluxDB ``spread`` point per valid tick, two dead
letters with their reasons, and ``GET /spreads/{symbol}`` answers. Restarted as
``faust -A examples.spread:app worker``, the worker carries on from the table's
changelog.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from fintank.config import Settings
from fintank.peek import Record, read_topic
from fintank.sinks.query import influxql
from fintank.stack.worker import Worker
from tests.integration.conftest import REPO, Env
from tests.integration.load import free_port
from tests.integration.test_routing import get
from tests.support.ticks import T0

HOSTED = "fintank.hosted"  # what `fintank worker MODULE:TOPOLOGY` runs
APP = "examples.spread:app"


def wait_for(check: Callable[[], Any], what: str, timeout: float = 60) -> Any:
    """Poll ``check`` until it returns something true; fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not (result := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.5)
    return result


async def produce(bootstrap: str, topic: str, records: list[tuple[str, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for key, value in records:
            await producer.send_and_wait(topic, value, key=key.encode())
    finally:
        await producer.stop()


def read(env: Env, topic: str) -> list[Record]:
    return asyncio.run(read_topic(env.settings.bootstrap, topic, timeout=20))


def read_at_least(env: Env, topic: str, n: int, timeout: float = 60) -> list[Record]:
    """The records of ``topic`` once it holds ``n``, and a moment later (nothing more comes)."""
    wait_for(lambda: len(read(env, topic)) >= n, f"{n} records on {topic}", timeout)
    time.sleep(1.5)
    return read(env, topic)


def tick(symbol: str, bid: float, ask: float, offset: float, **sizes: float) -> tuple[str, bytes]:
    value = {"symbol": symbol, "exchange": "X", "bid": bid, "ask": ask, "timestamp": T0 + offset}
    return symbol, orjson.dumps({**value, **sizes})


@pytest.fixture
def spreads(env: Env) -> Iterator[Callable[[str], Worker]]:
    """Start (again) a worker of the example, on the test's topics plus its ``spreads`` topic.

    ``start(HOSTED)`` runs it as ``fintank worker examples.spread`` does, ``start(APP)`` as
    ``faust -A examples.spread:app worker``; both in the worker's own folder.
    """
    run_env = {
        **os.environ,
        **env.vars,
        "FINTANK_TOPIC_SPREADS": f"spreads-{env.suffix}",
        "FINTANK_WEB_PORT": str(free_port()),
        "FINTANK_TOPOLOGY": "examples.spread:topology",  # for fintank.hosted
        "FINTANK_TOPOLOGY_PATH": str(REPO),
        "PYTHONPATH": str(REPO),  # for faust -A: examples/ is not an installed package
    }
    created = subprocess.run(
        [sys.executable, "-m", "fintank.cli", "topics", "create", "examples.spread"],
        cwd=REPO,
        env=run_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert created.returncode == 0, created.stderr
    started: list[Worker] = []

    def start(app: str) -> Worker:
        worker = Worker(Settings.from_env(run_env), name=f"spreads-{env.suffix}", app=app)
        worker.start(timeout=120, env=run_env)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


def test_the_spread_example_runs_on_the_real_stack(
    env: Env, spreads: Callable[[str], Worker]
) -> None:
    s = env.settings
    worker = spreads(HOSTED)
    odd = f"BRK B,x={env.suffix}"  # a space, a comma and an equals sign, escaped in the point
    plain = f"S{env.suffix}"
    ticks = [
        tick(plain, 100.0, 100.5, 0.125, bid_size=3.0, ask_size=1.0),
        tick(odd, 50.0, 50.2, 0.25),
        tick(plain, 101.0, 101.25, 1.0),
    ]
    bad = [(plain, b"not json at all"), tick(plain, 2.0, 1.0, 2.0)]
    asyncio.run(produce(s.bootstrap, s.topics.ticks, [ticks[0], bad[0], *ticks[1:], bad[1]]))

    topic = f"spreads-{env.suffix}"
    out = read_at_least(env, topic, 3)
    assert len(out) == 3
    by_symbol: dict[str, list[dict[str, Any]]] = {}
    for r in sorted(out, key=lambda r: (r.partition, r.offset)):
        assert r.key == r.value["symbol"]
        by_symbol.setdefault(r.key, []).append(r.value)
    assert sorted(by_symbol) == sorted([plain, odd])
    first, second = by_symbol[plain]
    assert (first["spread"], first["count"], first["vwap_mid"]) == (0.5, 1, 100.25)
    assert (second["count"], second["avg_spread"]) == (2, 0.375)
    assert second["vwap_mid"] == pytest.approx((100.25 * 4 + 101.125) / 5)
    [only] = by_symbol[odd]
    assert only["spread"] == pytest.approx(0.2) and only["timestamp"] == T0 + 0.25

    def points() -> list[list[Any]]:
        series = influxql(s.influx_url, s.influx_database, 'SELECT * FROM "spread"', epoch="ns")
        return series[0]["values"] if series else []

    wait_for(lambda: len(points()) >= 3, "3 points of spread")
    time.sleep(1.5)
    rows = points()
    columns = influxql(s.influx_url, s.influx_database, 'SELECT * FROM "spread"')[0]["columns"]
    assert columns == ["time", "avg_spread", "spread", "spread_bps", "symbol", "vwap_mid"]
    assert sorted((row[0], row[4], row[2]) for row in rows) == sorted(
        [
            (1_763_722_800_125_000_000, plain, 0.5),
            (1_763_722_800_250_000_000, odd, pytest.approx(0.2)),
            (1_763_722_801_000_000_000, plain, 0.25),
        ]
    )

    letters = read_at_least(env, s.topics.deadletters, 2)
    assert len(letters) == 2
    assert {letter.key for letter in letters} == {s.topics.ticks}
    values = sorted((letter.value for letter in letters), key=lambda v: v["source_offset"])
    assert values[0]["payload"] == "not json at all"
    assert all(v["reason"].startswith("cannot decode a ticks record: ") for v in values)
    assert "need 0 < bid <= ask" in values[1]["reason"]
    assert all(v["source_topic"] == s.topics.ticks for v in values)

    port = worker.settings.web_port
    status, _, body = get(port, "/spreads/" + urllib.parse.quote(odd, safe=""))
    assert status == 200 and body["symbol"] == odd and body["count"] == 1
    status, _, body = get(port, f"/spreads/{plain}")
    assert (status, body["count"], body["avg_spread"]) == (200, 2, 0.375)
    status, _, body = get(port, f"/spreads/NOPE{env.suffix}")
    assert status == 404 and "error" in body

    # A restart restores the sums from the changelog: the next tick counts on from 2.
    worker.stop()
    worker = spreads(APP)
    status, _, body = get(port, f"/spreads/{plain}")
    assert (status, body["count"]) == (200, 2)
    asyncio.run(produce(s.bootstrap, s.topics.ticks, [tick(plain, 102.0, 102.75, 3.0)]))
    newest = wait_for(
        lambda: [r.value for r in read(env, topic) if r.value["count"] == 3], "the fourth record"
    )
    assert newest[0]["avg_spread"] == pytest.approx((0.5 + 0.25 + 0.75) / 3)
    wait_for(lambda: len(points()) >= 4, "the fourth point")
    time.sleep(1.5)
    assert len(points()) == 4 and len(read(env, topic)) == 4  # nothing twice
