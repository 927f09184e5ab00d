"""`invoke demo`: the main job on the local stack, end to end, with a report of where things landed."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import orjson

from fintank.config import Settings
from fintank.generators import INVALID_TICKS, random_walk_ticks
from fintank.peek import read_topic
from fintank.producer import send_paced
from fintank.sinks.query import influxql
from fintank.stack import Stack
from fintank.stack.worker import Worker

SYMBOLS = ["VTI", "IVE", "IWS"]
TICKS = 3000
INVALID = len(INVALID_TICKS)


def run_demo(settings: Settings, venv_bin: Path) -> None:
    """Start the stack and a worker, seed ticks (and a few bad ones), then report."""
    Stack(settings).up()
    worker = Worker(settings)
    print("worker: starting (faust -A topologies.fintank worker) ...")
    worker.start()
    print(f"worker: up at {worker.url} (log {worker.log_file})")

    started = time.time()
    ticks = [
        (t["symbol"].encode(), orjson.dumps(t)) for t in random_walk_ticks(SYMBOLS, TICKS, started)
    ]
    bad: list[tuple[bytes | None, bytes]] = [(b"demo", raw) for raw in INVALID_TICKS]
    asyncio.run(
        send_paced(
            settings.bootstrap,
            settings.topics.ticks,
            ticks + bad,
            len(ticks) + INVALID,
            rate=2000,
            label="ticks",
        )
    )

    where = f"time >= {int(started * 1e9)}"
    counts = _wait_for_points(settings, where, TICKS)
    letters = asyncio.run(read_topic(settings.bootstrap, settings.topics.deadletters))
    print()
    print(
        f"InfluxDB {settings.influx_url} database {settings.influx_database!r}, measurement bid_ask:"
    )
    for symbol, n in sorted(counts.items()):
        print(f"  {symbol:6} {n} points from this run")
    print(
        f"Kafka topic {settings.topics.deadletters!r}: {len(letters)} dead letters in all; the latest:"
    )
    for letter in letters[-3:]:
        print(f"  - {letter.value['reason']}")
    print()
    print("Where to look:")
    print(f"  worker health     curl {worker.url}/health")
    print(
        f"  InfluxQL          curl '{settings.influx_url}/query?db={settings.influx_database}' "
        "--data-urlencode 'q=SELECT * FROM bid_ask ORDER BY time DESC LIMIT 5'"
    )
    print(f"  worker log        {worker.log_file}")
    print("  stop everything   .venv/bin/invoke down")


def _wait_for_points(
    settings: Settings, where: str, want: int, timeout: float = 60
) -> dict[str, int]:
    deadline = time.monotonic() + timeout
    counts: dict[str, int] = {}
    while time.monotonic() < deadline:
        series = influxql(
            settings.influx_url,
            settings.influx_database,
            f"SELECT count(bid) FROM bid_ask WHERE {where} GROUP BY symbol",
        )
        counts = {s["tags"]["symbol"]: int(s["values"][0][1]) for s in series}
        if sum(counts.values()) >= want:
            break
        time.sleep(0.5)
    return counts
