"""fintank's one entry point for humans: `.venv/bin/invoke --list`.

Settings are read here, once, from FINTANK_* environment variables.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

from invoke import Context, Exit, task

from fintank.config import DOCS, PREFIX, Settings
from fintank.errors import FintankError

REPO = Path(__file__).resolve().parent
VENV_BIN = REPO / ".venv" / "bin"


def _settings() -> Settings:
    try:
        return Settings.from_env(os.environ)
    except FintankError as exc:
        raise Exit(f"fintank: {exc}", code=2) from None


def _fail(message: str) -> Exit:
    return Exit(f"fintank: {message}", code=2)


def _symbols(raw: str) -> list[str]:
    symbols = [s.strip() for s in raw.split(",") if s.strip()]
    if not symbols:
        raise _fail("--symbols needs at least one symbol, e.g. --symbols VTI,IVE,IWS")
    return symbols


def _check_amounts(count: int, invalid: int, rate: float) -> None:
    if count < 0 or invalid < 0:
        raise _fail("--count and --invalid must be >= 0")
    if rate < 0:
        raise _fail("--rate must be >= 0 (0 = as fast as possible)")


def _send_or_print(
    records: list[tuple[bytes | None, bytes]], topic: str, rate: float, dry_run: bool, what: str
) -> None:
    """Send (key, value) records to the configured ``topic`` at ``rate``, or print them."""
    from fintank.producer import send_paced

    if dry_run:
        for _, value in records:
            sys.stdout.write(value.decode("utf-8", "backslashreplace") + "\n")
        return
    settings = _settings()
    name = getattr(settings.topics, topic)
    sent = asyncio.run(send_paced(settings.bootstrap, name, records, len(records), rate, topic))
    print(f"sent {sent} records to {name!r} ({what})")


@task
def up(c: Context) -> None:
    """Start the local stack (Kafka KRaft, InfluxDB 1.x, VictoriaMetrics); installs what is missing."""
    from fintank.stack import Stack

    try:
        Stack(_settings()).up()
    except FintankError as exc:
        raise _fail(str(exc)) from None


@task
def down(c: Context) -> None:
    """Stop the worker and the local stack (only processes `up`/`worker` started)."""
    from fintank.stack import Stack
    from fintank.stack.worker import Worker

    settings = _settings()
    Worker(settings).stop()
    Stack(settings).down()


@task
def status(c: Context) -> None:
    """Say what runs: each server, its pid and whether it answers."""
    from fintank.stack import Stack
    from fintank.stack.worker import Worker

    settings = _settings()
    rows = Stack(settings).status()
    worker = Worker(settings)
    for service, pid, answers in rows:
        state = "up" if answers else "down"
        print(f"{service.name:17} {state:5} pid={pid or '-':<8} {service.address}")
    wpid = worker.pid()
    print(f"{'worker':17} {'up' if worker.is_up() else 'down':5} pid={wpid or '-':<8} {worker.url}")


@task(help={"detach": "run in the background (pid and log under the state folder)"})
def worker(c: Context, detach: bool = False) -> None:
    """Run the Faust worker of topologies.fintank (`faust -A topologies.fintank worker -l info`)."""
    from fintank.stack.worker import Worker

    w = Worker(_settings())
    if detach:
        try:
            w.start()
        except FintankError as exc:
            raise _fail(str(exc)) from None
        print(f"worker: up at {w.url} (log {w.log_file})")
        return
    os.execv(str(VENV_BIN / "faust"), w.argv())


@task(
    help={
        "count": "how many valid ticks to send",
        "rate": "ticks per second (0 = as fast as possible)",
        "symbols": "comma-separated symbols",
        "invalid": "also send this many invalid ticks (they must land in deadletters)",
        "seed": "random seed (default: time-based)",
        "dry_run": "print the JSON instead of sending",
    }
)
def queue_ticks(
    c: Context,
    count: int = 1000,
    rate: float = 500,
    symbols: str = "VTI,IVE,IWS",
    invalid: int = 0,
    seed: int = -1,
    dry_run: bool = False,
) -> None:
    """Seed the ticks topic with random-walk quotes keyed by symbol."""
    import orjson

    from fintank.generators import INVALID_TICKS, random_walk_ticks

    _check_amounts(count, invalid, rate)
    names = _symbols(symbols)
    ticks = random_walk_ticks(names, count, time.time(), None if seed < 0 else seed)
    records: list[tuple[bytes | None, bytes]] = [
        (t["symbol"].encode(), orjson.dumps(t)) for t in ticks
    ]
    records += [(b"invalid", INVALID_TICKS[i % len(INVALID_TICKS)]) for i in range(invalid)]
    _send_or_print(records, "ticks", rate, dry_run, f"{count} valid, {invalid} invalid")


@task(
    help={
        "count": "how many valid portfolio orders to send",
        "rate": "orders per second (0 = as fast as possible)",
        "symbols": "comma-separated symbols the portfolios draw from",
        "taxpayers": "taxpayer ids are drawn from 1..N",
        "limit_share": "share of components that carry a limit price (0..1)",
        "invalid": "also send this many invalid orders (they must land in deadletters)",
        "seed": "random seed (default: time-based)",
        "dry_run": "print the JSON instead of sending",
    }
)
def queue_orders(
    c: Context,
    count: int = 100,
    rate: float = 50,
    symbols: str = "VTI,IVE,IWS",
    taxpayers: int = 100,
    limit_share: float = 0.2,
    invalid: int = 0,
    seed: int = -1,
    dry_run: bool = False,
) -> None:
    """Seed the orders topic with random portfolio orders keyed by portfolio_order_id."""
    import orjson

    from fintank.generators import INVALID_ORDERS, random_orders

    _check_amounts(count, invalid, rate)
    if taxpayers < 1:
        raise _fail("--taxpayers must be >= 1")
    if not 0 <= limit_share <= 1:
        raise _fail("--limit-share must be between 0 and 1")
    names = _symbols(symbols)
    orders = random_orders(
        names, count, time.time(), taxpayers, limit_share, None if seed < 0 else seed
    )
    records: list[tuple[bytes | None, bytes]] = [
        (o["portfolio_order_id"].encode(), orjson.dumps(o)) for o in orders
    ]
    records += [(b"invalid", INVALID_ORDERS[i % len(INVALID_ORDERS)]) for i in range(invalid)]
    _send_or_print(records, "orders", rate, dry_run, f"{count} valid, {invalid} invalid")


@task
def demo(c: Context) -> None:
    """The main job: start the stack and a worker, seed ticks, show what landed where."""
    from fintank.demo import run_demo

    try:
        run_demo(_settings(), VENV_BIN)
    except FintankError as exc:
        raise _fail(str(exc)) from None


@task(help={"k": "only tests matching this pytest -k expression", "unit": "skip integration tests"})
def test(c: Context, k: str = "", unit: bool = False) -> None:
    """Run the whole test suite (integration tests start their own stack on test ports)."""
    args = [str(VENV_BIN / "python"), "-m", "pytest", "tests"]
    if k:
        args += ["-k", k]
    if unit:
        args += ["-m", "not integration"]
    c.run(" ".join(args), pty=False)


@task
def lint(c: Context) -> None:
    """ruff (lint + format check) and mypy on fintank/."""
    c.run(f"{VENV_BIN}/ruff check fintank topologies tests tasks.py")
    c.run(f"{VENV_BIN}/ruff format --check fintank topologies tests tasks.py")
    c.run(f"{VENV_BIN}/mypy")


@task
def config(c: Context) -> None:
    """Print the configuration table (FINTANK_* variables, defaults, meaning)."""
    from dataclasses import fields

    from fintank.config import Topics

    print("| variable | default | meaning |\n|---|---|---|")
    for f in fields(Settings):
        if f.name in DOCS:
            print(f"| `{PREFIX}{f.name.upper()}` | `{f.default}` | {DOCS[f.name]} |")
    for f in fields(Topics):
        print(f"| `{PREFIX}TOPIC_{f.name.upper()}` | `{f.default}` | topic name |")


@task(
    help={
        "count": "ticks to preload and read per variant (stock faust reads count/10)",
        "rounds": "rounds of all variants, interleaved (medians are reported)",
        "quick": "a smoke run: 50,000 ticks, 1 round, 10 s of latency load",
        "variants": "comma-separated subset, e.g. quix-json,fintank-v1 (default: all)",
        "keep": "keep the run's Kafka topics and consumer groups (default: delete them)",
        "profile": "py-spy the fintank workers into this folder (pip install py-spy first)",
        "latency_only": "run only the latency part (a worker under a steady mixed load)",
        "no_latency": "skip the latency part (throughput table only)",
        "latency_seconds": "how long the latency part's load runs (default 30)",
        "json": "also write every result (rounds, medians, latency, targets) to this JSON file",
    }
)
def bench(
    c: Context,
    count: int = 200_000,
    rounds: int = 2,
    quick: bool = False,
    variants: str = "",
    keep: bool = False,
    profile: str = "",
    latency_only: bool = False,
    no_latency: bool = False,
    latency_seconds: float = 30.0,
    json: str = "",
) -> None:
    """fintank's tick path vs raw aiokafka, Quix Streams and stock Faust, then latency (needs `invoke up`)."""
    from bench.run import main as run_bench

    if quick:
        count, rounds, latency_seconds = 50_000, 1, min(latency_seconds, 10.0)
    if count < 10 or rounds < 1:
        raise _fail("--count must be >= 10 and --rounds >= 1")
    if latency_seconds < 5:
        raise _fail("--latency-seconds must be >= 5 (the first 3 s are warm-up)")
    if latency_only and no_latency:
        raise _fail("--latency-only and --no-latency exclude each other")
    chosen = [v.strip() for v in variants.split(",") if v.strip()] or None
    run_bench(
        count=count,
        rounds=rounds,
        variants=chosen,
        keep=keep,
        profile=profile,
        latency=not no_latency,
        latency_only=latency_only,
        latency_seconds=latency_seconds,
        json_path=json,
    )
