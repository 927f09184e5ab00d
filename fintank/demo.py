"""`invoke demo`: the main job on the local stack, end to end, with a report of where things landed."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import orjson

from fintank.config import Settings
from fintank.engine.kafka import KafkaSettings
from fintank.generators import INVALID_ORDERS, INVALID_TICKS, random_orders, random_walk_ticks
from fintank.peek import read_topic
from fintank.producer import send_paced
from fintank.sinks.lines import to_ns
from fintank.sinks.query import influxql
from fintank.stack import Stack
from fintank.stack.worker import Worker

SYMBOLS = ["VTI", "IVE", "IWS"]
TICKS = 3000
ORDERS = 40
INVALID = len(INVALID_TICKS)


def run_demo(settings: Settings, venv_bin: Path) -> None:
    """Start the stack and a worker, seed ticks (and a few bad ones), then report."""
    Stack(settings).up()
    worker = Worker(settings)
    print("worker: starting (faust -A topologies.fintank worker) ...")
    worker.start()
    print(f"worker: up at {worker.url} (log {worker.log_file})")

    kafka = KafkaSettings.from_settings(settings)  # servers, TLS, SASL
    # Whole microseconds, as the ticks' timestamps are: the first tick is at exactly this
    # time, so the count "from this run" below includes it (round(t, 6) could be below t).
    started = round(time.time(), 6)
    ticks = [
        (t["symbol"].encode(), orjson.dumps(t)) for t in random_walk_ticks(SYMBOLS, TICKS, started)
    ]
    bad: list[tuple[bytes | None, bytes]] = [(b"demo", raw) for raw in INVALID_TICKS]
    asyncio.run(
        send_paced(
            kafka,
            settings.topics.ticks,
            ticks + bad,
            len(ticks) + INVALID,
            rate=2000,
            label="ticks",
        )
    )

    where = f"time >= {to_ns(started)}"
    counts = _wait_for_points(settings, where, TICKS)

    orders = [
        (o["portfolio_order_id"].encode(), orjson.dumps(o))
        for o in random_orders(SYMBOLS, ORDERS, time.time(), taxpayers=5, limit_share=0.2)
    ]
    bad_orders: list[tuple[bytes | None, bytes]] = [(b"demo", raw) for raw in INVALID_ORDERS]
    asyncio.run(
        send_paced(
            kafka,
            settings.topics.orders,
            orders + bad_orders,
            len(orders) + len(bad_orders),
            rate=50,
            label="orders",
        )
    )
    time.sleep(3)
    executions = asyncio.run(read_topic(kafka, settings.topics.executions))
    fills = asyncio.run(read_topic(kafka, settings.topics.fills))
    letters = asyncio.run(read_topic(kafka, settings.topics.deadletters))
    candles = asyncio.run(read_topic(kafka, settings.topics.candles))

    print()
    print(
        f"InfluxDB {settings.influx_url} database {settings.influx_database!r}, measurement bid_ask:"
    )
    for symbol, n in sorted(counts.items()):
        print(f"  {symbol:6} {n} points from this run")
    print(f"Kafka {settings.topics.executions!r}: {len(executions)} executions in all; the latest:")
    for r in executions[-3:]:
        e = r.value
        print(
            f"  {e['execution_id']:24} {e['order_type']:4} {e['requested_shares']:>12} {e['symbol']:4}"
            f" @ {e['requested_price']} (quote of {e['quote_timestamp']})"
        )
    print(f"Kafka {settings.topics.fills!r}: {len(fills)} fills in all; the latest:")
    for r in fills[-3:]:
        f = r.value
        print(
            f"  {f['fill_id']:24} shares {f['delta_shares_position']:+.6f} cash {f['delta_cash_position']:+.2f}"
        )
    print(f"Kafka {settings.topics.deadletters!r}: {len(letters)} dead letters in all; the latest:")
    for letter in letters[-4:]:
        print(f"  - [{letter.value['source_topic']}] {letter.value['reason']}")
    print(f"Kafka {settings.topics.candles!r}: {len(candles)} candles in all; the latest:")
    for r in candles[-3:]:
        c = r.value
        print(
            f"  {c['symbol']:4} {c['interval']:2} start {c['start']:.0f} open {c['open']:.4f}"
            f" high {c['high']:.4f} low {c['low']:.4f} close {c['close']:.4f} ({c['count']} ticks)"
        )
    taxpayer = orjson.loads(orders[0][1])["taxpayer_id"]
    symbol = SYMBOLS[0]
    print()
    print("Where to look:")
    print(f"  live page         {worker.url}/  (open in a browser)")
    print(f"  quotes            curl {worker.url}/instruments")
    print(f"  candles           curl '{worker.url}/candles/{symbol}?interval=1s&minutes=5'")
    print(f"  positions         curl {worker.url}/positions/{taxpayer}")
    print(f"  worker health     curl {worker.url}/health")
    print(
        f"  InfluxQL          curl '{settings.influx_url}/query?db={settings.influx_database}' "
        "--data-urlencode 'q=SELECT * FROM fills ORDER BY time DESC LIMIT 5'"
    )
    print("  Grafana           import dashboards/order-flow.json (see README.md)")
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
