"""fintank's tasks for working in a clone: `.venv/bin/invoke --list`.

The tasks that a person runs on a stack are the `fintank` command's
(`fintank.cli`); these call the same helpers, so both say and check the same.
Settings are read once, from FINTANK_* environment variables.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from invoke import Context, Exit, task

from fintank import cli
from fintank.config import Settings
from fintank.errors import FintankError

REPO = Path(__file__).resolve().parent
VENV_BIN = REPO / ".venv" / "bin"
T = TypeVar("T")


def _fail(message: str) -> Exit:
    return Exit(f"fintank: {message}", code=2)


def _or_exit(call: Callable[[], T]) -> T:
    """``call()``; a `FintankError` (bad argument, setting, broker) becomes one line and exit 2."""
    try:
        return call()
    except FintankError as exc:
        raise _fail(" ".join(str(exc).split())) from None


def _settings() -> Settings:
    return _or_exit(cli.settings_from_env)


def _send_or_print(seeding: cli.Seeding, topic: str, dry_run: bool, json: bool) -> None:
    """Send a seeding run to the configured ``topic`` on its schedule and print its summary
    (as `fintank seed` does), or print the records."""
    if dry_run:
        cli.print_records(_or_exit(lambda: cli.dry_run_records(seeding, json)))
        return
    settings = _settings()
    cli.quiet_output(verbose=False)  # no aiokafka log lines around a one-line error; alarms on
    summary = _or_exit(lambda: cli.send_seeding(settings, topic, seeding))
    name = getattr(settings.topics, topic)
    for line in cli.seeding_report(name, len(seeding.invalid), summary, json):
        print(line)


def _count_or_duration(count: int, duration: float) -> tuple[int | None, float | None]:
    """The tasks' ``--count -1`` and ``--duration 0`` mean "not given" (invoke has no None)."""
    return (None if count == -1 else count), (None if duration == 0.0 else duration)


@task(
    help={
        "brokers": "Kafka nodes, as `fintank up --brokers` (0: the state folder's cluster, else 1)"
    }
)
def up(c: Context, brokers: int = 0) -> None:
    """Start the local stack (Kafka KRaft, InfluxDB 1.x, VictoriaMetrics); installs what is missing."""
    _or_exit(lambda: cli.stack_up(brokers or None, print))


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
    for line in cli.status_lines(_settings()):
        print(line)


@task(help={"detach": "run in the background (pid and log under the state folder)"})
def worker(c: Context, detach: bool = False) -> None:
    """Run the Faust worker of topologies.fintank (`faust -A topologies.fintank worker -l info`)."""
    from fintank.stack.worker import Worker

    settings = _settings()
    if detach:
        w = Worker(settings)
        _or_exit(w.start)
        print(f"worker: up at {w.url} (log {w.log_file})")
        return
    argv = cli.worker_argv(settings)
    sys.stdout.flush()
    os.execv(argv[0], argv)


@task(
    help={
        "count": f"how many valid ticks to send (default {cli.TICKS_COUNT}; not with --duration)",
        "duration": "send for this many seconds instead of --count",
        "rate": "ticks per second (0 = as fast as possible)",
        "symbols": "comma-separated symbols",
        "invalid": "also send this many invalid ticks (they must land in deadletters)",
        "seed": "random seed (default: time-based)",
        "dry_run": "print the JSON instead of sending",
        "json": "print the summary as one JSON object",
    }
)
def queue_ticks(
    c: Context,
    count: int = -1,
    duration: float = 0.0,
    rate: float = 500.0,
    symbols: str = "VTI,IVE,IWS",
    invalid: int = 0,
    seed: int = -1,
    dry_run: bool = False,
    json: bool = False,
) -> None:
    """Seed the ticks topic with random-walk quotes keyed by symbol (= `fintank seed ticks`)."""
    n, seconds = _count_or_duration(count, duration)
    seeding = _or_exit(lambda: cli.tick_seeding(symbols, n, seconds, invalid, seed, rate))
    _send_or_print(seeding, "ticks", dry_run, json)


@task(
    help={
        "count": f"how many valid orders to send (default {cli.ORDERS_COUNT}; not with --duration)",
        "duration": "send for this many seconds instead of --count",
        "rate": "orders per second (0 = as fast as possible)",
        "symbols": "comma-separated symbols the portfolios draw from",
        "taxpayers": "taxpayer ids are drawn from 1..N",
        "limit_share": "share of components that carry a limit price (0..1)",
        "invalid": "also send this many invalid orders (they must land in deadletters)",
        "seed": "random seed (default: time-based)",
        "dry_run": "print the JSON instead of sending",
        "json": "print the summary as one JSON object",
    }
)
def queue_orders(
    c: Context,
    count: int = -1,
    duration: float = 0.0,
    rate: float = 50.0,
    symbols: str = "VTI,IVE,IWS",
    taxpayers: int = 100,
    limit_share: float = 0.2,
    invalid: int = 0,
    seed: int = -1,
    dry_run: bool = False,
    json: bool = False,
) -> None:
    """Seed the orders topic with random portfolio orders keyed by id (= `fintank seed orders`)."""
    n, seconds = _count_or_duration(count, duration)
    seeding = _or_exit(
        lambda: cli.order_seeding(symbols, n, seconds, invalid, seed, rate, taxpayers, limit_share)
    )
    _send_or_print(seeding, "orders", dry_run, json)


@task
def demo(c: Context) -> None:
    """The main job: start the stack and a worker, seed ticks, show what landed where."""
    from fintank.demo import run_demo

    settings = _settings()
    _or_exit(lambda: run_demo(settings, VENV_BIN))


@task(help={"k": "only tests matching this pytest -k expression", "unit": "skip integration tests"})
def test(c: Context, k: str = "", unit: bool = False) -> None:
    """The linters (`lint`), then the whole test suite (integration tests start their own
    stack on test ports); ``-k``/``--unit`` pick tests and skip the linters."""
    if not (k or unit):
        lint(c)
    args = [str(VENV_BIN / "python"), "-m", "pytest", "tests"]
    if k:
        args += ["-k", k]
    if unit:
        args += ["-m", "not integration"]
    c.run(" ".join(args), pty=False)


@task
def lint(c: Context) -> None:
    """ruff (lint + format check) and mypy (strict: fintank/, topologies/, examples/)."""
    c.run(f"{VENV_BIN}/ruff check fintank topologies examples tests tasks.py")
    c.run(f"{VENV_BIN}/ruff format --check fintank topologies examples tests tasks.py")
    c.run(f"{VENV_BIN}/mypy")


@task
def config(c: Context) -> None:
    """Print the configuration table (FINTANK_* variables, defaults, meaning)."""
    for line in cli.config_table():
        print(line)


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
