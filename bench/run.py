"""`invoke bench`: fintank's tick path side by side with the alternatives, in one run.

The machine is shared and noisy, so absolute numbers drift between runs;
only ratios measured within one run are worth quoting. One topic is
preloaded once and every variant reads all of it (or N/10 for stock faust),
each in its own process with a fresh consumer group; the variants are
interleaved for R rounds (the order rotates each round) and each variant's
median rate is compared with Quix Streams (bare parse, and ``quix-samejob``
doing the tick path's whole job, `bench.samejob`) and with raw aiokafka.

Then, by default, the latency part (`bench.latency`): one real worker under a
steady mixed load of ticks and orders, tick/order -> execution latencies.
Last, the targets (`bench.targets`), each met / NOT MET / not measured.
``--json PATH`` writes all of it (per-round results, medians, 2nd-half rates,
cores, peak RSS, start-up, latency percentiles and samples, targets).
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
PYTHON = REPO / ".venv" / "bin" / "python"
SYMBOLS = ["VTI", "IVE", "IWS", "SPY", "QQQ", "IWM", "EFA", "AGG"]
PARTITIONS = 4

ALL_VARIANTS = [
    "raw-aiokafka",
    "quix-json",
    "quix-orjson",
    "quix-samejob",
    "faust-record",
    "fintank-v1",
    "fintank-v2",
    "fintank-scraped",
]
FAUST_SHARE = 10  # stock faust does ~4-5k/s: it reads N/10 records
NOTES = {
    "raw-aiokafka": "getmany + orjson.loads, commit per batch; no sink",
    "quix-json": 'Application, value_deserializer="json", sdf.update; no sink',
    "quix-orjson": 'Application, "bytes" + orjson.loads in sdf.update; no sink',
    "quix-samejob": (
        "parse_tick, bid_ask + 1s/1m candles (RocksDB, changelogs), batching InfluxDB 1.x sink;"
        " timed as fintank-v1: from assigned+stores ready (end of _on_assign) to N points confirmed"
    ),
    "faust-record": f"stock agent, faust.Record values; N/{FAUST_SHARE} records only",
    "fintank-v1": "real worker: validate, lines, InfluxDB 1.x writes, acks",
    "fintank-v2": "real worker: same, v2 write API to VictoriaMetrics",
    "fintank-scraped": "fintank-v1 with GET /metrics scraped every 1 s during the run",
}


@dataclass
class Outcome:
    variant: str
    results: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def _median(self, values: list[float]) -> float:
        return statistics.median(values) if values else 0.0

    @property
    def rates(self) -> list[float]:
        return [r["rate"] for r in self.results]

    @property
    def median(self) -> float:
        return self._median(self.rates)

    @property
    def steady(self) -> float:
        """Median rate over the second half of the records (start-up work left behind)."""
        halves = [r["count"] / 2 / r["half_seconds"] for r in self.results if r.get("half_seconds")]
        return self._median(halves)

    @property
    def cores(self) -> float:
        return self._median([r.get("cpu", {}).get("self", 0.0) for r in self.results])

    @property
    def startup(self) -> float | None:
        """Median start-up (assignment to first confirmed write), seconds; None if not measured."""
        values = [r["startup"] for r in self.results if r.get("startup") is not None]
        return self._median(values) if values else None

    @property
    def peak_rss_mib(self) -> float:
        return max((r["vmhwm_kb"] for r in self.results), default=0) / 1024

    def to_json(self) -> dict[str, Any]:
        """Everything measured for this variant (per round and summarised)."""
        return {
            "rounds": self.results,
            "rates": self.rates,
            "median": self.median,
            "second_half": self.steady,
            "cores": self.cores,
            "server_cores": self.server_cores,
            "peak_rss_mib": round(self.peak_rss_mib, 1),
            "startup_s": self.startup,
            "errors": self.errors,
        }

    @property
    def server_cores(self) -> str:
        names = sorted({k for r in self.results for k in r.get("cpu", {}) if k != "self"})
        used = {k: self._median([r["cpu"].get(k, 0.0) for r in self.results]) for k in names}
        return " ".join(f"{k} {v:.2f}" for k, v in used.items() if v >= 0.05)


def _say(msg: str) -> None:
    print(msg, flush=True)


def _check_stack(bootstrap: str, influx_url: str, victoria_url: str) -> None:
    import socket
    import urllib.request

    host, port = bootstrap.rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=2).close()
        for url in (influx_url + "/ping", victoria_url + "/health"):
            urllib.request.urlopen(url, timeout=3).close()
    except OSError as exc:
        raise SystemExit(
            f"bench: the local stack does not answer ({exc}); run `invoke up`"
        ) from exc


def preload(
    bootstrap: str, topic: str, count: int, start_time: float
) -> tuple[dict[int, int], float, float]:
    """Create ``topic`` (4 partitions), fill it with ``count`` ticks keyed by symbol.

    Returns the end offset of each partition and the first and last tick times.
    """
    import orjson
    from confluent_kafka import Consumer, Producer, TopicPartition
    from confluent_kafka.admin import AdminClient, NewTopic

    from fintank.generators import random_walk_ticks

    admin = AdminClient({"bootstrap.servers": bootstrap})
    for fut in admin.create_topics([NewTopic(topic, PARTITIONS, 1)]).values():
        fut.result(30)
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "partitioner": "murmur2_random",  # the Java client's (and aiokafka's) key hashing
            "linger.ms": 20,
            "batch.size": 1_000_000,
            "queue.buffering.max.messages": 1_000_000,
            "acks": "all",
        }
    )
    dumps = orjson.dumps
    times = []
    for tick in random_walk_ticks(SYMBOLS, count, start_time, seed=42):
        producer.produce(topic, key=tick["symbol"].encode(), value=dumps(tick))
        producer.poll(0)
        times.append(tick["timestamp"])
    if producer.flush(60) != 0:
        raise SystemExit("bench: preload did not flush")
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"{topic}-watermarks"})
    ends = {
        p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
        for p in range(PARTITIONS)
    }
    consumer.close()
    if sum(ends.values()) != count:
        raise SystemExit(f"bench: preloaded {sum(ends.values())} records, wanted {count}")
    return ends, min(times), max(times)


def free_time_range(settings: Any, count: int) -> float:
    """A start time for ``count`` ticks 1 ms apart whose range holds no bid_ask point in ``bench``.

    fintank-v1 checks afterwards that InfluxDB holds exactly N points in the
    run's range, so it must not overlap an earlier run's ticks.
    """
    from dataclasses import replace

    from fintank.sinks.query import influx_count
    from fintank.stack import Stack

    Stack(replace(settings, influx_database="bench")).create_database()
    span = count * 0.001 + 1
    start = float(int(time.time()) - 3600)  # an hour ago
    for _ in range(100):
        where = f"time >= {int(start * 1e9)} AND time <= {int((start + span) * 1e9)}"
        if influx_count(settings.influx_url, "bench", "bid_ask", "bid", where) == 0:
            return start
        start -= span
    raise SystemExit("bench: no free time range for the ticks in InfluxDB database 'bench'")


def cleanup(bootstrap: str, prefix: str) -> None:
    """Delete the run's topics and consumer groups (everything named ``prefix*``).

    Quix names its changelog topics ``changelog__{consumer group}--...``: those too.
    """
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap})
    mine = (prefix, f"changelog__{prefix}", f"repartition__{prefix}")
    topics = [t for t in admin.list_topics(timeout=10).topics if t.startswith(mine)]
    if topics:
        for fut in admin.delete_topics(topics, operation_timeout=30).values():
            try:
                fut.result(30)
            except Exception as exc:  # noqa: BLE001 - best effort
                _say(f"  cleanup: {exc}")
    listed = admin.list_consumer_groups().result(30)
    groups = [g.group_id for g in listed.valid if g.group_id.startswith(prefix)]
    if groups:
        for fut in admin.delete_consumer_groups(groups, request_timeout=30).values():
            try:
                fut.result(30)
            except Exception as exc:  # noqa: BLE001
                _say(f"  cleanup: {exc}")
    _say(f"cleanup: deleted {len(topics)} topics and {len(groups)} consumer groups ({prefix}*)")


def run_variant(
    variant: str,
    topic: str,
    count: int,
    group: str,
    bootstrap: str,
    extra: list[str],
    timeout: float = 300,
) -> dict[str, Any]:
    argv = [str(PYTHON), "-m", "bench.variants", variant, "--topic", topic]
    argv += ["--count", str(count), "--group", group, "--bootstrap", bootstrap, *extra]
    env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONWARNINGS="ignore")
    # Its own process group, so a timeout or Ctrl-C also ends a fintank worker it started.
    proc = subprocess.Popen(
        argv,
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except BaseException:
        _end_group(proc)
        raise
    for line in out.splitlines():
        if "RESULT {" in line:
            return dict(json.loads(line[line.index("RESULT {") + len("RESULT ") :]))
    tail = "\n".join((out + err).strip().splitlines()[-12:])
    raise RuntimeError(f"{variant} exited {proc.returncode} without a RESULT:\n{tail}")


def _end_group(proc: subprocess.Popen[str]) -> None:
    """SIGTERM the variant's process group (SIGKILL after 30 s)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.communicate(timeout=30)
            return
        except subprocess.TimeoutExpired:
            continue


def _fmt_rate(rate: float) -> str:
    return f"{rate:,.0f}" if rate else "-"


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if a and b else "-"


def _x(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b else "n/a"


def report(outcomes: dict[str, Outcome], rounds: int) -> list[str]:
    """The table, then the ratio lines."""
    quix = outcomes.get("quix-json")
    raw = outcomes.get("raw-aiokafka")
    q, r = (quix.median if quix else 0.0), (raw.median if raw else 0.0)
    qs = quix.steady if quix else 0.0
    head = (
        f"{'variant':13} {'N':>7} {'ticks/s, each round':>20} {'median':>8} {'2nd half':>8} "
        f"{'vs quix':>7} {'vs raw':>6} {'cores':>5} {'peak RSS':>8}  notes"
    )
    lines = [head, "-" * len(head)]
    for name, o in outcomes.items():
        per_round = " ".join(_fmt_rate(x) for x in o.rates) or "failed"
        rss = max((x["vmhwm_kb"] for x in o.results), default=0)
        n = max((x["count"] for x in o.results), default=0)
        notes = [NOTES.get(name, "")]
        if o.server_cores:
            notes.append(f"servers: {o.server_cores}")
        for key in ("commits", "points"):
            seen = {str(x[key]) for x in o.results if x.get(key)}
            if seen:
                notes.append(f"{key}: " + ", ".join(sorted(seen)))
        if o.startup is not None:
            starts = ", ".join(f"{x['startup']:.2f}" for x in o.results if "startup" in x)
            notes.append(f"start-up: {starts} s")
        if o.errors:
            notes.append(f"{len(o.errors)} round(s) FAILED")
        lines.append(
            f"{name:13} {n:>7,} {per_round:>20} {_fmt_rate(o.median):>8} "
            f"{_fmt_rate(o.steady):>8} {_ratio(o.median, q):>7} {_ratio(o.median, r):>6} "
            f"{o.cores:>5.2f} {rss / 1024:>5.0f} MiB  {'; '.join(n for n in notes if n)}"
        )
    lines.append("")
    for name in ("fintank-v1", "fintank-v2"):
        f = outcomes.get(name)
        if not f or not f.rates:
            continue
        tag = "fintank" if name == "fintank-v1" else "fintank-v2"
        if quix and quix.rates:
            lines.append(
                f"{tag}/quix ratio: {_x(f.median, q)}   ({tag} {f.median:,.0f} ticks/s vs "
                f"quix {q:,.0f} ticks/s, medians of {len(f.rates)}/{len(quix.rates)} rounds; "
                f"2nd half* {_x(f.steady, qs)}: {f.steady:,.0f} vs {qs:,.0f})"
            )
        fast = outcomes.get("quix-orjson")
        if fast and fast.rates:
            lines.append(
                f"{tag}/quix-orjson ratio: {_x(f.median, fast.median)}   ({f.median:,.0f} vs "
                f"{fast.median:,.0f} ticks/s; 2nd half* {_x(f.steady, fast.steady)})"
            )
        same = outcomes.get("quix-samejob")
        if same and same.rates:
            lines.append(
                f"{tag}/quix-samejob ratio: {_x(f.median, same.median)}   ({f.median:,.0f} vs "
                f"{same.median:,.0f} ticks/s, the same job; 2nd half* {_x(f.steady, same.steady)})"
            )
        if raw and raw.rates:
            lines.append(
                f"{tag}/raw-aiokafka ratio: {_x(f.median, r)}   ({f.median:,.0f} vs {r:,.0f} "
                f"ticks/s; 2nd half* {_x(f.steady, raw.steady)}: {f.steady:,.0f} vs "
                f"{raw.steady:,.0f})"
            )
        if f.startup is not None:
            lines.append(
                f"{tag} start-up (assigned -> first confirmed write, median): {f.startup:.2f}s"
            )
        commits = [x.get("commits") for x in f.results]
        if commits and all(c == "ok" for c in commits):
            lines.append(
                f"{tag} commits: ok (committed offsets == end offsets, {len(commits)} rounds)"
            )
        elif commits:
            lines.append(f"{tag} commits: {'; '.join(str(c) for c in commits)}")
    scraped, plain = outcomes.get("fintank-scraped"), outcomes.get("fintank-v1")
    if scraped and scraped.rates and plain and plain.rates:
        scrapes = ", ".join(str(x.get("scrapes", 0)) for x in scraped.results)
        typical = statistics.median(x.get("scrape_ms_median", 0) for x in scraped.results)
        size = max((x.get("scrape_bytes", 0) for x in scraped.results), default=0)
        lines.append(
            f"/metrics scraped every 1 s vs not: {_x(scraped.median, plain.median)}   "
            f"({scraped.median:,.0f} vs {plain.median:,.0f} ticks/s, medians; scrapes per "
            f"round: {scrapes}; a scrape's round trip {typical} ms (median), {size:,} bytes)"
        )
    if any(n.startswith("fintank") for n in outcomes):
        lines.append(
            "* 2nd half = records N/2..N only, past start-up work. A worker that is held up at\n"
            "  start (e.g. per-partition recovery) keeps fetching meanwhile, so its 2nd half may\n"
            "  drain an already-fetched backlog: a processing ceiling, not a sustained rate.\n"
            "  The ratios to quote are the medians (first record to N-th fully processed)."
        )
    return lines


def throughput(
    run_id: str,
    settings: Any,
    bootstrap: str,
    count: int,
    rounds: int,
    chosen: list[str],
    profile: str,
    log: Callable[[str], None],
) -> dict[str, Outcome]:
    """Preload the ticks topic once, then run every chosen variant ``rounds`` times, interleaved."""
    topic = f"{run_id}-ticks"
    start_time = free_time_range(settings, count)
    t = time.monotonic()
    ends, t_min, t_max = preload(bootstrap, topic, count, start_time)
    log(
        f"preloaded {count:,} ticks ({len(SYMBOLS)} symbols) into {topic} in "
        f"{time.monotonic() - t:.1f}s; per partition {dict(sorted(ends.items()))}"
    )
    outcomes = {v: Outcome(v) for v in chosen}
    for rnd in range(rounds):
        order = chosen[rnd % len(chosen) :] + chosen[: rnd % len(chosen)]
        for variant in order:
            n = max(1, count // FAUST_SHARE) if variant == "faust-record" else count
            group = f"{run_id}-{variant}-r{rnd}"
            extra = ["--t-min", repr(t_min), "--t-max", repr(t_max)]
            if profile and variant.startswith("fintank"):
                extra += ["--profile", profile]
            o = outcomes[variant]
            try:
                res = run_variant(variant, topic, n, group, bootstrap, extra)
            except (RuntimeError, subprocess.TimeoutExpired) as exc:
                o.errors.append(str(exc))
                log(f"round {rnd + 1}/{rounds} {variant:14} FAILED: {exc}")
                continue
            o.results.append(res)
            keys = (
                *("cpu", "commits", "commit_seconds", "ready_to_first_lines", "startup"),
                *("points", "late_ticks", "lines"),
            )
            more = "".join(f" {k}={res[k]}" for k in keys if res.get(k) not in (None, ""))
            log(
                f"round {rnd + 1}/{rounds} {variant:14} {res['rate']:>10,.0f} ticks/s "
                f"({res['count']:,} in {res['seconds']:.2f}s, "
                f"peak RSS {res['vmhwm_kb'] / 1024:.0f} MiB){more}"
            )
    return outcomes


def _ratios(outcomes: dict[str, Outcome]) -> dict[str, float | None]:
    """fintank-v1's ratios to the other rows (medians; 2nd half to raw's 2nd half)."""

    def ratio(a: float, b: float) -> float | None:
        return round(a / b, 3) if a and b else None

    empty = Outcome("")
    f = outcomes.get("fintank-v1", empty)
    out = {
        f"fintank/{name}": ratio(f.median, outcomes.get(name, empty).median)
        for name in ("quix-json", "quix-orjson", "quix-samejob", "raw-aiokafka")
    }
    raw = outcomes.get("raw-aiokafka", empty)
    out["fintank 2nd half/raw-aiokafka 2nd half"] = ratio(f.steady, raw.steady)
    return out


def write_json(path: str, doc: dict[str, Any]) -> None:
    import orjson

    Path(path).write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS))


def main(
    count: int = 200_000,
    rounds: int = 2,
    variants: list[str] | None = None,
    bootstrap: str | None = None,
    keep: bool = False,
    profile: str = "",
    log: Callable[[str], None] = _say,
    latency: bool = True,
    latency_only: bool = False,
    latency_seconds: float = 30.0,
    json_path: str = "",
) -> dict[str, Any]:
    """The throughput table, then the latency part, then the targets; the JSON document."""
    from bench import latency as lat
    from bench import targets as tg
    from fintank.config import Settings

    settings = Settings.from_env(os.environ)
    bootstrap = bootstrap or settings.bootstrap
    chosen = [] if latency_only else (variants or ALL_VARIANTS)
    unknown = sorted(set(chosen) - set(ALL_VARIANTS))
    if unknown:
        raise SystemExit(f"bench: unknown variants {unknown}; choose from {ALL_VARIANTS}")
    _check_stack(bootstrap, settings.influx_url, settings.influx_v2_url)
    run_id = f"bench-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
    started = time.monotonic()
    outcomes: dict[str, Outcome] = {}
    latency_result: dict[str, Any] | None = None
    try:
        if chosen:
            outcomes = throughput(run_id, settings, bootstrap, count, rounds, chosen, profile, log)
            log("")
            for line in report(outcomes, rounds):
                log(line)
        if latency or latency_only:
            log("")
            latency_result = lat.run(bootstrap, latency_seconds, run_id=f"{run_id}-lat", log=log)
            log("")
            for line in lat.report(latency_result):
                log(line)
    finally:
        if not keep:
            cleanup(bootstrap, run_id)
    targets = (tg.throughput_targets(outcomes) if chosen else []) + (
        tg.latency_targets(latency_result) if latency_result is not None else []
    )
    log("")
    for line in tg.report(targets):
        log(line)
    doc = {
        "run_id": run_id,
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {"cores": os.cpu_count(), "load_average": os.getloadavg()},
        "config": {
            "count": count,
            "rounds": rounds,
            "variants": chosen,
            "latency_seconds": latency_seconds if latency_result is not None else None,
        },
        "throughput": {name: o.to_json() for name, o in outcomes.items()},
        "ratios": _ratios(outcomes),
        "latency": latency_result,
        "targets": [t.to_json() for t in targets],
    }
    if json_path:
        write_json(json_path, doc)
        log(f"\nwrote {json_path}")
    log(f"\n(total bench time {time.monotonic() - started:.0f}s)")
    return doc


if __name__ == "__main__":
    main(count=int(sys.argv[1]) if len(sys.argv) > 1 else 200_000)
