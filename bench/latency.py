"""Latency under a steady mixed load: one real fintank worker, ticks and orders in, executions out.

    python -m bench.latency [--seconds 30] [--bootstrap 127.0.0.1:9092] [--keep]

A real worker (``faust -A topologies.fintank worker``) runs on its own topics
(``{run}-lat-*``, created with `fintank.stack.topics.ensure_topics`), app id,
web port, state dir and InfluxDB database (``bench_latency``). Once it is
ready, this process alone produces, for ``--seconds``:

* steady ticks: 1,000/s round-robin over 8 symbols, paced by a
  ``perf_counter_ns`` schedule (tick i is due at t0 + i ms; a late loop
  catches up, nothing drifts). Their mids stay within +-0.04 % of a base price.
* every 200 ms a market BUY portfolio order for a fresh symbol (no quote yet:
  it rests), and 100 ms later that symbol's first tick, which must execute it;
* every 200 ms (50 ms later) a market order on a steady symbol, which has a
  quote, so it executes on arrival;
* every 200 ms (100 ms later) a LIMIT order on a steady symbol, 0.2 % outside
  the band (it rests), and 100 ms later one crossing tick (0.3 % outside the
  band). A limit still unexecuted 1 s after its crossing tick gets another.

Order and extra ticks come on top of the 1,000 steady ticks/s. Each order has
one component, so each must get exactly one execution. A read_committed
aiokafka consumer (``fetch_max_wait_ms=5``) reads ``executions`` in this same
process, and every latency is a difference of this process's
``perf_counter_ns`` readings:

* tick -> execution seen: from producing the tick that triggered it (a fresh
  symbol's first tick; for a limit, the tick whose timestamp equals the
  execution's ``quote_timestamp``) to the consumer returning the execution.
  A limit that executed on arrival at a quote older than the order has no
  triggering tick and is counted apart. If an order's component reaches the
  worker after its triggering tick, the figure includes that wait too (the
  execution could not have happened earlier).
* order -> execution seen: from producing the order to the execution seen.
  Targets apply to the market orders on quoted symbols; for the resting
  orders it includes the designed 100 ms wait for the triggering tick.

Where the time goes: an execution's ``timestamp`` is the worker's wall clock
when it began processing the batch that made it, so "produced -> processed"
and "processed -> seen" split each path (wall clocks of one machine: this
process's ``time.time()`` at produce/seen time and the worker's). Orders
produced in the first ``--warmup`` seconds are left out of every figure.

Baseline: a second consumer (its own connection, same settings) reads the
ticks topic back; "tick produced -> read back" is what Kafka, the clients and
this machine cost without fintank, a floor for the figures above.
"""

from __future__ import annotations

import argparse
import asyncio
import heapq
import itertools
import math
import os
import random
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from bench.worker import WorkerSpec, free_port, health, log_problems, stop
from fintank.generators import START_PRICES as BASES

SYMBOLS = ("VTI", "IVE", "IWS", "SPY", "QQQ", "IWM", "EFA", "AGG")
TICK_RATE = 1000  # steady ticks per second
ORDER_EVERY = 0.2  # seconds between two orders of one kind
TRIGGER_AFTER = 0.1  # a resting order's triggering tick follows it after this long
REARM = 1.0  # a limit not executed this long after its crossing tick gets another
BAND = 0.0004  # steady mids stay within base * (1 +- BAND)
SPREAD = 0.0001  # half spread, relative to base
LIMIT_GAP = 0.002  # limits rest this far outside the base
CROSS = 0.003  # a crossing tick's price is this far outside the base
DRAIN = 15.0  # seconds to wait after the load for executions still missing
MS = 1e6  # ns per ms

TARGET_P99_MS = 10.0
TARGET_MAX_MS = 100.0
TARGET_LATE_MS = 1000.0


@dataclass(frozen=True, slots=True)
class Stamp:
    """When this process produced or saw something: perf_counter_ns and wall clock."""

    ns: int
    wall: float


def _stamp() -> Stamp:
    return Stamp(time.perf_counter_ns(), time.time())


@dataclass
class Order:
    kind: str  # "fresh" (market, new symbol), "market" (quoted symbol) or "limit"
    order_id: str
    symbol: str
    side: str
    sent: Stamp
    tick: Stamp | None = None  # fresh: its first tick
    last_trigger_ns: int = 0  # limit: when its latest crossing tick was produced
    seen: list[tuple[Stamp, dict[str, Any]]] = field(default_factory=list)


class Load:
    """Produces the ticks and orders, remembers when; collects executions as they are seen."""

    def __init__(self, producer: Any, ticks: str, orders: str, run: str) -> None:
        self.producer = producer
        self.delivery_errors: list[str] = []
        self.ticks_topic = ticks
        self.orders_topic = orders
        self.run = run
        self.rng = random.Random(7)
        self.ticks: dict[tuple[str, float], Stamp] = {}
        self.last_ts: dict[str, float] = {}
        self.orders: dict[str, Order] = {}
        self.counts = {"steady": 0, "cross": 0, "fresh": 0}  # ticks produced
        self.made = {"fresh": 0, "market": 0, "limit": 0}  # orders produced
        self.unknown: list[dict[str, Any]] = []
        # (produced ns, ms from produced to read back from the ticks topic), per tick
        self.echo: list[tuple[int, float]] = []
        self.events: list[tuple[int, int, Callable[[int], None]]] = []
        self._seq = itertools.count()
        self.t0 = 0
        self.orders_until = 0

    # ------------------------------------------------------------ ticks
    def _tick(self, symbol: str, bid: float, ask: float) -> Stamp:
        ts = round(time.time(), 6)
        last = self.last_ts.get(symbol, 0.0)
        if ts <= last:
            ts = round(last + 1e-6, 6)  # one (symbol, timestamp) is one tick
        self.last_ts[symbol] = ts
        value = {"symbol": symbol, "exchange": "NYSE", "bid": bid, "ask": ask, "timestamp": ts}
        body = orjson.dumps(value)
        ns = time.perf_counter_ns()
        self.producer.produce(self.ticks_topic, key=symbol.encode(), value=body)
        stamp = Stamp(ns, ts)
        self.ticks[(symbol, ts)] = stamp
        return stamp

    def steady_tick(self, symbol: str) -> None:
        base = BASES.get(symbol, 100.0)
        mid = base * (1 + self.rng.uniform(-BAND, BAND))
        half = base * SPREAD
        self._tick(symbol, round(mid - half, 4), round(mid + half, 4))
        self.counts["steady"] += 1

    def cross_tick(self, symbol: str, side: str) -> int:
        """A tick that crosses every resting limit of ``side`` on ``symbol``."""
        base = BASES.get(symbol, 100.0)
        mid = base * (1 - CROSS if side == "BUY" else 1 + CROSS)
        half = base * SPREAD
        self.counts["cross"] += 1
        return self._tick(symbol, round(mid - half, 4), round(mid + half, 4)).ns

    # ------------------------------------------------------------ orders
    def _order(self, kind: str, n: int, symbol: str, side: str, limit: float | None) -> Order:
        entry: dict[str, Any] = {"symbol": symbol, "weight": 1.0}
        if limit is not None:
            entry["limit_price"] = limit
        self.made[kind] += 1
        oid = f"{self.run}-{kind}-{n}"
        value = {
            "taxpayer_id": n % 50 + 1,
            "portfolio_order_id": oid,
            "order_type": side,
            "amount": 1000.0,
            "priority": 1,
            "timestamp": time.time(),
            "portfolio": [entry],
        }
        body = orjson.dumps(value)
        sent = _stamp()
        self.producer.produce(self.orders_topic, key=oid.encode(), value=body)
        order = self.orders[oid] = Order(kind, oid, symbol, side, sent)
        return order

    def at(self, due: int, action: Callable[[int], None]) -> None:
        heapq.heappush(self.events, (due, next(self._seq), action))

    def _repeat(self, due: int, action: Callable[[int], None]) -> None:
        if due + ORDER_EVERY * 1e9 < self.orders_until:
            self.at(int(due + ORDER_EVERY * 1e9), action)

    def fresh_order(self, due: int) -> None:
        n = self.made["fresh"]
        order = self._order("fresh", n, f"NEW{n:05d}", "BUY", None)

        def first_tick(_due: int) -> None:
            order.tick = self._tick(order.symbol, 49.99, 50.01)
            self.counts["fresh"] += 1

        self.at(int(due + TRIGGER_AFTER * 1e9), first_tick)
        self._repeat(due, self.fresh_order)

    def market_order(self, due: int) -> None:
        n = self.made["market"]
        side = "BUY" if n % 2 == 0 else "SELL"
        self._order("market", n, SYMBOLS[(n + 3) % len(SYMBOLS)], side, None)
        self._repeat(due, self.market_order)

    def limit_order(self, due: int) -> None:
        n = self.made["limit"]
        symbol = SYMBOLS[n % len(SYMBOLS)]
        side = "BUY" if (n // len(SYMBOLS)) % 2 == 0 else "SELL"
        base = BASES.get(symbol, 100.0)
        limit = round(base * (1 - LIMIT_GAP if side == "BUY" else 1 + LIMIT_GAP), 4)
        order = self._order("limit", n, symbol, side, limit)

        def crossing(_due: int) -> None:
            order.last_trigger_ns = self.cross_tick(symbol, side)

        self.at(int(due + TRIGGER_AFTER * 1e9), crossing)
        self._repeat(due, self.limit_order)

    def rearm(self, due: int) -> None:
        """Another crossing tick for each limit not executed REARM s after its last one."""
        now = time.perf_counter_ns()
        for o in self.orders.values():
            waiting = o.kind == "limit" and not o.seen and o.last_trigger_ns
            if waiting and now - o.last_trigger_ns > REARM * 1e9:
                o.last_trigger_ns = self.cross_tick(o.symbol, o.side)
        self.at(due + int(0.1e9), self.rearm)

    # ------------------------------------------------------------ executions
    def on_execution(self, value: dict[str, Any], seen: Stamp) -> None:
        order = self.orders.get(value.get("portfolio_order_id", ""))
        if order is None:
            self.unknown.append(value)
        else:
            order.seen.append((seen, value))

    def on_tick_seen(self, value: dict[str, Any], seen: Stamp) -> None:
        """The baseline: one of our ticks read back from the ticks topic (Kafka alone)."""
        sent = self.ticks.get((value["symbol"], value["timestamp"]))
        if sent is not None:
            self.echo.append((sent.ns, (seen.ns - sent.ns) / MS))

    def all_seen(self) -> bool:
        return all(o.seen for o in self.orders.values())

    # ------------------------------------------------------------ the schedule
    async def drive(self, seconds: float, drain: float = DRAIN) -> float:
        """Produce the load for ``seconds``, then wait for missing executions; the load's wall time."""
        interval = 1e9 / TICK_RATE
        t0 = self.t0 = time.perf_counter_ns()
        end = t0 + int(seconds * 1e9)
        self.orders_until = end - int(0.5e9)  # resting orders still get their trigger
        self.at(t0, self.fresh_order)
        self.at(t0 + int(0.05e9), self.market_order)
        self.at(t0 + int(0.1e9), self.limit_order)
        self.at(t0 + int(0.1e9), self.rearm)
        i = 0
        produce_end = 0.0
        while True:
            now = time.perf_counter_ns()
            if now < end:
                while t0 + i * interval <= now:
                    self.steady_tick(SYMBOLS[i % len(SYMBOLS)])
                    i += 1
            elif not produce_end:
                produce_end = (now - t0) / 1e9
            while self.events and self.events[0][0] <= now:
                due, _, action = heapq.heappop(self.events)
                action(due)
            self.producer.poll(0)
            if now >= end and (self.all_seen() or now >= end + drain * 1e9):
                break
            nxt = min(t0 + i * interval if now < end else math.inf, now + 10 * MS)
            if self.events:
                nxt = min(nxt, self.events[0][0])
            await asyncio.sleep(max(0.0, nxt - time.perf_counter_ns()) / 1e9)
        return produce_end


# ---------------------------------------------------------------- measuring
def percentile(sorted_values: list[float], p: float) -> float:
    """Nearest-rank percentile of an ascending list (0 if empty)."""
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def summary(values_ms: list[float], target: bool) -> dict[str, Any]:
    v = sorted(values_ms)
    out: dict[str, Any] = {
        "count": len(v),
        "p50_ms": round(percentile(v, 50), 3),
        "p99_ms": round(percentile(v, 99), 3),
        "p99_9_ms": round(percentile(v, 99.9), 3),
        "max_ms": round(v[-1], 3) if v else 0.0,
        "over_1s": sum(1 for x in v if x > TARGET_LATE_MS),
        "target": target,
    }
    if target:
        out["met"] = bool(
            v
            and out["p99_ms"] <= TARGET_P99_MS
            and out["max_ms"] <= TARGET_MAX_MS
            and out["over_1s"] == 0
        )
    return out


def analyse(load: Load, warmup: float) -> dict[str, Any]:
    """Latency samples per path (ms), warm-up orders left out; the exactly-once check."""
    paths: dict[str, list[float]] = {
        k: []
        for k in (
            "tick_seen_fresh",
            "tick_seen_limit",
            "tick_processed",
            "tick_processed_seen",
            "order_seen_market",
            "order_processed_market",
            "order_processed_seen_market",
            "order_seen_fresh",
            "order_seen_limit",
        )
    }
    cut = load.t0 + int(warmup * 1e9)
    at_arrival = excluded = 0
    for order in load.orders.values():
        if order.sent.ns < cut:
            excluded += 1
            continue
        if not order.seen:
            continue
        seen, ex = order.seen[0]
        worker = float(ex["timestamp"])
        paths[f"order_seen_{order.kind}"].append((seen.ns - order.sent.ns) / MS)
        if order.kind == "market":
            paths["order_processed_market"].append((worker - order.sent.wall) * 1e3)
            paths["order_processed_seen_market"].append((seen.wall - worker) * 1e3)
            continue
        trigger = order.tick
        if order.kind == "limit":
            trigger = load.ticks.get((order.symbol, float(ex["quote_timestamp"])))
            if trigger is None or trigger.ns < order.sent.ns:
                at_arrival += 1
                continue
        if trigger is None:
            continue
        paths[f"tick_seen_{order.kind}"].append((seen.ns - trigger.ns) / MS)
        paths["tick_processed"].append((worker - trigger.wall) * 1e3)
        paths["tick_processed_seen"].append((seen.wall - worker) * 1e3)
    counts = [len(o.seen) for o in load.orders.values()]
    return {
        "paths": paths,
        "excluded_warmup": excluded,
        "limit_at_arrival": at_arrival,
        "orders": len(counts),
        "missing": sum(1 for c in counts if c == 0),
        "duplicated": sum(1 for c in counts if c > 1),
        "unknown": len(load.unknown),
        "by_kind": {
            k: sum(1 for o in load.orders.values() if o.kind == k)
            for k in ("fresh", "market", "limit")
        },
    }


ROWS: list[tuple[str, str, bool]] = [
    ("tick_seen", "tick -> execution seen (all below)", True),
    ("tick_seen_fresh", "  fresh symbol: its first tick -> execution", True),
    ("tick_seen_limit", "  limit: the crossing tick -> execution", True),
    ("tick_processed", "  split: tick produced -> worker processed", False),
    ("tick_processed_seen", "  split: worker processed -> seen", False),
    ("order_seen_market", "order -> execution seen (market, quoted symbol)", True),
    ("order_processed_market", "  split: order produced -> worker processed", False),
    ("order_processed_seen_market", "  split: worker processed -> seen", False),
    ("order_seen_fresh", "order -> execution seen (fresh symbol; incl. 100 ms wait)", False),
    ("order_seen_limit", "order -> execution seen (limit; incl. 100 ms wait)", False),
    ("kafka_echo", "baseline, no fintank: tick produced -> read back from ticks", False),
]


def table(result: dict[str, Any]) -> list[str]:
    """The printed latency table, one row per path, targets next to the rows they apply to."""
    stats = result["latency"]
    head = (
        f"{'path':58} {'n':>5} {'p50':>7} {'p99':>7} {'p99.9':>7} {'max':>8} {'>1s':>4}  "
        f"target (p99<={TARGET_P99_MS:.0f} ms, max<={TARGET_MAX_MS:.0f} ms, none >1 s)"
    )
    lines = [head, "-" * len(head)]
    for key, label, _target in ROWS:
        s = stats[key]
        verdict = ("met" if s["met"] else "NOT MET") if s["target"] else ""
        lines.append(
            f"{label:58} {s['count']:>5} {s['p50_ms']:>7.1f} {s['p99_ms']:>7.1f} "
            f"{s['p99_9_ms']:>7.1f} {s['max_ms']:>8.1f} {s['over_1s']:>4}  {verdict}"
        )
    return lines


# ---------------------------------------------------------------- running it
def _producer(bootstrap: str, errors: list[str]) -> Any:
    """A low-latency producer (no linger); delivery errors are appended to ``errors``."""
    from confluent_kafka import Producer

    def on_delivery(err: Any, _msg: Any) -> None:
        if err is not None:
            errors.append(str(err))

    return Producer(
        {
            "bootstrap.servers": bootstrap,
            "partitioner": "murmur2_random",  # aiokafka's (and fintank's) key hashing
            "linger.ms": 0,
            "acks": "all",
            "enable.idempotence": True,
            "on_delivery": on_delivery,
            "delivery.report.only.error": True,
        }
    )


async def _consume(
    consumer: Any, handle: Callable[[dict[str, Any], Stamp], None], stop_event: asyncio.Event
) -> None:
    """Hand every record (parsed) to ``handle`` with the moment its batch was returned."""
    while not stop_event.is_set():
        batches = await consumer.getmany(timeout_ms=100)
        if not batches:
            continue
        seen = _stamp()
        for records in batches.values():
            for record in records:
                handle(orjson.loads(record.value), seen)


async def _reader(bootstrap: str, topic: str) -> Any:
    """A read_committed consumer outside any group, assigned all of ``topic`` from the start."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        isolation_level="read_committed",
        enable_auto_commit=False,
        fetch_max_wait_ms=5,
    )
    await consumer.start()
    parts = consumer.partitions_for_topic(topic) or set()
    if not parts:
        await consumer._client.force_metadata_update()
        parts = consumer.partitions_for_topic(topic) or set()
    tps = [TopicPartition(topic, p) for p in sorted(parts)]
    consumer.assign(tps)
    await consumer.seek_to_beginning(*tps)
    return consumer


async def _measure(spec: WorkerSpec, seconds: float, load: Load) -> float:
    """Drive the load while reading ``executions`` (and, apart, ``ticks`` for the baseline)."""
    topics = spec.settings().topics
    executions = await _reader(spec.bootstrap, topics.executions)
    echo = await _reader(spec.bootstrap, topics.ticks)  # its own connection: no interference
    stop_event = asyncio.Event()
    try:
        readers = [
            asyncio.ensure_future(_consume(executions, load.on_execution, stop_event)),
            asyncio.ensure_future(_consume(echo, load.on_tick_seen, stop_event)),
        ]
        produced = await load.drive(seconds)
        load.producer.flush(10)
        await asyncio.sleep(1.0)  # a late duplicate would show up here
        stop_event.set()
        await asyncio.gather(*readers)
        return produced
    finally:
        await executions.stop()
        await echo.stop()


def run(
    bootstrap: str,
    seconds: float = 30.0,
    warmup: float = 3.0,
    run_id: str = "",
    keep_log: Path | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Start a worker, drive the load, measure; the result document (see `table`)."""
    from bench.variants import CpuMeter, vmhwm_kb

    run_id = run_id or f"bench-lat-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
    state = Path(tempfile.mkdtemp(prefix="fintank-bench-latency-"))
    spec = WorkerSpec(
        app_id=run_id, bootstrap=bootstrap, state=state, port=free_port(), database="bench_latency"
    )
    spec.prepare()
    topics = spec.settings().topics
    proc = spec.start()
    log_copy = keep_log or Path(tempfile.gettempdir()) / f"{run_id}-worker.log"
    try:
        started = time.monotonic()
        spec.wait_ready(proc)
        log(f"latency: worker {run_id} ready in {time.monotonic() - started:.1f}s; load {seconds}s")
        errors: list[str] = []
        load = Load(_producer(bootstrap, errors), topics.ticks, topics.orders, run_id)
        load.delivery_errors = errors
        meter = CpuMeter({"worker": proc.pid, "load": "self"})
        meter.start()
        produced = asyncio.run(_measure(spec, seconds, load))
        cpu = meter.stop()
        doc = health(spec.url + "/health") or {}
        rss = vmhwm_kb(proc.pid)
        load_average = os.getloadavg()
    finally:
        stop(proc)
        shutil.copyfile(spec.log_file, log_copy)
        shutil.rmtree(state, ignore_errors=True)
    result = _result(load, warmup, seconds, produced, cpu, rss, doc, log_copy)
    result["machine"] = {"cores": os.cpu_count(), "load_average": load_average}
    return result


def _result(
    load: Load,
    warmup: float,
    seconds: float,
    produced: float,
    cpu: dict[str, float],
    rss_kb: int,
    doc: dict[str, Any],
    log_path: Path,
) -> dict[str, Any]:
    found = analyse(load, warmup)
    paths = found.pop("paths")
    paths["tick_seen"] = paths["tick_seen_fresh"] + paths["tick_seen_limit"]
    cut = load.t0 + int(warmup * 1e9)
    paths["kafka_echo"] = [ms for ns, ms in load.echo if ns >= cut]
    latency = {key: summary(paths[key], target) for key, _label, target in ROWS}
    samples = {key: [round(x, 3) for x in paths[key]] for key, _label, _target in ROWS}
    samples.pop("kafka_echo")  # one per tick: too many to keep
    warnings, errors, problems = log_problems(log_path)
    return {
        "seconds": seconds,
        "warmup_seconds": warmup,
        "load_seconds": round(produced, 3),
        "ticks": dict(load.counts),
        "steady_tick_rate": round(load.counts["steady"] / produced, 1) if produced else 0.0,
        "orders": found,
        "exactly_once": found["missing"] == 0 and found["duplicated"] == 0 and not found["unknown"],
        "delivery_errors": len(load.delivery_errors),
        "latency": latency,
        "load_generator_cores": cpu.get("load", 0.0),
        "targets": {"p99_ms": TARGET_P99_MS, "max_ms": TARGET_MAX_MS, "late_ms": TARGET_LATE_MS},
        "met": all(s["met"] for s in latency.values() if s["target"]),
        "samples_ms": samples,  # per path, in order of the orders' production
        "worker": {
            "peak_rss_mib": round(rss_kb / 1024, 1),
            "cores": cpu.get("worker", 0.0),
            "persister": doc.get("persister", {}),
            "engine": doc.get("engine", {}),
            "log": str(log_path),
            "log_warnings": warnings,
            "log_errors": errors,
            "log_samples": problems,
        },
    }


def report(result: dict[str, Any]) -> list[str]:
    """The printed latency section."""
    o = result["orders"]
    kinds = o["by_kind"]
    w = result["worker"]
    lines = [
        f"Latency: one fintank-v1 worker under {result['steady_tick_rate']:,.0f} steady ticks/s "
        f"over {len(SYMBOLS)} symbols + {3 / ORDER_EVERY:.0f} orders/s for "
        f"{result['load_seconds']:.1f}s; orders of the first {result['warmup_seconds']:.0f}s "
        f"excluded as warm-up ({o['excluded_warmup']} orders). Times in ms.",
        *table(result),
    ]
    if o["limit_at_arrival"]:
        lines.append(
            f"  ({o['limit_at_arrival']} limit(s) executed on arrival at an older quote: "
            "no triggering tick, left out of tick -> execution)"
        )
    verdict = "yes" if result["exactly_once"] else "NO"
    lines.append(
        f"every order got exactly one execution: {verdict} ({o['orders']} orders: "
        f"{kinds['fresh']} fresh-symbol market, {kinds['market']} market, {kinds['limit']} limit; "
        f"missing {o['missing']}, duplicated {o['duplicated']}, unknown {o['unknown']}; "
        f"producer delivery errors {result['delivery_errors']})"
    )
    lines.append(
        f"latency targets: {'met' if result['met'] else 'NOT MET'}. worker: peak RSS "
        f"{w['peak_rss_mib']:.0f} MiB, {w['cores']:.2f} cores (this load generator "
        f"{result['load_generator_cores']:.2f}; machine load average "
        f"{result['machine']['load_average'][0]:.1f} on {result['machine']['cores']} cores); "
        f"log {w['log']} "
        f"({w['log_warnings']} warnings, {w['log_errors']} errors)"
    )
    lines += [f"    {s}" for s in w["log_samples"]]
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--keep", action="store_true", help="keep the run's topics and groups")
    parser.add_argument("--json", default="", help="also write the result here")
    args = parser.parse_args(argv)
    from bench.run import cleanup

    run_id = f"bench-lat-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
    try:
        result = run(args.bootstrap, args.seconds, args.warmup, run_id)
    finally:
        if not args.keep:
            cleanup(args.bootstrap, run_id)
    for line in report(result):
        print(line)
    if args.json:
        Path(args.json).write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))


if __name__ == "__main__":
    main()
