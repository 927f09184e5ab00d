"""`fintank`: the command line (the stack, the worker, seeding, topics, configuration).

Every mistake a person can make on the command line (a wrong value, a wrong
type, an unknown option, a bad ``FINTANK_*`` setting, a broker that does not
answer) ends as one line on stderr starting with ``fintank: `` and exit code 2;
never a traceback. Settings are read here, once, from the environment.

The helpers (``tick_seeding``, ``config_table``, ...) are shared with
``tasks.py``, so ``invoke queue-ticks`` and ``fintank seed ticks`` cannot drift.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import math
import os
import sys
import time
import warnings
from collections.abc import Callable, Coroutine, Iterable, Iterator, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO, TypeVar

import click

from fintank import __version__
from fintank.config import DOCS, PREFIX, Settings, Topics
from fintank.errors import FintankError

if TYPE_CHECKING:
    from aiokafka.admin import AIOKafkaAdminClient

    from fintank.pacing import Summary

T = TypeVar("T")
Record = tuple[bytes | None, bytes]

BUILTIN_APP = "topologies.fintank"
# How long a command waits for Kafka before it gives up (seeding, topics).
KAFKA_TIMEOUT = 10.0
SYMBOLS = "VTI,IVE,IWS"
# How many valid records `seed ticks` / `seed orders` send when neither --count nor --duration is given.
TICKS_COUNT = 1000
ORDERS_COUNT = 100
# The faust app that runs a Topology named on the command line (see fintank.hosted).
HOSTED_APP = "fintank.hosted:app"


class ArgumentError(FintankError):
    """A command-line argument has a value fintank cannot use; the message is one line naming it."""


# --------------------------------------------------------------------------- helpers
# Shared with tasks.py. They raise FintankError (ArgumentError, ConfigError), never exit.


def settings_from_env() -> Settings:
    """The settings of this process (`ConfigError` on a bad ``FINTANK_*`` value)."""
    return Settings.from_env(os.environ)


def parse_symbols(raw: str) -> list[str]:
    """``"VTI, IVE"`` -> ``["VTI", "IVE"]``; at least one symbol."""
    symbols = [s.strip() for s in raw.split(",") if s.strip()]
    if not symbols:
        raise ArgumentError("--symbols needs at least one symbol, e.g. --symbols VTI,IVE,IWS")
    return symbols


def check_amounts(count: int, invalid: int, rate: float) -> None:
    """The checks every seeding command makes on --count, --invalid and --rate."""
    if count < 0 or invalid < 0:
        raise ArgumentError("--count and --invalid must be >= 0")
    if not (rate >= 0 and math.isfinite(rate)):
        raise ArgumentError("--rate must be >= 0 (0 = as fast as possible)")


def check_order_options(taxpayers: int, limit_share: float) -> None:
    """The checks `seed orders` adds: --taxpayers and --limit-share."""
    if taxpayers < 1:
        raise ArgumentError("--taxpayers must be >= 1")
    if not 0 <= limit_share <= 1:
        raise ArgumentError("--limit-share must be between 0 and 1")


def tick_stream(symbols: str, count: int | None, seed: int | None = None) -> Iterator[Record]:
    """``count`` random-walk ticks keyed by symbol (None: without end), each made when taken.

    The symbols are checked now, not at the first tick. A negative ``seed`` means time-based.
    """
    import orjson

    from fintank.generators import random_walk_ticks

    names = parse_symbols(symbols)
    seed = None if seed is None or seed < 0 else seed
    ticks = random_walk_ticks(names, sys.maxsize if count is None else count, time.time(), seed)
    return ((t["symbol"].encode(), orjson.dumps(t)) for t in ticks)


def order_stream(
    symbols: str,
    count: int | None,
    seed: int | None = None,
    taxpayers: int = 100,
    limit_share: float = 0.2,
) -> Iterator[Record]:
    """``count`` random portfolio orders keyed by id (None: without end), each made when taken.

    The options are checked now, not at the first order. A negative ``seed`` means time-based.
    """
    import orjson

    from fintank.generators import random_orders

    check_order_options(taxpayers, limit_share)
    names = parse_symbols(symbols)
    seed = None if seed is None or seed < 0 else seed
    n = sys.maxsize if count is None else count
    orders = random_orders(names, n, time.time(), taxpayers, limit_share, seed)
    return ((o["portfolio_order_id"].encode(), orjson.dumps(o)) for o in orders)


def print_records(records: Iterable[Record], out: TextIO | None = None) -> None:
    """--dry-run: each record's value on its own line (JSON for valid records)."""
    write = (sys.stdout if out is None else out).write
    for _, value in records:
        write(value.decode("utf-8", "backslashreplace") + "\n")


@dataclass(frozen=True)
class Seeding:
    """What a seeding run sends: ``valid`` records on the schedule, then the ``invalid`` ones.

    ``valid`` is a list with --count, and generated as it is sent with --duration;
    ``count`` is None when it is not known in advance (--rate 0 with --duration,
    which the sender then ends by the clock: ``duration``).
    """

    valid: Iterable[Record]
    invalid: Sequence[Record]
    count: int | None
    rate: float
    duration: float | None = None

    @property
    def total(self) -> int:
        """Records in all (0: not known in advance)."""
        return 0 if self.count is None else self.count + len(self.invalid)


def seed_count(count: int | None, duration: float | None, rate: float, default: int) -> int | None:
    """How many valid records a seeding run sends: ``count`` (``default`` when neither is
    given), or the slots due within ``duration`` seconds at ``rate``; None at rate 0 with a
    duration (as many as it can send until the duration is over)."""
    from fintank.pacing import slots_within

    if count is not None and duration is not None:
        raise ArgumentError("--count and --duration exclude each other: give one of them")
    if not (rate >= 0 and math.isfinite(rate)):
        raise ArgumentError("--rate must be >= 0 (0 = as fast as possible)")
    if duration is None:
        return default if count is None else count
    if not (duration > 0 and math.isfinite(duration)):
        raise ArgumentError("--duration must be a number of seconds > 0")
    return slots_within(rate, duration) if rate > 0 else None


def tick_seeding(
    symbols: str,
    count: int | None,
    duration: float | None,
    invalid: int = 0,
    seed: int | None = None,
    rate: float = 0,
) -> Seeding:
    """Validated arguments -> the ticks of a `seed ticks` run (``count`` None: not given)."""
    from fintank.generators import INVALID_TICKS

    n = seed_count(count, duration, rate, TICKS_COUNT)
    check_amounts(n or 0, invalid, rate)
    stream = tick_stream(symbols, n, seed)
    bad = [(b"invalid", INVALID_TICKS[i % len(INVALID_TICKS)]) for i in range(invalid)]
    valid = stream if duration is not None else list(stream)
    return Seeding(valid, bad, n, rate, duration if n is None else None)


def order_seeding(
    symbols: str,
    count: int | None,
    duration: float | None,
    invalid: int = 0,
    seed: int | None = None,
    rate: float = 0,
    taxpayers: int = 100,
    limit_share: float = 0.2,
) -> Seeding:
    """Validated arguments -> the orders of a `seed orders` run (``count`` None: not given)."""
    from fintank.generators import INVALID_ORDERS

    n = seed_count(count, duration, rate, ORDERS_COUNT)
    check_amounts(n or 0, invalid, rate)
    stream = order_stream(symbols, n, seed, taxpayers, limit_share)
    bad = [(b"invalid", INVALID_ORDERS[i % len(INVALID_ORDERS)]) for i in range(invalid)]
    valid = stream if duration is not None else list(stream)
    return Seeding(valid, bad, n, rate, duration if n is None else None)


def dry_run_records(seeding: Seeding, as_json: bool) -> Iterable[Record]:
    """--dry-run: the records a run would send, in order (`ArgumentError` if there is no end)."""
    if as_json:
        raise ArgumentError("--json prints the summary of a send; --dry-run sends nothing")
    if seeding.count is None:
        raise ArgumentError("--dry-run with --duration needs a --rate > 0 (to know how many)")
    return itertools.chain(seeding.valid, seeding.invalid)


def send_seeding(settings: Settings, topic: str, seeding: Seeding) -> Summary:
    """Send a seeding run to the topic named by the ``settings.topics`` field ``topic`` on its
    schedule; the run's summary (an overload episode is logged CRITICAL on the way)."""
    from fintank.engine.kafka import KafkaSettings
    from fintank.producer import send_scheduled

    return asyncio.run(
        send_scheduled(
            KafkaSettings.from_settings(settings),  # servers, TLS, SASL
            getattr(settings.topics, topic),
            seeding.valid,
            seeding.total,
            seeding.rate,
            topic,
            timeout=KAFKA_TIMEOUT,
            duration=seeding.duration,
            then=seeding.invalid,
        )
    )


def seeding_report(name: str, invalid: int, summary: Summary, as_json: bool) -> list[str]:
    """What a seeding run prints on stdout: where the records went and the run's figures (two
    lines), or, ``as_json``, one JSON object with the same."""
    valid = summary.sent - invalid
    if as_json:
        return [
            json.dumps({"topic": name, "valid": valid, "invalid": invalid, **summary.as_dict()})
        ]
    where = f"sent {summary.sent} records to {name!r} ({valid} valid, {invalid} invalid)"
    return [where, summary.line()]


def config_table() -> list[str]:
    """The configuration table (FINTANK_* variables, defaults, meaning) as Markdown lines."""
    lines = ["| variable | default | meaning |", "|---|---|---|"]
    for f in fields(Settings):
        if f.name in DOCS:
            lines.append(f"| `{PREFIX}{f.name.upper()}` | `{f.default}` | {DOCS[f.name]} |")
    for f in fields(Topics):
        lines.append(f"| `{PREFIX}TOPIC_{f.name.upper()}` | `{f.default}` | topic name |")
    return lines


def stack_up(brokers: int | None, log: Callable[[str], None]) -> None:
    """`fintank up` / `invoke up`: the local stack with ``brokers`` Kafka nodes (None: as many
    as the state folder's cluster has, else 1). Without FINTANK_REPLICATION_FACTOR and
    FINTANK_MIN_INSYNC_REPLICAS, a cluster's topics get min(3, brokers) replicas and, with 3,
    min.insync.replicas 2 (`fintank.stack.cluster.replicated_env`)."""
    from fintank.stack import Stack, cluster
    from fintank.stack.stack import state_path

    if brokers is not None and brokers < 1:
        raise ArgumentError("--brokers must be >= 1")
    if brokers is None:
        # Only the state folder, to find the cluster there: the other settings are read
        # below, with the replication defaults of the cluster's size.
        state = os.environ.get(f"{PREFIX}STATE_DIR") or Settings().state_dir
        brokers = cluster.recorded_brokers(state_path(Settings(state_dir=state))) or 1
    settings = Settings.from_env(cluster.replicated_env(os.environ, brokers))
    cluster.check_replication(settings, brokers)
    stack = Stack(settings, brokers=brokers)
    stack.up(log)
    if brokers > 1:
        log(
            f"kafka: {brokers} brokers; workers and clients: "
            f"FINTANK_BROKER={cluster.bootstrap(stack.nodes)} "
            f"FINTANK_REPLICATION_FACTOR={settings.replication_factor} "
            f"FINTANK_MIN_INSYNC_REPLICAS={settings.min_insync_replicas}"
        )


def status_lines(settings: Settings) -> list[str]:
    """One line per server of the local stack and one for the worker: state, pid, address."""
    from fintank.stack import Stack
    from fintank.stack.worker import Worker

    lines = []
    for service, pid, answers in Stack(settings).status():
        state = "up" if answers else "down"
        lines.append(f"{service.name:17} {state:5} pid={pid or '-':<8} {service.address}")
    worker = Worker(settings)
    wpid, wstate = worker.pid(), "up" if worker.is_up() else "down"
    lines.append(f"{'worker':17} {wstate:5} pid={wpid or '-':<8} {worker.url}")
    return lines


def worker_argv(settings: Settings, app: str = BUILTIN_APP) -> list[str]:
    """``python -m faust -A APP worker -l info --web-port P --web-bind B --web-host H``."""
    from fintank.stack.worker import Worker

    return Worker(settings, app=app).argv()


async def _with_admin(
    settings: Settings,
    work: Callable[[AIOKafkaAdminClient], Coroutine[Any, Any, T]],
    timeout: float,
) -> T:
    """Run ``work`` with a connected admin client; `FintankError` within ``timeout`` if Kafka
    does not answer, or says why it refuses fintank's TLS or SASL."""
    from fintank.engine import kafka

    conn = kafka.KafkaSettings.from_settings(settings)  # servers, TLS, SASL
    bootstrap = conn.bootstrap
    admin = kafka.admin(conn)

    async def run() -> T:
        await admin.start()
        return await work(admin)

    try:
        return await asyncio.wait_for(run(), timeout)
    except TimeoutError:
        raise FintankError(f"kafka at {bootstrap} did not answer within {timeout:g} s") from None
    except (kafka.KafkaConnectionError, OSError):
        raise FintankError(await kafka.unreachable(conn)) from None
    except kafka.KafkaError as exc:
        raise FintankError(f"kafka at {bootstrap}: {exc}") from None
    finally:
        await admin.close()


async def topic_partitions(settings: Settings, timeout: float = KAFKA_TIMEOUT) -> dict[str, int]:
    """Every topic on the cluster -> its partition count."""

    async def describe(admin: AIOKafkaAdminClient) -> dict[str, int]:
        names = sorted(await admin.list_topics())
        described = await admin.describe_topics(names) if names else []
        return {t["topic"]: len(t["partitions"]) for t in described if not t.get("error_code", 0)}

    return await _with_admin(settings, describe, timeout)


async def create_topics(
    settings: Settings,
    log: Callable[[str], None] = print,
    timeout: float = KAFKA_TIMEOUT,
    wanted: dict[str, int] | None = None,
    whose: str = "fintank's",
) -> None:
    """`ensure_topics` (of ``wanted``, default fintank's), giving up within about ``timeout``
    seconds if Kafka does not answer."""
    from fintank.engine import kafka
    from fintank.stack.topics import ensure_topics, wanted_topics

    async def probe(admin: AIOKafkaAdminClient) -> None:
        await admin.list_topics()

    await _with_admin(settings, probe, timeout)
    try:
        await asyncio.wait_for(
            ensure_topics(settings, log, timeout=timeout, wanted=wanted), 2 * timeout
        )
    except TimeoutError:
        raise FintankError(
            f"kafka at {settings.bootstrap} did not create the topics within {2 * timeout:g} s"
        ) from None
    except kafka.KafkaError as exc:
        raise FintankError(f"kafka at {settings.bootstrap}: {exc}") from None
    count = len(wanted_topics(settings) if wanted is None else wanted)
    log(f"topics: {whose} {count} topics are on kafka at {settings.bootstrap}")


async def tail_topic(
    settings: Settings, topic: str, count: int, wait: float, emit: Callable[[str], None]
) -> int:
    """Print the first ``count`` records of ``topic`` (``key<TAB>value``), waiting at most
    ``wait`` seconds for them; returns how many were printed."""
    from fintank.engine import kafka

    have = await topic_partitions(settings)
    if topic not in have:
        raise ArgumentError(f"topic {topic!r} does not exist on kafka at {settings.bootstrap}")
    # A reader outside any group (servers, TLS, SASL from the settings), from the beginning.
    consumer = kafka.reader(kafka.KafkaSettings.from_settings(settings))
    await consumer.start()
    consumer.subscribe([topic])
    printed = 0
    deadline = time.monotonic() + wait
    try:
        while printed < count and time.monotonic() < deadline:
            fetched = await consumer.getmany(timeout_ms=200)
            for records in fetched.values():
                for record in records:
                    if printed == count:
                        break
                    key = "" if record.key is None else record.key.decode("utf-8", "replace")
                    value = "" if record.value is None else record.value.decode("utf-8", "replace")
                    emit(f"{key}\t{value}")
                    printed += 1
    finally:
        await consumer.stop()
    return printed


def topics_table(settings: Settings, have: dict[str, int]) -> list[str]:
    """Each topic with its partitions; fintank's marked with their role (missing ones too)."""
    from fintank.stack.topics import wanted_topics

    wanted = wanted_topics(settings)
    roles = {getattr(settings.topics, f.name): f.name for f in fields(Topics)}
    # Changelogs are {app_id}-{table}-changelog; an empty app id means the topology's name.
    prefix = f"{settings.app_id}-" if settings.app_id else ""
    rows: list[tuple[str, str, str]] = []
    for name in sorted(set(have) | set(wanted)):
        role = roles.get(name, "")
        if not role and name.startswith(prefix) and name.endswith("-changelog"):
            role = "changelog"
        if name not in have:
            rows.append((name, "-", f"{role} (missing)"))
        elif name in wanted and have[name] != wanted[name]:
            rows.append((name, str(have[name]), f"{role} (wants {wanted[name]})"))
        else:
            rows.append((name, str(have[name]), role))
    width = max([len("topic"), *(len(name) for name, _, _ in rows)])
    lines = [f"{'topic':<{width}}  {'partitions':>10}  fintank"]
    lines += [f"{name:<{width}}  {parts:>10}  {role}".rstrip() for name, parts, role in rows]
    missing = sorted(set(wanted) - set(have))
    present = len(wanted) - len(missing)
    summary = f"fintank's topics: {present} of {len(wanted)} on kafka at {settings.bootstrap}"
    if missing:
        summary += " (create the missing ones: fintank topics create)"
    return [*lines, summary]


# ------------------------------------------------------------------------- errors


def _one_line(message: str) -> str:
    return "fintank: " + " ".join(str(message).split())


def _usage_line(exc: click.UsageError) -> str:
    message = " ".join(exc.format_message().split()).rstrip(".")
    message = message.replace(" Did you mean", "; did you mean")
    if message[:1].isupper() and message[1:2].islower():
        message = message[0].lower() + message[1:]
    where = exc.ctx.command_path if exc.ctx is not None else "fintank"
    return _one_line(f"{message} (see '{where} --help')")


def _is_kafka_error(exc: BaseException) -> bool:
    errors = sys.modules.get("aiokafka.errors")
    return errors is not None and isinstance(exc, errors.KafkaError)


class FintankGroup(click.Group):
    """A click group whose errors are one line on stderr (``fintank: ...``), exit code 2."""

    verbose = False

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        """click's ``main``; in standalone mode (a command line) errors are one line."""
        prog_name = prog_name or "fintank"
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        self.verbose = False
        code = self._run(
            lambda: super(FintankGroup, self).main(
                args, prog_name, complete_var, standalone_mode=False, **extra
            )
        )
        sys.exit(code)

    def _run(self, call: Callable[[], Any]) -> int:
        try:
            rv = call()
        except click.exceptions.NoArgsIsHelpError as exc:
            click.echo(exc.ctx.get_help())
            return 0
        except click.UsageError as exc:
            click.echo(_usage_line(exc), err=True)
            return 2
        except click.ClickException as exc:
            click.echo(_one_line(exc.format_message()), err=True)
            return 2
        except click.Abort:
            click.echo(_one_line("interrupted"), err=True)
            return 130
        except FintankError as exc:
            click.echo(_one_line(str(exc)), err=True)
            return 2
        except Exception as exc:
            if self.verbose:
                raise
            if _is_kafka_error(exc):
                click.echo(_one_line(f"kafka: {type(exc).__name__}: {exc}"), err=True)
                return 2
            click.echo(
                _one_line(
                    f"unexpected error: {type(exc).__name__}: {exc} (-v shows the traceback)"
                ),
                err=True,
            )
            return 1
        return rv if isinstance(rv, int) else 0


class _AlarmLines(logging.Handler):
    """A paced sender's alarms (overload, back on schedule) as one line each on stderr."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            out = sys.stderr  # looked up now: click's test runner swaps it per command
            clear = "\r\x1b[K" if out.isatty() else ""  # write over a progress bar's line
            out.write(f"{clear}fintank: {record.levelname} {record.getMessage()}\n")
            out.flush()
        except Exception:
            self.handleError(record)


def _alarms_on_stderr(on: bool) -> None:
    """The sender's alarms reach stderr even when library logs are off (--verbose shows them
    with the rest)."""
    logger = logging.getLogger("fintank.producer")
    for handler in [h for h in logger.handlers if isinstance(h, _AlarmLines)]:
        logger.removeHandler(handler)
    if on:
        logger.addHandler(_AlarmLines(logging.WARNING))


def quiet_output(verbose: bool) -> None:
    """Library logs and warnings would add lines to stderr: off unless --verbose (a paced
    sender's overload alarm stays on)."""
    root = logging.getLogger()
    _alarms_on_stderr(not verbose)
    if verbose:
        logging.basicConfig(
            level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
        return
    if not root.handlers:
        root.addHandler(logging.NullHandler())
    warnings.simplefilter("ignore")


# ----------------------------------------------------------------------- commands

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@click.group("fintank", cls=FintankGroup, context_settings=CONTEXT)
@click.option("-v", "--verbose", is_flag=True, help="Show library logs and tracebacks.")
@click.version_option(__version__, prog_name="fintank")
@click.pass_context
def main(ctx: click.Context, verbose: bool) -> None:
    """fintank: real-time market data and order flow on Kafka.

    Settings come from FINTANK_* environment variables (`fintank config`).
    """
    if isinstance(ctx.command, FintankGroup):
        ctx.command.verbose = verbose
    quiet_output(verbose)


@main.command()
@click.option(
    "--brokers",
    type=int,
    default=None,
    metavar="N",
    help="Kafka nodes (broker + KRaft controller each), ports FINTANK_KAFKA_PORT + 0, 10, "
    "20...; 3 replicate topics 3 times, min.insync.replicas 2 "
    "[default: the state folder's cluster, else 1]",
)
def up(brokers: int | None) -> None:
    """Start the local stack.

    Kafka (KRaft), InfluxDB 1.x and VictoriaMetrics on 127.0.0.1, installed if
    missing; creates fintank's topics. Idempotent: waits until each server answers.
    """
    stack_up(brokers, click.echo)


@main.command()
def down() -> None:
    """Stop the worker and the local stack.

    Only what `fintank up` and `fintank worker --detach` started (by pid file).
    """
    from fintank.stack import Stack
    from fintank.stack.worker import Worker

    settings = settings_from_env()
    stopped = Worker(settings).stop()
    click.echo(f"worker: {'stopped' if stopped else 'was not running'}")
    Stack(settings).down(log=click.echo)


@main.command()
def status() -> None:
    """Show each server and the worker: up or down, pid, address."""
    for line in status_lines(settings_from_env()):
        click.echo(line)


@main.command()
@click.argument("topology", required=False, metavar="[MODULE:TOPOLOGY]")
@click.option(
    "--detach", is_flag=True, help="Run in the background (pid and log under the state folder)."
)
def worker(topology: str | None, detach: bool) -> None:
    """Run a worker (the process becomes the worker).

    Without an argument: fintank's built-in topology, what
    `faust -A topologies.fintank worker` runs. MODULE:ATTR runs the Topology
    (or faust App) at MODULE.ATTR; MODULE alone takes its `topology`, else its
    `app`. A module that is not installed is looked for in the current directory.
    """
    from fintank.loader import find
    from fintank.stack.worker import Worker
    from fintank.topology import Topology

    settings = settings_from_env()
    app, env = BUILTIN_APP, {}
    if topology is not None:
        name, found = find(topology)
        if isinstance(found, Topology):
            app = HOSTED_APP
            env = {"FINTANK_TOPOLOGY": name, "FINTANK_TOPOLOGY_PATH": os.getcwd()}
        elif detach:
            raise ArgumentError(
                f"--detach waits for a fintank topology's /health; {name} is a faust App "
                f"(run `fintank worker {topology}` in the foreground)"
            )
        else:
            app = name
    if detach:
        w = Worker(settings, app=app)
        w.start(env={**os.environ, **env})
        click.echo(f"worker: up at {w.url} (log {w.log_file})")
        return
    argv = worker_argv(settings, app)
    os.environ.update(env)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(argv[0], argv)


@main.group()
def seed() -> None:
    """Send generated ticks or orders (or print them)."""


def _seed_options(count: int, rate: float, noun: str) -> Callable[[Callable[..., Any]], Any]:
    def decorate(f: Callable[..., Any]) -> Any:
        options = [
            click.option(
                "--count",
                type=int,
                default=count,
                show_default=True,
                help=f"Valid {noun} to send (not with --duration).",
            ),
            click.option(
                "--duration",
                type=float,
                default=None,
                metavar="SECONDS",
                help=f"Send for this long instead of --count: the {noun} due within it at "
                "--rate, or, at --rate 0, as many as go out until it is over.",
            ),
            click.option(
                "--rate",
                type=float,
                default=rate,
                show_default=True,
                help=f"{noun.capitalize()} per second (0 = as fast as possible).",
            ),
            click.option(
                "--symbols", default=SYMBOLS, show_default=True, help="Comma-separated symbols."
            ),
            click.option(
                "--invalid",
                type=int,
                default=0,
                show_default=True,
                help=f"Also send this many invalid {noun} (they land in deadletters).",
            ),
            click.option(
                "--seed",
                "seed_",
                type=int,
                default=None,
                help="Random seed (default: time-based).",
            ),
            click.option(
                "--dry-run", is_flag=True, help="Print the JSON lines instead of sending."
            ),
            click.option(
                "--json",
                "as_json",
                is_flag=True,
                help="Print the summary as one JSON object on stdout instead of two lines.",
            ),
        ]
        for option in reversed(options):
            f = option(f)
        return f

    return decorate


@seed.command("ticks")
@_seed_options(count=TICKS_COUNT, rate=500.0, noun="ticks")
def seed_ticks(
    count: int,
    duration: float | None,
    rate: float,
    symbols: str,
    invalid: int,
    seed_: int | None,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Send random-walk ticks keyed by symbol.

    bid < ask, distinct timestamps; with a progress bar on stderr. Tick i is
    due i/RATE seconds after the first (no drift; late ones go at once); 100
    late in a row log one CRITICAL "overload" line, and sending goes on. At the
    end: the achieved rate and the schedule lag (p50, p99, max, in ms).
    """
    seeding = tick_seeding(symbols, _given("count", count), duration, invalid, seed_, rate)
    _send_or_print(seeding, "ticks", dry_run, as_json)


@seed.command("orders")
@_seed_options(count=ORDERS_COUNT, rate=50.0, noun="orders")
@click.option(
    "--taxpayers", type=int, default=100, show_default=True, help="Taxpayer ids come from 1..N."
)
@click.option(
    "--limit-share",
    type=float,
    default=0.2,
    show_default=True,
    help="Share of components with a limit price (0..1).",
)
def seed_orders(
    count: int,
    duration: float | None,
    rate: float,
    symbols: str,
    invalid: int,
    seed_: int | None,
    dry_run: bool,
    as_json: bool,
    taxpayers: int,
    limit_share: float,
) -> None:
    """Send random portfolio orders keyed by portfolio_order_id.

    Weights sum to exactly 1; BUY or SELL; some components carry a limit price.
    Paced and summarized as `seed ticks` is.
    """
    seeding = order_seeding(
        symbols, _given("count", count), duration, invalid, seed_, rate, taxpayers, limit_share
    )
    _send_or_print(seeding, "orders", dry_run, as_json)


def _given(name: str, value: T) -> T | None:
    """``value``, or None if the option ``name`` was left at its default."""
    source = click.get_current_context().get_parameter_source(name)
    return None if source in (None, click.core.ParameterSource.DEFAULT) else value


def _send_or_print(seeding: Seeding, topic: str, dry_run: bool, as_json: bool) -> None:
    if dry_run:
        print_records(dry_run_records(seeding, as_json))
        return
    settings = settings_from_env()
    summary = send_seeding(settings, topic, seeding)
    name = getattr(settings.topics, topic)
    for line in seeding_report(name, len(seeding.invalid), summary, as_json):
        click.echo(line)


@main.command()
def demo() -> None:
    """Run the demo: stack, worker, seeded ticks and orders, a report.

    Starts the stack and a worker, seeds ticks and orders (a few invalid),
    and prints what landed where. Everything keeps running: `fintank down`.
    """
    from fintank.demo import run_demo

    run_demo(settings_from_env(), Path(sys.executable).parent)


@main.command()
@click.argument("topic")
@click.option("--count", "-n", type=int, default=10, show_default=True, help="Records to print.")
@click.option(
    "--wait", type=float, default=10.0, show_default=True, help="Seconds to wait for them."
)
def tail(topic: str, count: int, wait: float) -> None:
    """Print the first records of TOPIC, one per line: key, a tab, the value."""
    if count < 1:
        raise ArgumentError("--count must be >= 1")
    if not (wait >= 0 and math.isfinite(wait)):
        raise ArgumentError("--wait must be a finite number >= 0")
    settings = settings_from_env()
    printed = asyncio.run(tail_topic(settings, topic, count, wait, click.echo))
    if printed < count:
        click.echo(f"({printed} of {count} records within {wait:g} s)", err=True)


REPLAY_FORMATS = ("okx", "binance", "coinbase", "fintank")


@main.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(REPLAY_FORMATS),
    required=True,
    help="What the file holds (see above).",
)
@click.option(
    "--speed",
    type=float,
    default=1.0,
    show_default=True,
    help="Recorded timing scaled: 2 = twice as fast, 0 = as fast as possible.",
)
@click.option(
    "--symbol-map",
    metavar="FROM=TO,...|FILE",
    help="Rename symbols (e.g. BTC-USDT=BTCUSDT,ETH-USDT=ETHUSDT), or a file of such pairs; "
    "unmapped symbols pass unchanged.",
)
@click.option(
    "--shift-to-now",
    is_flag=True,
    help="Stamp ticks with the replay's wall clock (recorded times moved to start now, gaps "
    "scaled by --speed), as a live feed: a worker's candles then close as they would live.",
)
@click.option("--dry-run", is_flag=True, help="Print the converted ticks instead of sending.")
def replay(
    file: Path,
    fmt: str,
    speed: float,
    symbol_map: str | None,
    shift_to_now: bool,
    dry_run: bool,
) -> None:
    """Replay a recorded exchange feed into ticks, keyed by symbol.

    FILE holds one JSON message per line, plain or gzip. Formats:

    \b
      okx       websocket `tickers` pushes (bidPx, askPx, bidSz, askSz, ts in ms)
      binance   `bookTicker` stream, bare or combined ({"stream", "data"})
      coinbase  Exchange `ticker` channel (best_bid, best_ask, ISO-8601 time)
      fintank   contract ticks

    Control messages (subscribe acks, heartbeats, other channels) are skipped.
    Binance spot bookTicker has no event time: a tick takes T or E (futures),
    else a recorded `recv_ts` (epoch ms), else the replay clock (the wall clock
    when it is sent; such lines are not paced). The summary counts them.

    A line that cannot be converted is reported with its line number and sent,
    raw, to deadletters with source_topic `replay:<file name>`; the replay goes on.

    A worker closes a quiet candle window by the wall clock (FINTANK_CANDLE_GRACE
    past its end): to replay recorded times paced, and keep every tick in its
    candle, use --speed 0 or --shift-to-now.
    """
    from fintank.engine.kafka import KafkaSettings
    from fintank.replay.run import PrintSink, replay_file, replay_to_kafka
    from fintank.replay.symbols import symbol_map as read_symbol_map

    if not (speed >= 0 and math.isfinite(speed)):
        raise ArgumentError("--speed must be a finite number >= 0 (0 = as fast as possible)")
    symbols = {} if symbol_map is None else read_symbol_map(symbol_map)
    if dry_run:
        summary = asyncio.run(
            replay_file(
                file,
                fmt,
                speed=speed,
                symbols=symbols,
                err=sys.stderr,
                sink=PrintSink(sys.stdout),
                shift_to_now=shift_to_now,
            )
        )
        for line in summary.lines(None, None):
            click.echo(line, err=True)
        return
    settings = settings_from_env()
    topics = settings.topics
    summary = asyncio.run(
        replay_to_kafka(
            file,
            fmt,
            bootstrap=KafkaSettings.from_settings(settings),  # servers, TLS, SASL
            ticks_topic=topics.ticks,
            deadletters_topic=topics.deadletters,
            speed=speed,
            symbols=symbols,
            err=sys.stderr,
            timeout=KAFKA_TIMEOUT,
            shift_to_now=shift_to_now,
        )
    )
    for line in summary.lines(topics.ticks, topics.deadletters):
        click.echo(line)


@main.command("config")
def config_command() -> None:
    """Print the configuration table (FINTANK_* variables)."""
    for line in config_table():
        click.echo(line)


@main.group()
def topics() -> None:
    """fintank's Kafka topics."""


@topics.command("create")
@click.argument("topology", required=False, metavar="[MODULE:TOPOLOGY]")
def topics_create(topology: str | None) -> None:
    """Create fintank's missing topics, or those of the streams of MODULE:TOPOLOGY.

    FINTANK_PARTITIONS partitions each (deadletters: 1). An existing topic with
    another partition count is an error.
    """
    settings = settings_from_env()
    if topology is None:
        asyncio.run(create_topics(settings, click.echo))
        return
    from fintank.loader import find
    from fintank.stack.topics import topology_topics
    from fintank.topology import Topology

    name, found = find(topology)
    if not isinstance(found, Topology):
        raise ArgumentError(f"{name} is a faust App; topics create needs a Topology")
    wanted = topology_topics(found, settings)
    asyncio.run(create_topics(settings, click.echo, wanted=wanted, whose=f"{found.name}'s"))


@topics.command("list")
def topics_list() -> None:
    """List the topics with their partition counts.

    fintank's topics are marked with their role (missing ones too).
    """
    settings = settings_from_env()
    for line in topics_table(settings, asyncio.run(topic_partitions(settings))):
        click.echo(line)


if __name__ == "__main__":
    main()
