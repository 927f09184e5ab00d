"""One benchmark variant per process: read N preloaded ticks, print one ``RESULT {json}`` line.

    python -m bench.variants VARIANT --topic T --count N --group G [--bootstrap H:P]

Every variant reads the same preloaded topic from the beginning with its own,
fresh consumer group. The rate is ``N / seconds``, where ``seconds`` runs from
the moment the variant first sees a record to the moment the N-th record is
fully processed (what "processed" means is said per variant below). Start-up,
group join and shutdown are not timed. ``vmhwm_kb`` is VmHWM (peak resident
set) from ``/proc/<pid>/status`` of the process doing the work, read at the end.

Variants:
  raw-aiokafka   AIOKafkaConsumer.getmany + orjson.loads per record, commit after each batch
                 (end = the commit after the N-th record returned).
  quix-json      Quix Streams Application, value_deserializer="json", sdf.update counting.
  quix-orjson    the same with value_deserializer="bytes" and orjson.loads in the update.
  quix-samejob   Quix doing the tick path's job: parse_tick, bid_ask points, 1 s / 1 m candles
                 (tumbling windows, RocksDB, changelogs), a batching InfluxDB 1.x sink; timed
                 like fintank-v1, from assignment to N confirmed points (see bench.samejob).
  faust-record   a stock faust agent over a faust.Record value type (run it on N/10 records).
  fintank-v1     the real worker (``faust -A topologies.fintank worker``) writing to InfluxDB 1.x
  fintank-v2     the same with FINTANK_INFLUX_TRANSPORT=v2 (VictoriaMetrics).
  fintank-scraped  fintank-v1 with its GET /metrics scraped every second meanwhile (what
                 VictoriaMetrics does every 2 s): the price of the metrics, read at scrape time.
                 Measured from outside by polling GET /health every 50 ms: start = the first
                 poll that finds the worker assigned (it fetches the backlog from then on),
                 end = the first poll whose persister has written N points. Then: committed
                 offsets == end offsets ("commits: ok") and, for v1, InfluxDB holds exactly
                 N bid_ask points in the run's time range ("points: ok"). ``startup``: the
                 first poll listing assigned partitions to the first poll with written > 0.

``half_seconds`` is the time from the N/2-th record to the N-th: the "2nd half"
rate, past start-up work. ``cpu`` is cores used during the timed window (CPU
seconds / wall seconds) by the process itself and by the stack's servers.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
CLK_TCK = os.sysconf("SC_CLK_TCK")


def vmhwm_kb(pid: int | str = "self") -> int:
    """Peak resident set size (VmHWM) of a process, in KiB; 0 if unknown."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def cpu_seconds(pid: int | str = "self") -> float:
    """utime + stime of a process (all its threads), in seconds; 0 if unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(stat[11]) + int(stat[12])) / CLK_TCK
    except (OSError, ValueError, IndexError):
        return 0.0


def stack_pids() -> dict[str, int]:
    """The local stack's server pids (from `invoke up`'s pid files), by short name."""
    from fintank.config import Settings
    from fintank.stack import Stack, procs

    stack = Stack(Settings.from_env(os.environ))
    named = {"kafka": stack.kafka, "influxd": stack.influxdb, "victoria": stack.victoria}
    pids = {name: procs.read_pid(service.pid_file) for name, service in named.items()}
    return {name: pid for name, pid in pids.items() if pid}


class CpuMeter:
    """Cores used by some processes between `start` and `stop` (CPU seconds / wall seconds)."""

    def __init__(self, pids: dict[str, int | str]) -> None:
        self.pids = pids
        self.t0 = 0.0
        self.c0: dict[str, float] = {}

    def start(self) -> None:
        self.t0 = time.perf_counter()
        self.c0 = {name: cpu_seconds(pid) for name, pid in self.pids.items()}

    def stop(self) -> dict[str, float]:
        wall = time.perf_counter() - self.t0
        if not self.c0 or wall <= 0:
            return {}
        used = {name: cpu_seconds(pid) - self.c0[name] for name, pid in self.pids.items()}
        return {name: round(c / wall, 2) for name, c in used.items()}


def emit(variant: str, count: int, seconds: float, **extra: Any) -> None:
    """Print the one RESULT line the orchestrator parses."""
    result = {
        "variant": variant,
        "count": count,
        "seconds": seconds,
        "rate": count / seconds if seconds > 0 else 0.0,
        **extra,
    }
    if "vmhwm_kb" not in result:
        result["vmhwm_kb"] = vmhwm_kb()
    sys.stdout.flush()
    os.write(1, ("RESULT " + json.dumps(result) + "\n").encode())  # past any stdout redirection


# --------------------------------------------------------------------- raw aiokafka
async def _raw_aiokafka(args: argparse.Namespace) -> None:
    import orjson
    from aiokafka import AIOKafkaConsumer

    loads = orjson.loads
    consumer = AIOKafkaConsumer(
        args.topic,
        bootstrap_servers=args.bootstrap,
        group_id=args.group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    n, t0, t_half, checksum = 0, 0.0, 0.0, 0.0
    meter = CpuMeter({"self": "self", **stack_pids()})
    try:
        while n < args.count:
            batches = await consumer.getmany(timeout_ms=1000)
            if not batches:
                continue
            if not t0:
                t0 = time.perf_counter()
                meter.start()
            for records in batches.values():
                for record in records:
                    checksum += loads(record.value)["bid"]
                n += len(records)
                if not t_half and n >= args.count / 2:
                    t_half = time.perf_counter()
            await consumer.commit()  # at-least-once: commit what was processed
        t1 = time.perf_counter()
        cpu = meter.stop()
    finally:
        await consumer.stop()
    emit(
        args.variant, n, t1 - t0, half_seconds=t1 - t_half, cpu=cpu, note=f"checksum {checksum:.2f}"
    )


# --------------------------------------------------------------------- Quix Streams
def _quix(args: argparse.Namespace, deserializer: str) -> None:
    import orjson
    from quixstreams import Application

    state = tempfile.mkdtemp(prefix="fintank-bench-quix-")
    atexit.register(shutil.rmtree, state, True)
    app = Application(
        broker_address=args.bootstrap,
        consumer_group=args.group,
        auto_offset_reset="earliest",
        state_dir=state,
        loglevel="WARNING",
        use_changelog_topics=False,
    )
    topic = app.topic(args.topic, value_deserializer=deserializer, key_deserializer="bytes")
    sdf = app.dataframe(topic)
    box = {"n": 0, "t0": 0.0, "t_half": 0.0, "t1": 0.0, "sum": 0.0}
    count = args.count
    half = count // 2
    meter = CpuMeter({"self": "self", **stack_pids()})
    cpu: dict[str, float] = {}

    def count_json(value: Any) -> None:
        if not box["n"]:
            box["t0"] = time.perf_counter()
            meter.start()
        box["sum"] += value["bid"]
        box["n"] += 1
        if box["n"] == half:
            box["t_half"] = time.perf_counter()
        if box["n"] == count:
            box["t1"] = time.perf_counter()
            cpu.update(meter.stop())
            app.stop()

    loads = orjson.loads

    def count_bytes(value: Any) -> None:
        if not box["n"]:
            box["t0"] = time.perf_counter()
            meter.start()
        box["sum"] += loads(value)["bid"]
        box["n"] += 1
        if box["n"] == half:
            box["t_half"] = time.perf_counter()
        if box["n"] == count:
            box["t1"] = time.perf_counter()
            cpu.update(meter.stop())
            app.stop()

    sdf.update(count_json if deserializer == "json" else count_bytes)
    app.run()
    seconds = box["t1"] - box["t0"]
    emit(
        args.variant,
        int(box["n"]),
        seconds,
        half_seconds=box["t1"] - box["t_half"],
        cpu=cpu,
        note=f"checksum {box['sum']:.2f}",
    )


def _samejob(args: argparse.Namespace) -> None:
    from bench.samejob import run

    run(args)


# --------------------------------------------------------------------- stock Faust
def _faust_record(args: argparse.Namespace) -> None:
    import faust

    class TickRecord(faust.Record, serializer="json"):
        symbol: str
        exchange: str
        bid: float
        ask: float
        timestamp: float

    state = tempfile.mkdtemp(prefix="fintank-bench-faust-")
    atexit.register(shutil.rmtree, state, True)
    app = faust.App(
        args.group,
        broker=f"kafka://{args.bootstrap}",
        datadir=state,
        store="memory://",
        web_enabled=False,
        consumer_auto_offset_reset="earliest",
        topic_partitions=4,
    )
    topic = app.topic(args.topic, key_type=bytes, value_type=TickRecord, key_serializer="raw")
    count = args.count

    meter = CpuMeter({"self": "self", **stack_pids()})

    @app.agent(topic)
    async def ticks(stream: Any) -> None:
        n, t0, t_half, checksum = 0, 0.0, 0.0, 0.0
        async for tick in stream:
            if n >= count:
                continue  # measured; the worker is shutting down
            if not n:
                t0 = time.perf_counter()
                meter.start()
            checksum += tick.bid
            n += 1
            if n == count // 2:
                t_half = time.perf_counter()
            if n == count:
                t1 = time.perf_counter()
                cpu = meter.stop()
                note = f"checksum {checksum:.2f}"
                emit(args.variant, n, t1 - t0, half_seconds=t1 - t_half, cpu=cpu, note=note)
                os.kill(os.getpid(), signal.SIGTERM)  # a clean stop: the member leaves its group

    worker = faust.Worker(app, loglevel="WARNING", quiet=True, redirect_stdouts=False)
    worker.execute_from_commandline()


# --------------------------------------------------------------------- fintank worker
async def _offsets(bootstrap: str, topic: str, group: str) -> tuple[dict[int, int], dict[int, int]]:
    """(end offsets, committed offsets of ``group``) of ``topic``, by partition."""
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await consumer.start()
    await admin.start()
    try:
        parts = consumer.partitions_for_topic(topic) or set()
        if not parts:
            await consumer._client.force_metadata_update()
            parts = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        ends = {tp.partition: off for tp, off in (await consumer.end_offsets(tps)).items()}
        committed_raw = await admin.list_consumer_group_offsets(group)
        committed = {
            tp.partition: meta.offset for tp, meta in committed_raw.items() if tp.topic == topic
        }
        return ends, committed
    finally:
        await admin.close()
        await consumer.stop()


def _wait_commits(bootstrap: str, topic: str, group: str, timeout: float) -> tuple[bool, str]:
    deadline = time.monotonic() + timeout
    while True:
        ends, committed = asyncio.run(_offsets(bootstrap, topic, group))
        if ends and all(committed.get(p, -1) == end for p, end in ends.items()):
            return True, "ok"
        if time.monotonic() > deadline:
            return False, f"committed {committed} != end offsets {ends}"
        time.sleep(0.2)


class Scraper:
    """GET ``url`` every ``every`` seconds in a thread, as a Prometheus scraper would."""

    def __init__(self, url: str, every: float) -> None:
        self.url, self.every = url, every
        self.scrapes = 0
        self.bytes = 0
        self.seconds: list[float] = []  # each scrape's round trip
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            started = time.perf_counter()
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(self.url, timeout=5) as resp,
            ):
                self.bytes = len(resp.read())
                self.scrapes += 1
                self.seconds.append(time.perf_counter() - started)


def _fintank(args: argparse.Namespace, transport: str, scrape_every: float = 0.0) -> None:
    from bench.worker import WorkerSpec, free_port, stop, worker_pid
    from fintank.sinks.query import influx_count

    state = Path(tempfile.mkdtemp(prefix="fintank-bench-worker-"))
    atexit.register(shutil.rmtree, state, True)  # the worker's data dir and log
    # Every topic is bench-specific: the preloaded ticks, and empty, fresh others
    # (so agents other than the tick path find nothing to do but what ticks cause).
    spec = WorkerSpec(
        app_id=args.group,
        bootstrap=args.bootstrap,
        state=state,
        port=free_port(),
        transport=transport,
        database="bench",
        ticks_topic=args.topic,
        app=args.app,
    )
    spec.prepare()
    settings = spec.settings()

    # bid_ask points of exactly this run's ticks: 0 before round 1, N after any round
    # (a round rewrites the same points). Anything else: another run's ticks overlap.
    where = f"time >= {int(args.t_min * 1e9) - 1000} AND time <= {int(args.t_max * 1e9) + 1000}"
    before_points = influx_count(settings.influx_url, "bench", "bid_ask", "bid", where)

    argv = spec.argv()
    if args.profile:  # sample the worker with py-spy (pip install py-spy into the venv)
        out = Path(args.profile).resolve() / f"{args.variant}-{args.group}.txt"
        out.parent.mkdir(parents=True, exist_ok=True)
        spy = REPO / ".venv" / "bin" / "py-spy"
        if not spy.exists():
            raise SystemExit(f"--profile needs py-spy: {REPO}/.venv/bin/pip install py-spy")
        argv = [str(spy), "record", "--nonblocking", "-r", "200", "-f", "raw", "-o", str(out), "--"]
        argv += [str(REPO / ".venv" / "bin" / "python"), *spec.argv()]
    proc = spec.start(argv)
    pid = worker_pid(proc.pid) if args.profile else proc.pid
    sink = "influxd" if transport == "v1" else "victoria"
    servers = {k: v for k, v in stack_pids().items() if k in ("kafka", sink)}
    meter = CpuMeter({"self": pid, **servers})
    scraper = Scraper(spec.url + "/metrics", scrape_every) if scrape_every else None
    if scraper is not None:
        scraper.start()  # from before the worker is ready, through the whole run
    try:
        marks = _watch(proc, spec.url + "/health", args.count, args.timeout, meter, spec.log_file)
        if scraper is not None:
            scraper.stop()
        hwm = vmhwm_kb(pid)
        commit_started = time.monotonic()
        ok, why = _wait_commits(args.bootstrap, args.topic, args.group, timeout=30)
        commit_lag = time.monotonic() - commit_started
        points = ""
        if transport == "v1":
            got = influx_count(settings.influx_url, "bench", "bid_ask", "bid", where)
            if before_points not in (0, args.count):
                points = f"skipped ({before_points} points of another run in the range)"
            else:
                points = "ok" if got == args.count else f"MISMATCH {got} != {args.count}"
        hwm = max(hwm, vmhwm_kb(pid))
    finally:
        if scraper is not None:
            scraper.stop()
        if pid != proc.pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)  # py-spy writes its profile once the worker exits
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(60)
        stop(proc)
    emit(
        args.variant,
        args.count,
        marks["end"] - marks["start"],
        half_seconds=marks["end"] - marks["half"],
        vmhwm_kb=hwm,
        cpu=marks["cpu"],
        written=marks["written"],
        commits="ok" if ok else f"FAILED: {why}",
        commit_seconds=round(commit_lag, 2),
        ready_to_first_lines=round(marks["lines"] - marks["start"], 3),
        startup=round(marks["first_write"] - marks["assigned"], 3),
        late_ticks=marks["late_ticks"],
        points=points,
        health_polls=marks["polls"],
        **(
            {
                "scrapes": scraper.scrapes,
                "scrape_bytes": scraper.bytes,
                "scrape_ms_median": round(1000 * statistics.median(scraper.seconds or [0]), 2),
                "scrape_ms_max": round(1000 * max(scraper.seconds, default=0), 2),
            }
            if scraper
            else {}
        ),
    )


def _watch(
    proc: subprocess.Popen[bytes],
    url: str,
    count: int,
    timeout: float,
    meter: CpuMeter,
    log_file: Path,
    every: float = 0.05,
) -> dict[str, Any]:
    """Poll the worker's /health every ``every`` s until its persister has written ``count`` points.

    start: the first poll that finds the worker assigned ("ready"): from then on it
    fetches the backlog, so the first fetch and any per-assignment start-up work
    count against fintank. (The first poll that sees ticks in the persister would
    leave out the whole first batch.) half: the first poll with written >= count/2.
    end: the first poll with written >= count. Each mark is up to ``every`` late.
    assigned: the first poll that lists assigned partitions (before recovery);
    first_write: the first poll with written > 0; first_write - assigned is the
    "start-up" figure (assignment to first confirmed InfluxDB write, +-``every``).
    """
    from bench.worker import health, tail, written

    marks: dict[str, Any] = {
        "start": 0.0,
        "assigned": 0.0,
        "lines": 0.0,
        "first_write": 0.0,
        "half": 0.0,
        "polls": 0,
        "written": 0,
    }
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"worker exited with {proc.returncode}:\n{tail(log_file)}")
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out: {marks}\n{tail(log_file)}")
        now = time.perf_counter()
        doc = health(url)
        if doc is not None:
            marks["polls"] += 1
            done, buffered = written(doc)
            marks["written"] = done
            if not marks["assigned"] and (doc.get("assigned") or doc.get("ready") or done):
                marks["assigned"] = now
            if not marks["start"] and (doc.get("ready") or done or buffered):
                marks["start"] = now
                meter.start()
            if not marks["lines"] and (done or buffered):
                marks["lines"] = now
            if not marks["first_write"] and done:
                marks["first_write"] = now
            if not marks["half"] and done >= count / 2:
                marks["half"] = now
            if done >= count:
                marks["end"] = now
                marks["late_ticks"] = ((doc.get("bolts") or {}).get("market") or {}).get(
                    "late_ticks", 0
                )
                marks["cpu"] = meter.stop()
                return marks
        time.sleep(max(0.0, every - (time.perf_counter() - now)))


# --------------------------------------------------------------------- entry point
VARIANTS: dict[str, Callable[[argparse.Namespace], None]] = {
    "raw-aiokafka": lambda a: asyncio.run(_raw_aiokafka(a)),
    "quix-json": lambda a: _quix(a, "json"),
    "quix-orjson": lambda a: _quix(a, "bytes"),
    "quix-samejob": lambda a: _samejob(a),
    "faust-record": _faust_record,
    "fintank-v1": lambda a: _fintank(a, "v1"),
    "fintank-v2": lambda a: _fintank(a, "v2"),
    "fintank-scraped": lambda a: _fintank(a, "v1", scrape_every=1.0),
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variant", choices=sorted(VARIANTS))
    parser.add_argument("--topic", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--group", required=True, help="a fresh consumer group / app id")
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--app", default="topologies.fintank", help="fintank: the faust -A app")
    parser.add_argument("--profile", default="", help="fintank: py-spy the worker into this dir")
    parser.add_argument("--timeout", type=float, default=180, help="fintank: give up after")
    parser.add_argument("--t-min", type=float, default=0, help="fintank-v1: first tick time")
    parser.add_argument("--t-max", type=float, default=4e9, help="fintank-v1: last tick time")
    args = parser.parse_args(argv)
    with contextlib.suppress(BrokenPipeError):
        VARIANTS[args.variant](args)


if __name__ == "__main__":
    main()
