"""The `fintank` command (fintank.cli) without a stack: arguments, one-line errors, dry runs, the bar."""

from __future__ import annotations

import asyncio
import io
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner, Result

import fintank.cli as cli
from fintank.config import DOCS, PREFIX
from fintank.errors import FintankError
from fintank.producer import Progress, send_paced
from fintank.records import Tick
from fintank.ticks import parse_tick
from fintank.trading import parse_order
from fintank.trading.records import PortfolioOrder

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No FINTANK_* setting of the person running the tests leaks in."""
    for name in list(os.environ):
        if name.startswith(PREFIX):
            monkeypatch.delenv(name)


def run(*args: str, **env: str) -> Result:
    return CliRunner().invoke(cli.main, list(args), env=env)


def assert_one_line_error(result: Result, code: int = 2) -> str:
    """The result failed with ``code`` and exactly one ``fintank: `` line on stderr; that line."""
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == code, (result.exit_code, result.stderr, result.stdout)
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("fintank: ")
    assert "Traceback" not in result.stderr and result.stdout == ""
    return lines[0]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ----------------------------------------------------------------- wrong arguments


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["seed", "ticks", "--rate", "abc"],
            "invalid value for '--rate': 'abc' is not a valid float",
        ),
        (["seed", "ticks", "--count", "lots"], "invalid value for '--count'"),
        (["seed", "ticks", "--count", "1.5"], "invalid value for '--count'"),
        (["seed", "ticks", "--count", "-1"], "--count and --invalid must be >= 0"),
        (["seed", "ticks", "--invalid", "-2"], "--count and --invalid must be >= 0"),
        (["seed", "ticks", "--rate", "-1"], "--rate must be >= 0 (0 = as fast as possible)"),
        (["seed", "ticks", "--rate", "nan"], "--rate must be >= 0"),
        (["seed", "ticks", "--rate", "inf"], "--rate must be >= 0"),
        (["seed", "ticks", "--symbols", " , "], "--symbols needs at least one symbol"),
        (["seed", "ticks", "--seed", "x"], "invalid value for '--seed'"),
        (["seed", "ticks", "--bogus"], "no such option: --bogus"),
        (["seed", "ticks", "--count"], "option '--count' requires an argument"),
        (["seed", "ticks", "extra"], "got unexpected extra argument (extra)"),
        (["seed", "orders", "--taxpayers", "0"], "--taxpayers must be >= 1"),
        (["seed", "orders", "--limit-share", "1.5"], "--limit-share must be between 0 and 1"),
        (["seed", "orders", "--limit-share", "some"], "invalid value for '--limit-share'"),
        (["seed", "orders", "--count", "-3"], "--count and --invalid must be >= 0"),
        (["seed", "candles"], "no such command 'candles'"),
        (["nosuch"], "no such command 'nosuch'"),
        (["--bogus"], "no such option: --bogus"),
        (["up", "--brokers", "12"], "--brokers must be 1..9, got 12"),
        (["up", "--brokers", "0"], "--brokers must be >= 1"),
        (["up", "--brokers", "many"], "invalid value for '--brokers'"),
        (["topics", "list", "--all"], "no such option: --all"),
        (["topics", "delete"], "no such command 'delete'"),
        (["config", "extra"], "got unexpected extra argument (extra)"),
        (["worker", "a::b"], "MODULE:TOPOLOGY must look like package.module"),
        (["worker", ":app"], "MODULE:TOPOLOGY must look like package.module"),
        (["worker", "pkg.:app"], "MODULE:TOPOLOGY must look like package.module"),
        (["worker", "no_such_module_xyz"], "no module named 'no_such_module_xyz'"),
        (["worker", "no_such_module_xyz:app"], "no module named 'no_such_module_xyz'"),
        (["worker", "json"], "module 'json' has no attribute 'topology' or 'app'"),
        (["worker", "json:loads"], "json:loads is a function, not a Topology or a faust App"),
    ],
)
def test_a_wrong_argument_is_one_line_and_exit_2(args: list[str], message: str) -> None:
    line = assert_one_line_error(run(*args))

    assert line.startswith(f"fintank: {message}"), line


def test_a_click_usage_error_names_the_command_to_ask_for_help() -> None:
    line = assert_one_line_error(run("seed", "ticks", "--count", "lots"))

    assert line == (
        "fintank: invalid value for '--count': 'lots' is not a valid integer "
        "(see 'fintank seed ticks --help')"
    )


def test_the_brokers_message_is_exactly_the_documented_one() -> None:
    line = assert_one_line_error(run("up", "--brokers", "0"))

    assert line == "fintank: --brokers must be >= 1"


@pytest.mark.parametrize(
    "args",
    [["status"], ["down"], ["seed", "ticks", "--count", "1"], ["topics", "list"], ["worker"]],
)
def test_a_bad_setting_is_the_config_error_line(args: list[str]) -> None:
    line = assert_one_line_error(run(*args, FINTANK_BATCH_SIZE="lots"))

    assert line == "fintank: FINTANK_BATCH_SIZE must be an integer, got 'lots'"


def test_a_bad_broker_setting_is_the_config_error_line() -> None:
    line = assert_one_line_error(run("topics", "create", FINTANK_BROKER="kafka://localhost:99999"))

    assert line.startswith("fintank: FINTANK_BROKER must look like kafka://host:port")


@pytest.mark.parametrize(
    "args",
    [["seed", "ticks", "--count", "1"], ["seed", "orders", "--count", "1"], ["topics", "list"]],
)
def test_an_unreachable_broker_is_one_line_and_exit_2(args: list[str]) -> None:
    port = closed_port()

    line = assert_one_line_error(run(*args, FINTANK_BROKER=f"kafka://127.0.0.1:{port}"))

    assert line.startswith(f"fintank: cannot reach kafka at 127.0.0.1:{port}")


def test_help_and_version_exit_0() -> None:
    assert run("--help").exit_code == 0
    assert "seed" in run("--help").stdout
    assert run("seed", "ticks", "--help").exit_code == 0
    assert "--dry-run" in run("seed", "ticks", "--help").stdout
    assert run("--version").exit_code == 0


@pytest.mark.parametrize("args", [[], ["seed"], ["topics"]])
def test_a_group_without_a_command_prints_its_help(args: list[str]) -> None:
    result = run(*args)

    assert result.exit_code == 0
    assert result.stdout.startswith("Usage: fintank")


def test_ctrl_c_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(*_: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "print_records", interrupted)

    result = run("seed", "ticks", "--dry-run", "--count", "1")

    assert result.exit_code == 130
    assert result.stderr.strip() == "fintank: interrupted"


def test_a_bug_is_one_line_and_exit_1_and_verbose_shows_it(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_: Any) -> None:
        raise ValueError("a bug\nover two lines")

    monkeypatch.setattr(cli, "print_records", broken)

    line = assert_one_line_error(run("seed", "ticks", "--dry-run"), code=1)
    assert line.startswith("fintank: unexpected error: ValueError: a bug over two lines")
    verbose = run("-v", "seed", "ticks", "--dry-run")
    assert isinstance(verbose.exception, ValueError)


def test_python_m_fintank_cli_runs_and_errors_stay_one_line() -> None:
    """The real process: no library log or warning adds a line."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(PREFIX)}
    python = [sys.executable, "-m", "fintank.cli"]

    helped = subprocess.run(
        [*python, "--help"], capture_output=True, text=True, env=env, timeout=60
    )
    port = closed_port()
    failed = subprocess.run(
        [*python, "seed", "ticks", "--count", "1"],
        capture_output=True,
        text=True,
        env={**env, "FINTANK_BROKER": f"kafka://127.0.0.1:{port}"},
        timeout=60,
    )

    assert helped.returncode == 0 and helped.stdout.startswith("Usage: fintank")
    assert failed.returncode == 2
    assert failed.stderr.splitlines() == [
        f"fintank: cannot reach kafka at 127.0.0.1:{port} (is it running? see `fintank status`)"
    ]


# ------------------------------------------------------------------------- dry runs


def test_seed_ticks_dry_run_prints_valid_ticks() -> None:
    result = run(
        "seed", "ticks", "--dry-run", "--count", "30", "--symbols", "VTI,SPY", "--seed", "3"
    )

    lines = result.stdout.splitlines()
    assert result.exit_code == 0 and result.stderr == ""
    assert len(lines) == 30
    ticks = [parse_tick(line.encode()) for line in lines]
    assert all(isinstance(t, Tick) for t in ticks), ticks
    assert {orjson.loads(line)["symbol"] for line in lines} == {"VTI", "SPY"}
    stamps = [orjson.loads(line)["timestamp"] for line in lines]
    assert len(set(stamps)) == 30


def test_seed_ticks_dry_run_appends_the_invalid_ones() -> None:
    result = run("seed", "ticks", "--dry-run", "--count", "5", "--invalid", "3")

    parsed = [parse_tick(line.encode()) for line in result.stdout.splitlines()]
    assert result.exit_code == 0 and len(parsed) == 8
    assert all(isinstance(p, Tick) for p in parsed[:5])
    assert all(isinstance(p, str) for p in parsed[5:])  # the reason each is invalid


def test_the_same_seed_gives_the_same_prices() -> None:
    def prices() -> list[tuple[float, float]]:
        out = run("seed", "ticks", "--dry-run", "--count", "10", "--seed", "7").stdout
        return [(t["bid"], t["ask"]) for t in map(orjson.loads, out.splitlines())]

    assert prices() == prices()


def test_seed_orders_dry_run_prints_valid_orders() -> None:
    result = run(
        "seed", "orders", "--dry-run", "--count", "25", "--taxpayers", "3", "--limit-share", "0.5"
    )

    lines = result.stdout.splitlines()
    orders = [parse_order(line.encode()) for line in lines]
    assert result.exit_code == 0 and len(lines) == 25
    assert all(isinstance(o, PortfolioOrder) for o in orders), orders
    assert {orjson.loads(line)["taxpayer_id"] for line in lines} <= {1, 2, 3}


def test_seed_orders_dry_run_appends_the_invalid_ones() -> None:
    result = run("seed", "orders", "--dry-run", "--count", "2", "--invalid", "4")

    parsed = [parse_order(line.encode()) for line in result.stdout.splitlines()]
    assert result.exit_code == 0 and len(parsed) == 6
    assert all(isinstance(p, str) for p in parsed[2:])


def test_dry_run_needs_no_settings_and_no_broker() -> None:
    result = run("seed", "ticks", "--dry-run", "--count", "1", FINTANK_BROKER="kafka://nowhere:1")

    assert result.exit_code == 0 and len(result.stdout.splitlines()) == 1


# ------------------------------------------------------------------ config, worker


def test_config_prints_the_table() -> None:
    result = run("config")

    lines = result.stdout.splitlines()
    assert result.exit_code == 0
    assert lines[:2] == ["| variable | default | meaning |", "|---|---|---|"]
    assert lines == cli.config_table()
    for name in DOCS:
        assert any(line.startswith(f"| `{PREFIX}{name.upper()}` |") for line in lines), name
    assert "| `FINTANK_BATCH_SIZE` | `5000` | persister: points per write |" in lines
    assert "| `FINTANK_TOPIC_TICKS` | `ticks` | topic name |" in lines


class Exec:
    """Stands in for os.execv: records the command line instead of replacing the process."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[str]]] = []

    def __call__(self, path: str, argv: list[str]) -> None:
        self.calls.append((path, list(argv)))


@pytest.fixture
def execv(monkeypatch: pytest.MonkeyPatch) -> Exec:
    fake = Exec()
    monkeypatch.setattr(os, "execv", fake)
    return fake


def test_worker_execs_faust_on_the_built_in_topology(execv: Exec) -> None:
    result = run("worker", FINTANK_WEB_PORT="16123")

    assert result.exit_code == 0, result.stderr
    assert execv.calls == [
        (
            sys.executable,
            [
                sys.executable,
                *("-m", "faust", "-A", "topologies.fintank", "worker", "-l", "info"),
                *("--web-port", "16123", "--web-bind", "127.0.0.1", "--web-host", "127.0.0.1"),
            ],
        )
    ]


@pytest.fixture
def topology_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A module in the current directory with a faust App ``app``, another ``other``, a
    Topology ``words`` and a broken sibling module."""
    name = f"my_topology_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(
        "import faust\n"
        "from fintank import Batch, Bolt, Out, Topology\n"
        "class Echo(Bolt):\n"
        "    inputs = ('words',)\n"
        "    def process(self, batch: Batch, now: float) -> Out:\n"
        "        return Out()\n"
        "words = Topology('words')\n"
        "words.stream('words')\n"
        "words.bolt(Echo)\n"
        "app = faust.App('t1')\nother = faust.App('t2')\nnumber = 3\n"
    )
    (tmp_path / f"{name}_topology.py").write_text(
        f"from {name} import words as topology\nfrom {name} import app\n"
    )
    (tmp_path / f"{name}_broken.py").write_text("raise RuntimeError('boom at import')\n")
    monkeypatch.chdir(tmp_path)
    yield name
    for mod in (name, f"{name}_broken", f"{name}_topology"):
        sys.modules.pop(mod, None)


def test_worker_runs_a_faust_app_from_module_or_module_attr(
    execv: Exec, topology_module: str
) -> None:
    run("worker", topology_module)
    run("worker", f"{topology_module}:other")

    apps = [argv[argv.index("-A") + 1] for _, argv in execv.calls]
    assert apps == [f"{topology_module}:app", f"{topology_module}:other"]


def test_worker_runs_a_topology_through_the_hosted_app(
    execv: Exec, topology_module: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FINTANK_TOPOLOGY", "")  # the worker sets them: undone after the test
    monkeypatch.setenv("FINTANK_TOPOLOGY_PATH", "")
    run("worker", f"{topology_module}:words")
    first = dict(os.environ)
    run("worker", f"{topology_module}_topology")  # MODULE alone: its `topology` first
    second = dict(os.environ)

    apps = [argv[argv.index("-A") + 1] for _, argv in execv.calls]
    assert apps == ["fintank.hosted:app", "fintank.hosted:app"]
    assert first["FINTANK_TOPOLOGY"] == f"{topology_module}:words"
    assert second["FINTANK_TOPOLOGY"] == f"{topology_module}_topology:topology"
    assert first["FINTANK_TOPOLOGY_PATH"] == str(tmp_path)


def test_worker_detach_needs_a_topology(execv: Exec, topology_module: str) -> None:
    line = assert_one_line_error(run("worker", f"{topology_module}:other", "--detach"))

    assert "--detach waits for a fintank topology's /health" in line
    assert execv.calls == []


@pytest.mark.parametrize(
    ("suffix", "message"),
    [
        (":number", "is a int, not a Topology or a faust App"),
        (":missing", "has no attribute 'missing'"),
        ("_broken", "failed: RuntimeError: boom at import"),
    ],
)
def test_worker_rejects_what_is_not_a_topology_or_a_faust_app(
    execv: Exec, topology_module: str, suffix: str, message: str
) -> None:
    line = assert_one_line_error(run("worker", topology_module + suffix))

    assert message in line
    assert execv.calls == []


# ------------------------------------------------------------------------ the bar


class Clock:
    """A fake monotonic clock that counts how often it is read."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.reads = 0

    def __call__(self) -> float:
        self.reads += 1
        return self.now


class Screen(io.StringIO):
    """What a terminal received: one frame per ``\\r``."""

    def frames(self) -> list[str]:
        return [f for f in self.getvalue().split("\r") if f.strip()]


def test_bar_redraws_on_time_not_per_record() -> None:
    clock, screen = Clock(), Screen()
    bar = Progress(10_000, "ticks", screen, interval=0.2, clock=clock, tty=True)
    draws_at: list[float] = []

    for done in range(1, 10_001):  # 10,000 records/s for one second
        clock.now += 0.0001
        before = bar.draws
        bar.update(done)
        if bar.draws > before:
            draws_at.append(clock.now)
    bar.close()

    gaps = [b - a for a, b in zip(draws_at, draws_at[1:-1], strict=False)]
    assert 5 <= len(draws_at) <= 8  # about every 0.2 s, plus the first and the last
    assert all(0.2 <= g < 0.3 for g in gaps), gaps
    assert clock.reads < 300  # not once per record
    assert screen.frames()[-1].startswith("ticks [" + "#" * 30 + "] 10000/10000")
    assert screen.getvalue().endswith("\n")


def test_bar_at_a_slow_rate_redraws_for_each_record() -> None:
    clock, screen = Clock(), Screen()
    bar = Progress(10, "orders", screen, interval=0.2, clock=clock, tty=True)

    for done in range(1, 11):  # 2 records/s
        clock.now += 0.5
        bar.update(done)

    assert bar.draws == 10
    assert [f.split("] ")[1].split()[0] for f in screen.frames()] == [
        f"{i}/10" for i in range(1, 11)
    ]


def test_bar_notices_a_rate_that_drops() -> None:
    clock = Clock()
    bar = Progress(100_000, "ticks", Screen(), interval=0.2, clock=clock, tty=True)
    done = 0
    for _ in range(50_000):  # 100,000/s for half a second
        clock.now += 0.00001
        done += 1
        bar.update(done)
    draws = bar.draws
    slow_started = clock.now
    while bar.draws == draws:  # then 100/s
        clock.now += 0.01
        done += 1
        bar.update(done)

    assert clock.now - slow_started < 3.0


def test_bar_elsewhere_writes_a_line_per_tenth() -> None:
    out = io.StringIO()
    bar = Progress(95, "ticks", out, tty=False)

    for done in range(1, 96):
        bar.update(done)
    bar.close()

    assert out.getvalue().splitlines() == [
        f"ticks: {n}/95" for n in (10, 19, 29, 38, 48, 57, 67, 76, 86, 95)
    ]


def test_bar_elsewhere_shows_where_an_interrupted_send_stopped() -> None:
    out = io.StringIO()
    bar = Progress(1000, "ticks", out, tty=False)

    for done in range(1, 251):
        bar.update(done)
    bar.close()

    assert out.getvalue().splitlines() == ["ticks: 100/1000", "ticks: 200/1000", "ticks: 250/1000"]


@pytest.mark.parametrize("tty", [True, False])
def test_bar_of_nothing_writes_nothing(tty: bool) -> None:
    out = io.StringIO()
    bar = Progress(0, "ticks", out, tty=tty)
    bar.update(0)
    bar.close()

    assert out.getvalue() == ""


def test_bar_of_few_records_writes_each() -> None:
    out = io.StringIO()
    bar = Progress(3, "orders", out, tty=False)
    for done in (1, 2, 3):
        bar.update(done)
    bar.close()

    assert out.getvalue().splitlines() == ["orders: 1/3", "orders: 2/3", "orders: 3/3"]


# --------------------------------------------------------- send_paced, no broker


class FakeProducer:
    """Just enough of AIOKafkaProducer: sends resolve at once, or fail with ``fail``."""

    def __init__(self, fail: BaseException | None = None, start: BaseException | None = None):
        self.fail, self.start_error = fail, start
        self.sent: list[tuple[str, bytes | None, bytes]] = []
        self.stopped = False

    async def start(self) -> None:
        if self.start_error is not None:
            raise self.start_error

    async def partitions_for(self, topic: str) -> set[int]:
        return {0}

    async def send(self, topic: str, value: bytes, key: bytes | None) -> asyncio.Future[None]:
        self.sent.append((topic, key, value))
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.fail is None:
            future.set_result(None)
        else:
            future.set_exception(self.fail)
        return future

    async def flush(self) -> None:
        await asyncio.sleep(0)

    async def stop(self) -> None:
        self.stopped = True


def use_producer(monkeypatch: pytest.MonkeyPatch, producer: FakeProducer) -> None:
    import fintank.producer

    monkeypatch.setattr(fintank.producer.kafka, "producer", lambda *a, **k: producer)


def test_send_paced_sends_every_record_and_stops(monkeypatch: pytest.MonkeyPatch) -> None:
    producer = FakeProducer()
    use_producer(monkeypatch, producer)
    records: list[tuple[bytes | None, bytes]] = [(b"k", b"%d" % i) for i in range(1000)]

    sent = asyncio.run(send_paced("h:1", "t", records, len(records), 0, "x"))

    assert sent == 1000 and len(producer.sent) == 1000 and producer.stopped


def test_send_paced_reports_records_kafka_did_not_take(monkeypatch: pytest.MonkeyPatch) -> None:
    from aiokafka.errors import KafkaTimeoutError

    producer = FakeProducer(fail=KafkaTimeoutError())
    use_producer(monkeypatch, producer)

    with pytest.raises(FintankError, match=r"^3 of 3 records were not delivered to 't'"):
        asyncio.run(send_paced("h:1", "t", [(None, b"a"), (None, b"b"), (None, b"c")], 3))
    assert producer.stopped


def test_send_paced_gives_up_on_a_broker_that_does_not_answer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class Silent(FakeProducer):
        async def start(self) -> None:
            await asyncio.sleep(60)

    producer = Silent()
    use_producer(monkeypatch, producer)

    with pytest.raises(FintankError, match=r"^kafka at h:1 did not answer within 0.2 s$"):
        asyncio.run(send_paced("h:1", "t", [(None, b"a")], 1, timeout=0.2))
    assert producer.stopped
