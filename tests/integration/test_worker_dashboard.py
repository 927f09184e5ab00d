"""The worker dashboard, proven against the real VictoriaMetrics scraping a real worker.

A worker of the built-in topology runs on the test stack with its own web
port; `Worker.start` lists it in the stack's scrape targets
(`fintank.stack.scrape`), so the test stack's VictoriaMetrics scrapes its
``GET /metrics`` every 2 s, as `fintank up`'s does. The test feeds it ticks,
invalid ticks, orders and invalid orders, waits until VictoriaMetrics holds
the final counters, then runs every query of every panel of
``dashboards/worker.json`` as Grafana renders it (``$instance``,
``$__rate_interval``, ``$__range``, ``$__interval``) against VictoriaMetrics'
Prometheus API, and checks that each returns the series its panel plots with
values that add up to what was sent. The worker logs JSON
(``FINTANK_LOG_FORMAT=json``): every line of its log must be a JSON object.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson

from fintank.config import Settings
from fintank.engine import kafka
from fintank.generators import INVALID_ORDERS, INVALID_TICKS, random_orders, random_walk_ticks
from fintank.stack import Stack, procs, scrape
from fintank.stack.scrape import SCRAPE_INTERVAL
from tests.integration.conftest import Env
from tests.integration.load import free_port

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "dashboards" / "worker.json"

STEP = 2  # seconds: Grafana's $__interval on a short range is the data source's timeInterval
SCRAPE = int(SCRAPE_INTERVAL.removesuffix("s"))
# Grafana: $__rate_interval = max($__interval + scrape interval, 4 x scrape interval).
RATE_INTERVAL = f"{max(STEP + SCRAPE, 4 * SCRAPE)}s"

TICKS, BAD_TICKS, ORDERS = 600, len(INVALID_TICKS), 20
BAD_ORDERS = len(INVALID_ORDERS)


# --- VictoriaMetrics' Prometheus API --------------------------------------------------


def api(stack: Stack, path: str, **params: Any) -> Any:
    url = f"http://127.0.0.1:{stack.settings.victoria_port}{path}"
    if params:
        url += "?" + urllib.parse.urlencode(params, doseq=True)
    with urllib.request.urlopen(url, timeout=10) as resp:
        doc = json.loads(resp.read())
    assert doc["status"] == "success", doc
    return doc["data"]


def instant(stack: Stack, query: str) -> list[dict[str, Any]]:
    return list(api(stack, "/api/v1/query", query=query, time=time.time())["result"])


def wait_until(what: str, check: Callable[[], bool], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


def scraped(stack: Stack, instance: str) -> bool:
    targets = api(stack, "/api/v1/targets")["activeTargets"]
    return any(t["labels"].get("instance") == instance and t["health"] == "up" for t in targets)


# --- the dashboard ----------------------------------------------------------------------


def load_dashboard() -> dict[str, Any]:
    return dict(json.loads(DASHBOARD.read_text()))


def all_targets(dashboard: dict[str, Any]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    for panel in dashboard["panels"]:
        for inner in [panel, *panel.get("panels", [])]:
            if inner["type"] != "row":
                for target in inner["targets"]:
                    yield inner, target


def render(expr: str, instance: str, range_s: int) -> str:
    """What Grafana sends for a panel's PromQL: variables and interval macros substituted."""
    # A (multi-value) variable inside a regex matcher: its regex characters escaped.
    escaped = re.sub(r"([\\^$.|?*+()\[\]{}])", r"\\\\\1", instance)
    out = expr.replace("$instance", escaped).replace("${instance}", escaped)
    out = out.replace("$__rate_interval", RATE_INTERVAL).replace("$__range", f"{range_s}s")
    out = out.replace("$__interval", f"{STEP}s")
    left = re.findall(r"\$\{?\w+", out)
    assert not left, f"variables Grafana would substitute but the test does not: {left}"
    return out


# --- the load -----------------------------------------------------------------------------


async def send(env: Env, topic: str, records: list[tuple[bytes | None, bytes]]) -> None:
    producer = kafka.producer(kafka.KafkaSettings(env.settings.bootstrap, ""), linger_ms=5)
    await producer.start()
    try:
        futures = [await producer.send(topic, value=v, key=k) for k, v in records]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


def metrics_text(url: str) -> str:
    with urllib.request.urlopen(url + "/metrics", timeout=5) as resp:
        assert resp.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
        return str(resp.read().decode("utf-8"))


def sample(text: str, name: str, **labels: str) -> float:
    """One sample's value from the text format (0 if absent)."""
    for line in text.splitlines():
        if not line.startswith(name + ("{" if labels else " ")):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def series_values(result: list[dict[str, Any]]) -> list[float]:
    return [float(v) for r in result for _, v in r.get("values", [r.get("value")])]


# --- the test -------------------------------------------------------------------------------


def test_every_worker_panel_query_returns_what_the_worker_did(
    env: Env, stack: Stack, start_worker: Callable[..., Any]
) -> None:
    topics = env.settings.topics
    port = free_port()
    instance = f"127.0.0.1:{port}"
    began = time.time()
    worker = start_worker("dash", FINTANK_WEB_PORT=str(port), FINTANK_LOG_FORMAT="json")
    wait_until("VictoriaMetrics to scrape the worker", lambda: scraped(stack, instance))
    wait_until(
        "a first scrape with the counters at 0",
        lambda: bool(instant(stack, f'fintank_records_in_total{{instance="{instance}"}}')),
    )

    # Ticks first (valid and invalid), processed before the orders, so every order finds quotes.
    symbols = [f"A{env.suffix}", f"B{env.suffix}", f"C{env.suffix}"]
    ticks = list(random_walk_ticks(symbols, TICKS, time.time(), seed=3))
    records = [(t["symbol"].encode(), orjson.dumps(t)) for t in ticks]
    asyncio.run(send(env, topics.ticks, [*records, *((None, b) for b in INVALID_TICKS)]))
    wait_until(
        "the ticks to be processed",
        lambda: (
            sample(metrics_text(worker.url), "fintank_records_in_total", topic=topics.ticks)
            == TICKS + BAD_TICKS
        ),
    )
    late = {**ticks[-1], "timestamp": ticks[-1]["timestamp"] - 120}  # late for 1s and 1m
    orders = list(random_orders(symbols, ORDERS, time.time(), taxpayers=5, limit_share=0, seed=9))
    asyncio.run(send(env, topics.ticks, [(late["symbol"].encode(), orjson.dumps(late))]))
    order_records = [(o["portfolio_order_id"].encode(), orjson.dumps(o)) for o in orders]
    asyncio.run(send(env, topics.orders, [*order_records, *((None, b) for b in INVALID_ORDERS)]))
    components = sum(1 for o in orders for e in o["portfolio"] if e["weight"] > 0)

    def done() -> bool:
        text = metrics_text(worker.url)
        return (
            sample(text, "fintank_bolt_fills", bolt="market") == components
            and sample(text, "fintank_deadletters_total", topic=topics.orders) == BAD_ORDERS
            and sample(text, "fintank_persister_buffered_points") == 0
        )

    wait_until("every order to be executed and filled", done)
    final = metrics_text(worker.url)
    wait_until(
        "VictoriaMetrics to hold the final counters",
        lambda: (
            [
                series_values(instant(stack, f'fintank_bolt_fills{{instance="{instance}"}}')),
                series_values(
                    instant(
                        stack,
                        f'fintank_records_in_total{{instance="{instance}",topic="{topics.orders}"}}',
                    )
                ),
            ]
            == [[float(components)], [float(ORDERS + BAD_ORDERS)]]
        ),
    )
    time.sleep(2 * SCRAPE)  # one more scrape: the range's last step sees the final values

    end = time.time()
    start = math.floor(began) - 10
    range_s = math.ceil(end - start)
    dashboard = load_dashboard()
    results: dict[str, list[dict[str, Any]]] = {}
    for panel, target in all_targets(dashboard):
        query = render(target["expr"], instance, range_s)
        if target.get("instant"):
            result = api(stack, "/api/v1/query", query=query, time=end)["result"]
        else:
            result = api(
                stack, "/api/v1/query_range", query=query, start=start, end=end, step=STEP
            )["result"]
        assert result, f"{panel['title']} / {target['refId']}: no series for {query}"
        results[f"{panel['title']}/{target['refId']}"] = result

    def by(title: str, label: str) -> dict[str, list[float]]:
        return {r["metric"].get(label, ""): series_values([r]) for r in results[title]}

    # Throughput: every record sent was handed to a bolt; executions and fills went out.
    ins = by("Records in (range)/A", "topic")
    assert ins[topics.ticks] == [TICKS + BAD_TICKS + 1]
    assert ins[topics.orders] == [ORDERS + BAD_ORDERS]
    assert ins[topics.components] == [components]
    assert max(by("Records in per second/A", "topic")[topics.ticks]) > 0
    outs = by("Records out per second/A", "topic")
    assert max(outs[topics.executions]) > 0 and max(outs[topics.fills]) > 0
    assert max(outs[topics.deadletters]) > 0
    # Dead letters: exactly the invalid records, by source topic.
    dead = by("Dead letters (range)/A", "topic")
    assert dead[topics.ticks] == [BAD_TICKS] and dead[topics.orders] == [BAD_ORDERS]
    assert max(by("Dead letters per minute/A", "topic")[topics.ticks]) > 0
    assert by("Ready workers/A", "")[""] == [1]
    # Lag: one series per input partition of this worker, all caught up at the end.
    lag = by("Consumer lag by partition/A", "partition")
    partitions = env.settings.partitions
    lag_ticks = [
        r for r in results["Consumer lag by partition/A"] if r["metric"]["topic"] == topics.ticks
    ]
    assert len(lag_ticks) == partitions and len(lag) == partitions
    assert all(series_values([r])[-1] == 0 for r in results["Consumer lag by partition/A"])
    # Latency: quantiles of the histograms, positive and finite where there were batches.
    for title in ("Batch processing time/A", "Batch processing time/B"):
        market = by(title, "bolt")["market"]
        assert any(0 < v < math.inf for v in market), title
    for title in ("InfluxDB write time/A", "InfluxDB write time/B"):
        assert any(0 < v < math.inf for v in by(title, "")[""]), title
    assert max(by("Recovery time/A", "instance")[instance]) > 0
    # The persister wrote points, nothing is left, nothing retried or refused.
    assert max(by("Points written per second/A", "")[""]) > 0
    assert by("Points written per second/B", "")[""][-1] == 0
    assert set(by("Retries and rejected points/A", "")[""]) == {0}
    assert set(by("Retries and rejected points/B", "")[""]) == {0}
    # Trading: every component executed and filled once; the late tick counted.
    assert by("Executions and fills/A", "")[""][-1] == components
    assert by("Executions and fills/B", "")[""][-1] == components
    assert by("Late ticks/A", "")[""][-1] >= 2
    assert sample(final, "fintank_bolt_late_ticks", bolt="market") >= 2

    # The worker variable lists it.
    listed = api(stack, "/api/v1/label/instance/values", **{"match[]": "fintank_ready"})
    assert instance in listed

    # JSON logs: every line of the worker's log is one object with the four fields.
    lines = worker.log_file.read_text().splitlines()
    assert len(lines) > 10
    for line in lines:
        doc = orjson.loads(line)
        assert {"time", "level", "logger", "message"} <= set(doc), line


# --- `fintank up`'s VictoriaMetrics: its scrape config ------------------------------------


def test_up_restarts_a_victoriametrics_started_without_the_scrape_config(tmp_path: Path) -> None:
    """One started by an older fintank (no -promscrape.config) is restarted once, then kept."""
    port = free_port()
    settings = Settings(state_dir=str(tmp_path), victoria_port=port, web_port=free_port())
    stack = Stack(settings)
    old = [
        "victoria-metrics",
        f"-storageDataPath={tmp_path / 'victoria' / 'data'}",
        f"-httpListenAddr=127.0.0.1:{port}",
        "-loggerLevel=WARN",
    ]
    stack.victoria.pid_file.parent.mkdir(parents=True)
    procs.spawn(old, stack.victoria.pid_file, stack.victoria.log_file, tmp_path)
    said: list[str] = []
    try:
        procs.wait_until(stack.victoria.is_up, "old victoria-metrics", 60)
        first = procs.read_pid(stack.victoria.pid_file)

        stack.start_victoria(said.append)
        second = procs.read_pid(stack.victoria.pid_file)
        stack.start_victoria(said.append)

        assert second is not None and second != first
        assert procs.read_pid(stack.victoria.pid_file) == second  # the second `up` kept it
        assert said[0].startswith(f"victoria-metrics: restarting (pid {first})")
        assert said[-1].startswith(f"victoria-metrics: already running (pid {second})")
        config = scrape.config_path(tmp_path)
        assert stack._scrapes(config)
        # The config is valid for VictoriaMetrics, and lists the default worker's port.
        done = subprocess.run(
            ["victoria-metrics", f"-promscrape.config={config}", "-promscrape.config.dryRun"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        targets = scrape.targets_path(tmp_path)
        listed = [json.loads(p.read_text()) for p in sorted(targets.glob("*.json"))]
        assert listed == [[{"targets": [f"127.0.0.1:{settings.web_port}"]}]]
        wait_until(
            "the default worker's target to be discovered",
            lambda: any(
                t["labels"]["instance"] == f"127.0.0.1:{settings.web_port}"
                and t["labels"]["job"] == scrape.JOB
                for t in api(stack, "/api/v1/targets")["activeTargets"]
            ),
            timeout=30,
        )
    finally:
        procs.stop(stack.victoria.pid_file)
