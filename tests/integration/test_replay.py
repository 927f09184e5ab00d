"""`fintank replay` over the real test stack, run as a person runs it (``python -m fintank.cli``).

Each shipped sample lands on the test's ``ticks`` topic keyed by symbol with
the converted values; the bad lines of the bad samples land on
``deadletters`` once each, with their reasons and line numbers; and a worker
of the built-in topology turns replayed ticks into candles, both for a
replay of the recorded times at full speed and for a paced replay shifted
to now.
"""

from __future__ import annotations

import asyncio
import base64
import os
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import orjson
import pytest

from fintank.analytics import candles as candle_bolt
from fintank.analytics.candles import INTERVALS
from fintank.peek import Record, read_topic
from fintank.records import Tick
from fintank.replay import samples
from fintank.replay.formats import Ticks, convert, encode
from fintank.replay.run import read_lines
from fintank.sinks.query import influx_count
from fintank.ticks import parse_tick
from tests.integration.conftest import Env

SAMPLES = {
    "okx.jsonl": "okx",
    "binance.jsonl": "binance",
    "coinbase.jsonl.gz": "coinbase",
    "fintank.jsonl": "fintank",
}
# The first tick of each sample, read off the file by hand (not computed by the converter).
FIRST: dict[str, dict[str, Any]] = {
    "okx.jsonl": {
        "symbol": "BTC-USDT",
        "exchange": "OKX",
        "bid": 67012.7,
        "ask": 67012.8,
        "timestamp": 1710417600.107,
        "bid_size": 2.702058,
        "ask_size": 4.856894,
    },
    "binance.jsonl": {
        "symbol": "BTCUSDT",
        "exchange": "BINANCE",
        "bid": 67010.1,
        "ask": 67010.11,
        "timestamp": 1710417600.08,
        "bid_size": 8.67494443,
        "ask_size": 3.29899431,
    },
    "coinbase.jsonl.gz": {
        "symbol": "BTC-USD",
        "exchange": "COINBASE",
        "bid": 67005.23,
        "ask": 67005.24,
        "timestamp": 1710417600.053744,
        "bid_size": 1.3083453,
        "ask_size": 1.02095643,
    },
    "fintank.jsonl": {
        "symbol": "VTI",
        "exchange": "NYSE",
        "bid": 262.4,
        "ask": 262.42,
        "timestamp": 1710417600.125,
    },
}
# The bad lines of each bad sample: line number -> how its reason starts.
BAD: dict[str, tuple[str, dict[int, str]]] = {
    "okx-bad.jsonl": (
        "okx",
        {
            3: "bidPx must be a decimal number, got a string ''",
            4: "bid 3561.4 is above ask 3561.28",
            5: "not valid JSON: unexpected end of data",
            6: "ts must be epoch milliseconds, got nothing (missing or null)",
        },
    ),
    "binance-bad.jsonl": (
        "binance",
        {
            3: "bid must be > 0, got 0.0",
            4: "a (best ask price) must be a decimal number, got nothing (missing or null)",
            5: "recv_ts must be epoch milliseconds, got a string 'yesterday'",
            8: "not valid JSON: unexpected end of data",
        },
    ),
    "coinbase-bad.jsonl": (
        "coinbase",
        {
            3: "time must be an ISO-8601 time like 2022-10-19T23:28:22.061769Z",
            4: "best_ask must be a decimal number, got a string ''",
            5: "not valid JSON: str is not valid UTF-8",
            8: "not a Coinbase Exchange message: no 'type'",
        },
    ),
}


def sample(name: str) -> Path:
    return Path(str(samples() / name))


def fintank(cwd: Path, env: Mapping[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("FINTANK_")}
    return subprocess.run(
        [sys.executable, "-m", "fintank.cli", *args],
        cwd=cwd,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def replay(env: Env, tmp_path: Path, name: str, fmt: str, *options: str) -> str:
    """Replay a sample into the test's topics; its stdout (the summary)."""
    done = fintank(tmp_path, env.vars, "replay", str(sample(name)), "--format", fmt, *options)
    assert done.returncode == 0, done.stderr
    return done.stdout


def read(env: Env, topic: str) -> list[Record]:
    return asyncio.run(read_topic(env.settings.bootstrap, topic))


def converted(name: str, fmt: str) -> list[Tick]:
    return [
        tick
        for _, raw in read_lines(sample(name))
        for result in [convert(fmt, raw, 0.0)]
        if type(result) is Ticks
        for tick in result.ticks
    ]


def by_symbol(records: list[Record]) -> dict[str, list[Any]]:
    """Each key's values in offset order (one symbol, one partition)."""
    out: dict[str, list[Any]] = {}
    for r in sorted(records, key=lambda r: (r.partition, r.offset)):
        assert r.key is not None
        out.setdefault(r.key, []).append(r.value)
    return out


@pytest.mark.parametrize(
    ("name", "speed"),
    [
        ("okx.jsonl", "0"),
        ("binance.jsonl", "10"),
        ("coinbase.jsonl.gz", "0"),
        ("fintank.jsonl", "0"),
    ],  # fmt: skip
)
def test_each_sample_lands_on_ticks_keyed_by_symbol(
    env: Env, tmp_path: Path, name: str, speed: str
) -> None:
    fmt = SAMPLES[name]
    want = converted(name, fmt)
    topics = env.settings.topics

    summary = replay(env, tmp_path, name, fmt, "--speed", speed)

    assert f"replay of {name} ({fmt}) to {topics.ticks!r}" in summary
    assert f"  ticks sent      {len(want)}\n" in summary
    assert f"  errors          0 (0 dead-lettered to {topics.deadletters!r})" in summary
    records = read(env, topics.ticks)
    assert len(records) == len(want)
    assert all(r.key == r.value["symbol"] for r in records)
    got = by_symbol(records)
    expected: dict[str, list[Any]] = {}
    for tick in want:
        expected.setdefault(tick.symbol, []).append(orjson.loads(encode(tick)))
    assert got == expected
    assert got[FIRST[name]["symbol"]][0] == FIRST[name]
    assert all(isinstance(parse_tick(orjson.dumps(r.value)), Tick) for r in records)
    assert read(env, topics.deadletters) == []


def test_bad_lines_land_on_deadletters_once_with_reason_and_line_number(
    env: Env, tmp_path: Path
) -> None:
    before = time.time()
    for name, (fmt, bad) in BAD.items():
        done = fintank(
            tmp_path, env.vars, "replay", str(sample(name)), "--format", fmt, "--speed", "0"
        )
        assert done.returncode == 0, done.stderr
        reported = [line for line in done.stderr.splitlines() if line.startswith("replay: line")]
        assert [line.split(":")[1] for line in reported] == [f" line {n}" for n in bad]
        assert "  errors          4 (4 dead-lettered to " in done.stdout
    after = time.time()

    letters = read(env, env.settings.topics.deadletters)
    assert len(letters) == sum(len(bad) for _, bad in BAD.values())  # each bad line once
    for name, (_, bad) in BAD.items():
        source = f"replay:{name}"
        mine = [r for r in letters if r.key == source]
        raw = dict(read_lines(sample(name)))
        assert [letter.value["reason"].split(":")[0] for letter in mine] == [
            f"line {n}" for n in bad
        ]
        for letter, (n, reason) in zip(mine, bad.items(), strict=True):
            value = letter.value
            assert value["source_topic"] == source
            assert value["reason"].startswith(f"line {n}: {reason}")
            try:
                assert value["payload"] == raw[n].decode("utf-8")
            except UnicodeDecodeError:
                assert value["payload"] == "b64:" + base64.b64encode(raw[n]).decode()
            assert before <= value["timestamp"] <= after
            assert set(value) == {"source_topic", "reason", "payload", "timestamp"}
    ticks = read(env, env.settings.topics.ticks)
    assert len(ticks) == 6  # the two good lines of each bad sample: the replay went on


def expected_candles(ticks: list[Tick]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """Every candle of each symbol's ticks per interval: the ones later ticks close, then the
    last one, which the worker's wall clock closes."""
    out = {}
    symbols = sorted({t.symbol for t in ticks})
    for symbol in symbols:
        mine = [t for t in ticks if t.symbol == symbol]
        for name, seconds in INTERVALS.items():
            state, closed, late = candle_bolt.on_ticks(None, mine, seconds, name)
            assert late == 0
            last = candle_bolt.open_candle(state)
            assert last is not None
            out[symbol, name] = [orjson.loads(orjson.dumps(c)) for c in [*closed, last]]
    return out


def assert_candles(env: Env, ticks: list[Tick]) -> None:
    """The worker's candles are exactly those of ``ticks``, once each, on Kafka and in InfluxDB."""
    want = expected_candles(ticks)
    n = sum(len(c) for c in want.values())
    topic = env.settings.topics.candles
    deadline = time.monotonic() + 90
    while len(records := read(env, topic)) < n:
        assert time.monotonic() < deadline, f"{len(records)} of {n} candles"
        time.sleep(1)
    time.sleep(3)  # nothing more may arrive
    records = read(env, topic)
    got: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in sorted(records, key=lambda r: (r.partition, r.offset)):
        got.setdefault((r.value["symbol"], r.value["interval"]), []).append(r.value)
    assert got == want
    s = env.settings
    deadline = time.monotonic() + 30
    while influx_count(s.influx_url, s.influx_database, "candles", "close") < n:
        assert time.monotonic() < deadline, "candles not in InfluxDB"
        time.sleep(1)
    assert influx_count(s.influx_url, s.influx_database, "candles", "close") == n


def ticks_on(env: Env) -> list[Tick]:
    records = sorted(read(env, env.settings.topics.ticks), key=lambda r: (r.partition, r.offset))
    ticks = [parse_tick(orjson.dumps(r.value)) for r in records]
    assert all(isinstance(t, Tick) for t in ticks)
    return ticks  # type: ignore[return-value]


def test_replayed_recordings_become_candles(
    env: Env, tmp_path: Path, start_worker: Callable[..., Any]
) -> None:
    """Recorded times: later ticks close each 1 s window by event time, and the wall clock
    closes each symbol's last one (its end is long past).

    The worker starts after the replay, so its first fetch already knows where the ticks end:
    it is not caught up, and so does not close windows by the clock, before it has read them
    all. (A worker already running could close a 2024 window by the clock between two fetches
    of one burst, and a tick after that would be late; see the paced test below.)
    """
    for name, fmt in SAMPLES.items():
        replay(env, tmp_path, name, fmt, "--speed", "0")
    start_worker()

    ticks = ticks_on(env)
    assert len(ticks) == sum(len(converted(name, fmt)) for name, fmt in SAMPLES.items())
    assert len({t.symbol for t in ticks}) == 12
    assert_candles(env, ticks)


def test_a_paced_replay_shifted_to_now_becomes_candles_as_a_live_feed(
    env: Env, tmp_path: Path, start_worker: Callable[..., Any]
) -> None:
    """At a pace, each tick carries the wall-clock time it is sent at, so no window closes by the
    clock before its last tick (with the recorded 2024 times every one would)."""
    start_worker()
    before = time.time()
    summary = replay(
        env, tmp_path, "coinbase.jsonl.gz", "coinbase", "--speed", "2", "--shift-to-now"
    )
    after = time.time()

    assert "  shifted to now  recorded 2024-03-14T12:00:00.053744Z carried as " in summary
    ticks = ticks_on(env)
    recorded = converted("coinbase.jsonl.gz", "coinbase")
    assert len(ticks) == len(recorded) == 36
    assert all(before <= t.timestamp <= after for t in ticks)
    first = min(t.timestamp for t in ticks)
    for t, r in zip(
        sorted(ticks, key=lambda t: t.timestamp),
        sorted(recorded, key=lambda t: t.timestamp),
        strict=True,
    ):
        assert (t.symbol, t.bid, t.ask) == (r.symbol, r.bid, r.ask)
        assert t.timestamp - first == pytest.approx((r.timestamp - 1710417600.053744) / 2)
    assert_candles(env, ticks)
