"""The rule engine over the real Kafka and InfluxDB, seeded with the invoke tasks.

Every component of every valid order must yield exactly one execution and
one fill, at the right side of the quote, also when the worker is killed
(SIGKILL) mid-stream and restarted.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import orjson

from fintank.peek import Record, read_topic
from fintank.sinks.query import influx_count
from tests.integration.conftest import INVOKE, REPO, Env


def dry_run_orders(env: Env, *args: str) -> list[dict[str, Any]]:
    done = env.invoke("queue-orders", "--dry-run", *args)
    return [orjson.loads(line) for line in done.stdout.splitlines()]


def expected_components(orders: list[dict[str, Any]]) -> set[str]:
    return {
        f"{o['portfolio_order_id']}/{i}"
        for o in orders
        for i, entry in enumerate(o["portfolio"])
        if entry["weight"] > 0
    }


def read(env: Env, topic: str) -> list[Record]:
    return asyncio.run(read_topic(env.settings.bootstrap, topic))


def wait_for_fills(env: Env, want: int, timeout: float = 120) -> tuple[list[Record], list[Record]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and len(read(env, env.settings.topics.fills)) < want:
        time.sleep(1)
    time.sleep(3)  # nothing more may arrive afterwards
    return read(env, env.settings.topics.executions), read(env, env.settings.topics.fills)


def seed_ticks(env: Env, symbols: str, count: int = 600) -> list[Record]:
    env.invoke(
        "queue-ticks", "--count", str(count), "--rate", "0", "--symbols", symbols, "--seed", "5"
    )
    s = env.settings
    deadline = time.monotonic() + 90
    while influx_count(s.influx_url, s.influx_database, "bid_ask", "bid") < count:
        assert time.monotonic() < deadline, "ticks were not processed"
        time.sleep(0.5)
    return read(env, s.topics.ticks)


def expected_positions(
    fills: list[Record],
) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """Each taxpayer's cash and shares per symbol, summed from fills (keyed by taxpayer id text)."""
    cash: dict[str, float] = defaultdict(float)
    shares: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for r in fills:
        f = r.value
        cash[str(f["taxpayer_id"])] += f["delta_cash_position"]
        shares[str(f["taxpayer_id"])][f["symbol"]] += f["delta_shares_position"]
    return cash, shares


def assert_exactly_once(
    executions: list[Record], fills: list[Record], components: set[str]
) -> None:
    exec_ids = [r.value["component_order_id"] for r in executions]
    fill_ids = [r.value["component_order_id"] for r in fills]
    assert sorted(exec_ids) == sorted(components), "missing or duplicate executions"
    assert sorted(fill_ids) == sorted(components), "missing or duplicate fills"


def test_orders_execute_at_the_quote_and_fill_exactly_once(
    env: Env, start_worker: Callable[..., Any]
) -> None:
    worker = start_worker()
    symbols = f"A{env.suffix},B{env.suffix},C{env.suffix}"
    ticks = seed_ticks(env, symbols)
    args = (
        "--count",
        "60",
        "--symbols",
        symbols,
        "--taxpayers",
        "5",
        "--limit-share",
        "0",
        "--seed",
        "11",
        "--rate",
        "0",
    )
    orders = dry_run_orders(env, *args)
    components = expected_components(orders)

    env.invoke("queue-orders", *args, "--invalid", "4")

    executions, fills = wait_for_fills(env, len(components))
    assert_exactly_once(executions, fills, components)
    # Every order came after all ticks: each executes at its symbol's newest quote.
    newest: dict[str, dict[str, Any]] = {}
    for t in ticks:
        if (
            t.value["symbol"] not in newest
            or t.value["timestamp"] >= newest[t.value["symbol"]]["timestamp"]
        ):
            newest[t.value["symbol"]] = t.value
    for r in executions:
        e = r.value
        quote = newest[e["symbol"]]
        assert e["quote_timestamp"] == quote["timestamp"]
        assert e["requested_price"] == (quote["ask"] if e["order_type"] == "BUY" else quote["bid"])
        assert e["requested_shares"] == round(e["requested_amount"] / e["requested_price"], 6)
        assert r.key == e["symbol"]
    # The persister wrote every order, component, execution and fill.
    s = env.settings
    db = (s.influx_url, s.influx_database)
    deadline = time.monotonic() + 30
    while (
        influx_count(*db, "fills", "filled_amount") < len(components)
        and time.monotonic() < deadline
    ):
        time.sleep(0.5)
    assert influx_count(*db, "portfolio_orders", "amount") == 60
    assert influx_count(*db, "portfolio_component_orders", "amount") == len(components)
    assert influx_count(*db, "executions", "requested_amount") == len(components)
    assert influx_count(*db, "fills", "filled_amount") == len(components)
    # Positions are the sums of each taxpayer's fills.
    cash, shares = expected_positions(fills)
    for taxpayer in {str(o["taxpayer_id"]) for o in orders}:
        body = get_json(f"{worker.url}/positions/{taxpayer}")
        assert abs(body["cash"] - cash[taxpayer]) < 1e-5
        for symbol, held in body["positions"].items():
            assert abs(held - shares[taxpayer][symbol]) < 1e-5
    assert get_status(f"{worker.url}/positions/no-such-taxpayer") == 404
    letters = [r for r in read(env, s.topics.deadletters) if r.key == s.topics.orders]
    assert len(letters) == 4


def test_a_worker_killed_mid_stream_and_restarted_loses_and_duplicates_nothing(
    env: Env, start_worker: Callable[..., Any]
) -> None:
    worker = start_worker()
    symbols = f"K{env.suffix},L{env.suffix},M{env.suffix}"
    seed_ticks(env, symbols, count=300)
    args = (
        "--count",
        "600",
        "--symbols",
        symbols,
        "--taxpayers",
        "20",
        "--limit-share",
        "0",
        "--seed",
        "23",
    )
    components = expected_components(dry_run_orders(env, *args))

    sender = subprocess.Popen(
        [str(INVOKE), "queue-orders", *args, "--rate", "200"],
        cwd=REPO,
        env={**__import__("os").environ, **env.vars},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while len(read(env, env.settings.topics.fills)) < 100:  # mid-stream
            assert time.monotonic() < deadline, "no fills before the kill"
            time.sleep(0.2)
        assert worker.kill()
        start_worker()  # the same app id and state: a restart
    finally:
        assert sender.wait(timeout=120) == 0

    executions, fills = wait_for_fills(env, len(components), timeout=180)
    assert_exactly_once(executions, fills, components)


def get_json(url: str) -> Any:
    import urllib.request

    with urllib.request.urlopen(url, timeout=10) as resp:
        return orjson.loads(resp.read())


def get_status(url: str) -> int:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as err:
        return err.code
