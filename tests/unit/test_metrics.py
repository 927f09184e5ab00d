"""``GET /metrics``: the collector's output, parsed back with prometheus-client's own parser.

The engine runs on the in-memory broker (tests/support/engine.py), the
persister over a transport double that fails and refuses on demand, and the
built-in topology's `Market` bolt in the `Harness`; the collector reads them
all, and every metric README's *Metrics* section lists must be there with
the values those runs imply.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import aiohttp.web
import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from fintank.bolts import Market, Orders
from fintank.codec import dumps
from fintank.config import Settings
from fintank.counters import Histogram
from fintank.engine.kafka import TopicPartition
from fintank.metrics import CONTENT_TYPE, FintankCollector, exposition, registry
from fintank.runtime import _answer, _builtin_routes, build
from fintank.sinks.influx import InfluxPersister
from fintank.testing import Harness
from fintank.topology import Request, Response
from tests.support.engine import Cluster, Worker
from tests.support.trading import entry, order_json
from tests.unit.test_persister import RecordingTransport

#: Every metric the issue asks for (README "Metrics"), by family name as the parser names it.
REQUIRED = {
    "fintank_records_in": "counter",
    "fintank_records_out": "counter",
    "fintank_deadletters": "counter",
    "fintank_batch_duration_seconds": "histogram",
    "fintank_consumer_lag_records": "gauge",
    "fintank_persister_buffered_points": "gauge",
    "fintank_persister_written_points": "counter",
    "fintank_persister_retries": "counter",
    "fintank_persister_rejected_points": "counter",
    "fintank_persister_write_duration_seconds": "histogram",
    "fintank_recovery_seconds": "summary",
    "fintank_last_recovery_seconds": "gauge",
    "fintank_bolt_executions": "gauge",
    "fintank_bolt_fills": "gauge",
    "fintank_bolt_late_ticks": "gauge",
}


def parse(text: bytes) -> dict[str, Any]:
    return {f.name: f for f in text_string_to_metric_families(text.decode("utf-8"))}


def samples(families: dict[str, Any], name: str) -> list[Sample]:
    return list(families[name].samples)


def value(families: dict[str, Any], sample: str, **labels: str) -> float:
    family = sample.removesuffix("_total").removesuffix("_count").removesuffix("_sum")
    family = family.removesuffix("_bucket")
    [match] = [
        s
        for s in families[family].samples
        if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items())
    ]
    return float(match.value)


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    c = Cluster()
    yield c
    c.check_no_violation()
    c.close()


def engine_run(c: Cluster) -> Worker:
    """One worker: 9 records on in-a (2 bad, 1 exec), 4 on in-b, all processed and committed."""
    w = c.new_worker()
    c.rebalance([w])
    for i in range(9):
        c.produce("in-a", f"k{i % 3}", b"bad" if i in (2, 5) else b"exec" if i == 7 else b"x")
    for i in range(4):
        c.produce("in-b", f"k{i}", b"x")
    c.drain()
    return w


def persister_run() -> InfluxPersister:
    """Three points written (one retry first), two refused, one still buffered."""

    async def scenario() -> InfluxPersister:
        transport = RecordingTransport(fail=1)
        persister = InfluxPersister(transport, batch_size=3, max_buffer=10, max_backoff=0.001)
        persister.add(["a", "b", "c"])
        await persister.flush()
        transport.reject = True
        persister.add(["d", "e"])
        await persister.flush()
        persister.add(["f"])
        return persister

    return asyncio.run(scenario())


def market_run() -> Harness:
    """Two components resting, then ticks: 2 executions, 2 fills, and a tick late for both
    its 1s and its 1m candle (`late_ticks` counts it once per interval)."""
    orders = Harness(Orders)
    placed = orders.feed(
        "orders",
        [order_json(portfolio_order_id="po-1", portfolio=[entry("VTI", 0.5), entry("IVE", 0.5)])],
        now=1.0,
    )
    market = Harness(Market)
    market.feed(
        "components", [dumps(e.value) for e in placed.emits if e.output == "components"], 2.0
    )
    ticks = [
        {"symbol": s, "exchange": "X", "bid": 10.0, "ask": 10.5, "timestamp": t}
        for s, t in [("VTI", 100.0), ("IVE", 101.0), ("VTI", 165.0), ("VTI", 110.0)]
    ]
    out = market.feed("ticks", [dumps(t) for t in ticks], now=170.0)
    while out.then is not None:  # executions delivered: their fills follow
        out = out.then(171.0) if callable(out.then) else out.then
    return market


def scrape(c: Cluster, w: Worker, persister: InfluxPersister, market: Harness) -> dict[str, Any]:
    collector = FintankCollector(w.engine, persister, lambda: {"market": market.bolt.stats()})
    return parse(exposition(registry(collector)))


def test_every_metric_the_issue_lists_is_there_with_its_type(cluster: Cluster) -> None:
    families = scrape(cluster, engine_run(cluster), persister_run(), market_run())

    kinds = {name: families[name].type for name in REQUIRED if name in families}
    assert kinds == REQUIRED
    assert all(name.startswith("fintank_") for name in families)


def test_engine_counters_count_what_the_engine_did(cluster: Cluster) -> None:
    w = engine_run(cluster)
    families = scrape(cluster, w, persister_run(), market_run())

    assert value(families, "fintank_records_in_total", topic="in-a") == 9
    assert value(families, "fintank_records_in_total", topic="in-b") == 4
    assert value(families, "fintank_deadletters_total", topic="in-a") == 2
    assert value(families, "fintank_records_out_total", topic="out") == 13  # one per record
    assert value(families, "fintank_records_out_total", topic="deadletters") == 2
    assert value(families, "fintank_records_out_total", topic="exec") == 1
    assert value(families, "fintank_records_out_total", topic="fill") == 1
    assert value(families, "fintank_records_out_total", topic="machine-seen-changelog") > 0
    assert value(families, "fintank_recovery_seconds_count") == 1
    assert value(families, "fintank_recovery_seconds_sum") >= 0
    assert value(families, "fintank_ready") == 1
    assert value(families, "fintank_assigned_partitions") == 6  # 3 partitions of 2 inputs
    assert value(families, "fintank_engine_commits_total") >= 1


def test_the_batch_histogram_is_cumulative_and_counts_every_batch(cluster: Cluster) -> None:
    w = engine_run(cluster)
    families = scrape(cluster, w, persister_run(), market_run())

    buckets = [
        s for s in samples(families, "fintank_batch_duration_seconds") if s.name.endswith("_bucket")
    ]
    counts = [s.value for s in buckets]
    bounds = [float(s.labels["le"]) for s in buckets]
    batches = sum(lane.done > 0 for t in w.engine.tasks.values() for lane in t.lanes.values())
    assert {s.labels["bolt"] for s in buckets} == {"g"}
    assert bounds == sorted(bounds) and bounds[-1] == float("inf")
    assert counts == sorted(counts)  # cumulative
    assert counts[-1] == value(families, "fintank_batch_duration_seconds_count", bolt="g")
    assert counts[-1] >= batches > 0


def test_lag_is_per_partition_and_follows_the_high_water_mark(cluster: Cluster) -> None:
    w = engine_run(cluster)
    collector = FintankCollector(w.engine, persister_run(), dict)
    assert set(w.engine.lags().values()) == {0}  # all processed

    for _ in range(3):
        cluster.produce("in-a", "k0", b"x")  # not fetched: the consumer's high water moves
    families = parse(exposition(registry(collector)))
    lagging = {
        (s.labels["topic"], s.labels["partition"]): s.value
        for s in samples(families, "fintank_consumer_lag_records")
        if s.value
    }

    assert len(samples(families, "fintank_consumer_lag_records")) == 6
    [(tp, lag)] = lagging.items()
    assert tp[0] == "in-a" and lag == 3
    assert w.engine.lags()[TopicPartition("in-a", int(tp[1]))] == 3


def test_persister_counters_and_write_time(cluster: Cluster) -> None:
    families = scrape(cluster, engine_run(cluster), persister_run(), market_run())

    assert value(families, "fintank_persister_written_points_total") == 3
    assert value(families, "fintank_persister_batches_total") == 1
    assert value(families, "fintank_persister_retries_total") == 1
    assert value(families, "fintank_persister_rejected_points_total") == 2
    assert value(families, "fintank_persister_buffered_points") == 1
    assert value(families, "fintank_persister_write_duration_seconds_count") == 1
    assert value(families, "fintank_persister_write_duration_seconds_bucket", le="+Inf") == 1


def test_bolt_stats_become_gauges_labelled_by_bolt(cluster: Cluster) -> None:
    market = market_run()
    families = scrape(cluster, engine_run(cluster), persister_run(), market)

    assert market.bolt.stats() == {
        "late_ticks": 2,
        "executions": 2,
        "fills": 2,
        "repeated_components": 0,
    }
    assert value(families, "fintank_bolt_executions", bolt="market") == 2
    assert value(families, "fintank_bolt_fills", bolt="market") == 2
    assert value(families, "fintank_bolt_late_ticks", bolt="market") == 2


def test_a_histogram_counts_into_the_first_bound_at_or_above_the_value() -> None:
    hist = Histogram((0.1, 1.0))
    for v in (0.05, 0.1, 0.5, 1.0, 3.0):
        hist.observe(v)

    assert hist.counts == [2, 2, 1]
    assert hist.cumulative() == [(0.1, 2), (1.0, 4), (float("inf"), 5)]
    assert hist.count == 5 and hist.sum == pytest.approx(4.65)


# --- the route -----------------------------------------------------------------------


def test_the_worker_serves_metrics_in_the_text_format() -> None:
    from topologies.fintank import topology

    runtime = build(topology, Settings(app_id="metrics-unit"))
    [route] = [r for r in _builtin_routes(runtime) if r.path == "/metrics"]

    response = route.handler(Request({}, {}))

    assert (response.status, response.content_type) == (200, CONTENT_TYPE)
    families = parse(response.body)
    assert value(families, "fintank_ready") == 0  # built, never started
    ins = {s.labels["topic"]: s.value for s in families["fintank_records_in"].samples}
    assert ins == {topic: 0 for topic in runtime.engine.group_of}  # every input, from 0
    assert set(families) >= {n for n in REQUIRED if not n.startswith("fintank_bolt_")}


class AiohttpWeb:
    """What `_answer` is handed: faust's aiohttp driver makes an aiohttp Response the same way."""

    def bytes(self, value: bytes, **kwargs: Any) -> aiohttp.web.Response:
        return aiohttp.web.Response(body=value, **kwargs)


def test_a_content_type_with_a_charset_reaches_aiohttp_as_a_header() -> None:
    answer = _answer(AiohttpWeb(), Response(200, b"x 1\n", CONTENT_TYPE))

    assert answer.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    json_answer = _answer(AiohttpWeb(), Response(200, {"a": 1}))
    assert json_answer.content_type == "application/json"
