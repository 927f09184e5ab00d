"""`fintank replay` without a broker: wrong arguments are one line and exit 2; dry runs print
the converted ticks, report bad lines by number (bounded) and end with a summary; the replay
loop sends ticks keyed by symbol and dead letters in the contract's shape, paced by a clock.
"""

from __future__ import annotations

import asyncio
import gzip
import io
import os
import socket
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner, Result

import fintank.cli as cli
from fintank.config import PREFIX
from fintank.replay import samples
from fintank.replay.formats import Ticks, convert, encode
from fintank.replay.run import SHOWN_ERRORS, Summary, read_lines, replay

BOOK = b'{"u":400900217,"s":"BNBUSDT","b":"25.35190000","B":"31.21000000","a":"25.36520000","A":"40.66000000"}'  # fmt: skip


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No FINTANK_* setting of the person running the tests leaks in."""
    for name in list(os.environ):
        if name.startswith(PREFIX):
            monkeypatch.delenv(name)


def run(*args: str, **env: str) -> Result:
    return CliRunner().invoke(cli.main, list(args), env=env)


def sample(name: str) -> str:
    return str(samples() / name)


def assert_one_line_error(result: Result) -> str:
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2, (result.exit_code, result.stderr, result.stdout)
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("fintank: ")
    assert "Traceback" not in result.stderr and result.stdout == ""
    return lines[0]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ----------------------------------------------------------------- wrong arguments

OKX = sample("okx.jsonl")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["replay", "no-such-file.jsonl", "--format", "okx"],
            "File 'no-such-file.jsonl' does not exist",
        ),  # fmt: skip
        (["replay", ".", "--format", "okx"], "is a directory"),
        (
            ["replay", OKX, "--format", "kraken"],
            "'kraken' is not one of 'okx', 'binance', 'coinbase', 'fintank'",
        ),  # fmt: skip
        (["replay", OKX], "missing option '--format'"),
        (["replay", "--format", "okx"], "missing argument 'FILE'"),
        (
            ["replay", OKX, "--format", "okx", "--speed", "fast"],
            "invalid value for '--speed': 'fast' is not a valid float",
        ),  # fmt: skip
        (
            ["replay", OKX, "--format", "okx", "--speed", "-1"],
            "--speed must be a finite number >= 0 (0 = as fast as possible)",
        ),  # fmt: skip
        (
            ["replay", OKX, "--format", "okx", "--speed", "nan"],
            "--speed must be a finite number >= 0",
        ),  # fmt: skip
        (
            ["replay", OKX, "--format", "okx", "--speed", "inf"],
            "--speed must be a finite number >= 0",
        ),  # fmt: skip
        (
            ["replay", OKX, "--format", "okx", "--symbol-map", "BTC-USDT=,X=Y"],
            "--symbol-map: 'BTC-USDT=' is not FROM=TO",
        ),  # fmt: skip
        (["replay", OKX, "--format", "okx", "--symbol-map", "A=B,A=C"], "'A' is mapped twice"),
        (
            ["replay", OKX, "--format", "okx", "--symbol-map", "no-such-map.txt"],
            "--symbol-map: no such file 'no-such-map.txt'",
        ),  # fmt: skip
        (["replay", OKX, "--format", "okx", "--symbol-map", "."], "--symbol-map: cannot read '.'"),
        (["replay", OKX, "--format", "okx", "--bogus"], "no such option: --bogus"),
    ],
)
def test_a_wrong_argument_is_one_line_and_exit_2(args: list[str], message: str) -> None:
    line = assert_one_line_error(run(*args))
    assert message in line, line


def test_a_symbol_map_file_without_pairs_is_one_line(tmp_path: Path) -> None:
    empty = tmp_path / "map.txt"
    empty.write_text("# nothing yet\n")
    line = assert_one_line_error(run("replay", OKX, "--format", "okx", "--symbol-map", str(empty)))
    assert f"--symbol-map {empty}: no FROM=TO pair" in line


def test_a_corrupt_gzip_file_is_one_line(tmp_path: Path) -> None:
    broken = tmp_path / "cut.jsonl.gz"
    broken.write_bytes(gzip.compress(b'{"type":"heartbeat"}\n' * 1000)[:60])
    line = assert_one_line_error(run("replay", str(broken), "--format", "coinbase", "--dry-run"))
    assert f"cannot read {broken}" in line


def test_an_unreachable_broker_is_one_line() -> None:
    result = run(
        "replay", OKX, "--format", "okx", FINTANK_BROKER=f"kafka://127.0.0.1:{closed_port()}"
    )
    assert "cannot reach kafka at 127.0.0.1:" in assert_one_line_error(result)


def test_a_bad_setting_is_one_line() -> None:
    result = run("replay", OKX, "--format", "okx", FINTANK_PARTITIONS="many")
    assert "FINTANK_PARTITIONS" in assert_one_line_error(result)


def test_help_says_where_binance_times_come_from() -> None:
    result = run("replay", "--help")
    assert result.exit_code == 0
    text = " ".join(result.stdout.split())
    for words in ("recv_ts", "replay clock", "T or E", "okx", "binance", "coinbase", "fintank"):
        assert words in text, words
    assert "source_topic `replay:<file name>`" in text


# ------------------------------------------------------------------------ dry runs


@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        ("okx.jsonl", "okx"),
        ("binance.jsonl", "binance"),
        ("coinbase.jsonl.gz", "coinbase"),
        ("fintank.jsonl", "fintank"),
    ],  # fmt: skip
)
def test_a_dry_run_prints_the_converted_ticks_and_a_summary(name: str, fmt: str) -> None:
    result = run("replay", sample(name), "--format", fmt, "--speed", "0", "--dry-run")

    assert result.exit_code == 0, result.stderr
    want = [
        encode(t)
        for _, raw in read_lines(Path(sample(name)))
        for r in [convert(fmt, raw, 0.0)]
        if type(r) is Ticks
        for t in r.ticks
    ]
    assert [line.encode() for line in result.stdout.splitlines()] == want
    assert f"replay of {name} ({fmt}) (dry run: nothing sent)" in result.stderr
    assert f"ticks           {len(want)}" in result.stderr
    assert "errors          0" in result.stderr
    assert "recorded span   " in result.stderr and "2024-03-14T12:00:0" in result.stderr
    assert "replay clock" not in result.stderr


def test_a_dry_run_reports_bad_lines_by_number() -> None:
    result = run("replay", sample("okx-bad.jsonl"), "--format", "okx", "--speed", "0", "--dry-run")

    assert result.exit_code == 0, result.stderr
    reported = [line for line in result.stderr.splitlines() if line.startswith("replay: line ")]
    assert reported == [
        "replay: line 3: bidPx must be a decimal number, got a string ''",
        "replay: line 4: bid 3561.4 is above ask 3561.28",
        "replay: line 5: not valid JSON: unexpected end of data: line 1 column 121 (char 120)",
        "replay: line 6: ts must be epoch milliseconds, got nothing (missing or null)",
    ]
    assert len(result.stdout.splitlines()) == 2
    assert "skipped         2 (event subscribe: 1, keepalive: 1)" in result.stderr
    assert "errors          4 (0 dead-lettered)" in result.stderr


def test_bad_lines_past_the_first_few_are_only_counted(tmp_path: Path) -> None:
    path = tmp_path / "junk.jsonl"
    path.write_bytes(b"not json\n" * (SHOWN_ERRORS + 7))
    result = run("replay", str(path), "--format", "binance", "--dry-run")

    assert result.exit_code == 0, result.stderr
    reported = [line for line in result.stderr.splitlines() if line.startswith("replay: line ")]
    assert len(reported) == SHOWN_ERRORS
    assert "replay: 7 more bad lines not shown" in result.stderr
    assert f"errors          {SHOWN_ERRORS + 7} " in result.stderr


def test_binance_spot_without_a_recorded_time_is_stamped_with_the_replay_clock(
    tmp_path: Path,
) -> None:
    path = tmp_path / "spot.jsonl"
    path.write_bytes(BOOK + b"\n" + BOOK + b"\n")
    before = time.time()
    result = run("replay", str(path), "--format", "binance", "--dry-run")
    after = time.time()

    assert result.exit_code == 0, result.stderr
    stamps = [orjson.loads(line)["timestamp"] for line in result.stdout.splitlines()]
    assert len(stamps) == 2 and all(before <= s <= after for s in stamps)
    assert "recorded span   none (no line had a recorded time)" in result.stderr
    assert "replay clock    2 ticks had no recorded time" in result.stderr


def test_the_symbol_map_renames_in_a_dry_run() -> None:
    result = run(
        "replay",
        sample("okx.jsonl"),
        "--format",
        "okx",
        "--speed",
        "0",
        "--dry-run",
        "--symbol-map",
        "BTC-USDT=BTCUSDT,ETH-USDT=ETHUSDT",
    )
    symbols = {orjson.loads(line)["symbol"] for line in result.stdout.splitlines()}
    assert symbols == {"BTCUSDT", "ETHUSDT", "SOL-USDT"}


def test_a_paced_dry_run_takes_at_least_the_scaled_recorded_span() -> None:
    """A lower bound only (sleeping cannot end early): the pacing is really applied."""
    started = time.monotonic()
    result = run("replay", sample("fintank.jsonl"), "--format", "fintank", "--speed", "25", "--dry-run")  # fmt: skip
    took = time.monotonic() - started

    assert result.exit_code == 0, result.stderr
    span = 5.75  # the sample's first and last timestamps are 5.75 s apart
    assert "recorded span   5.750 s" in result.stderr
    assert took >= span / 25


# -------------------------------------------------------------------- the replay loop


class ListSink:
    """Collects what the replay sends (the loop's test; Kafka's is the integration test)."""

    def __init__(self) -> None:
        self.ticks: list[tuple[bytes, bytes]] = []
        self.deadletters: list[tuple[bytes, bytes]] = []

    async def tick(self, key: bytes, value: bytes) -> None:
        self.ticks.append((key, value))

    async def deadletter(self, key: bytes, value: bytes) -> bool:
        self.deadletters.append((key, value))
        return True


class Clocks:
    """A monotonic clock moved by sleeps, and a wall clock; both read by the loop."""

    def __init__(self) -> None:
        self.mono = 50.0
        self.wall = 1_800_000_000.0
        self.sent_at: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.mono += seconds
        self.wall += seconds


def run_loop(lines: list[bytes], fmt: str, speed: float) -> tuple[Summary, ListSink, Clocks, str]:
    sink, clocks, err = ListSink(), Clocks(), io.StringIO()
    summary = asyncio.run(
        replay(
            iter(enumerate(lines, 1)),
            fmt,
            sink,
            source="replay:test.jsonl",
            speed=speed,
            symbols={},
            total=len(lines),
            err=err,
            summary=Summary("test.jsonl", fmt, speed),
            clock=lambda: clocks.mono,
            wall=lambda: clocks.wall,
            sleep=clocks.sleep,
        )
    )
    return summary, sink, clocks, err.getvalue()


def okx_push(inst: str, ts_ms: int, bid: str = "10.5", ask: str = "10.6") -> bytes:
    item: dict[str, Any] = {"instId": inst, "bidPx": bid, "askPx": ask, "ts": str(ts_ms)}
    return orjson.dumps({"arg": {"channel": "tickers", "instId": inst}, "data": [item]})


def test_the_loop_sends_ticks_keyed_by_symbol_and_bad_lines_as_dead_letters() -> None:
    bad = b'{"arg":{"channel":"tickers"},"data":[{"instId":"A","bidPx":"1"'
    lines = [
        b'{"event":"subscribe","arg":{"channel":"tickers","instId":"A"}}',
        okx_push("A", 1_000),
        bad,
        okx_push("B", 1_500, bid="3", ask="2"),
        okx_push("B", 3_000),
    ]
    summary, sink, clocks, err = run_loop(lines, "okx", speed=2)

    assert [(k, orjson.loads(v)["timestamp"]) for k, v in sink.ticks] == [(b"A", 1.0), (b"B", 3.0)]
    letters = [(k, orjson.loads(v)) for k, v in sink.deadletters]
    assert letters == [
        (
            b"replay:test.jsonl",
            {
                "source_topic": "replay:test.jsonl",
                "reason": "line 3: not valid JSON: unexpected end of data: line 1 column 63 (char 62)",
                "payload": bad.decode(),
                "timestamp": 1_800_000_000.0,
            },
        ),
        (
            b"replay:test.jsonl",
            {
                "source_topic": "replay:test.jsonl",
                "reason": "line 4: bid 3.0 is above ask 2.0",
                "payload": lines[3].decode(),
                "timestamp": 1_800_000_000.0,
            },
        ),
    ]
    assert clocks.mono == 51.0  # 2 s recorded at speed 2
    assert (summary.lines_read, summary.ticks, summary.errors, summary.deadlettered) == (5, 2, 2, 2)
    assert summary.skipped == {"event subscribe": 1}
    assert (summary.first, summary.last, summary.wall) == (1.0, 3.0, 1.0)
    assert "replay: line 3: not valid JSON" in err and "replay: line 4: bid 3.0 is above" in err


def test_a_dead_letter_of_bytes_that_are_not_utf8_carries_them_in_base64() -> None:
    _, sink, _, _ = run_loop([b"\xff\xfe{"], "coinbase", speed=0)
    [(_, value)] = sink.deadletters
    assert orjson.loads(value)["payload"] == "b64://57"  # base64 of ff fe 7b


def test_the_summary_names_every_count() -> None:
    summary = Summary("okx.jsonl", "okx", 2.0, lines_read=33, ticks=30, errors=1, deadlettered=1)
    summary.skipped.update({"event subscribe": 3})
    summary.first, summary.last, summary.wall = 1710417600.107, 1710417605.925, 2.912
    assert summary.lines("ticks", "deadletters") == [
        "replay of okx.jsonl (okx) to 'ticks'",
        "  lines read      33",
        "  ticks sent      30",
        "  skipped         3 (event subscribe: 3)",
        "  errors          1 (1 dead-lettered to 'deadletters')",
        "  recorded span   5.818 s (2024-03-14T12:00:00.107000Z to 2024-03-14T12:00:05.925000Z)",
        "  wall time       2.912 s (speed 2)",
    ]


def test_shift_to_now_stamps_ticks_with_the_wall_clock_of_their_schedule() -> None:
    sink, clocks, err = ListSink(), Clocks(), io.StringIO()
    lines = [okx_push("A", 1_000), okx_push("B", 2_000), BOOK, okx_push("A", 3_000, bid="0")]
    summary = asyncio.run(
        replay(
            iter(enumerate(lines, 1)),
            "okx",
            sink,
            source="replay:test.jsonl",
            speed=2,
            symbols={},
            total=len(lines),
            err=err,
            summary=Summary("test.jsonl", "okx", 2),
            shift_to_now=True,
            clock=lambda: clocks.mono,
            wall=lambda: clocks.wall,
            sleep=clocks.sleep,
        )
    )

    start = 1_800_000_000.0
    assert [orjson.loads(v)["timestamp"] for _, v in sink.ticks] == [start, start + 0.5]
    assert summary.first == 1.0 and summary.last == 2.0  # the recorded span stays recorded
    assert summary.errors == 2  # the binance line is not okx; bid 0 is bad either way
    assert "  shifted to now  recorded 1970-01-01T00:00:01.000000Z carried as 2027-01-15T08:00:00.000000Z" in summary.lines("t", "d")  # fmt: skip
