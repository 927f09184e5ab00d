"""Analytics over the real Kafka and InfluxDB: candles, indicators, signals, alerts, HTTP.

The expected records are computed by the pure bolts from the very ticks sent
(the bolts themselves are held to TA-Lib and brute-force models in
tests/property); these tests check the wiring: every record arrives exactly
as the bolts say, keyed by symbol, persisted, served over HTTP, also after a
restart and across two workers.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import orjson

from fintank.analytics import candles as candle_bolt
from fintank.analytics.candles import INTERVALS
from fintank.analytics.indicators import indicator_for
from fintank.analytics.records import Candle
from fintank.peek import Record, read_topic
from fintank.producer import send_paced
from fintank.records import Tick
from fintank.sinks.query import influx_count
from tests.integration.conftest import Env


def shaped_ticks(symbol: str, start: float) -> list[Tick]:
    """42 s of ticks, four a second: flat-ish, then up ~12 %, then down ~20 %.

    The 1s closes give an RSI near 50, then above 70 (SELL), then below 30
    (BUY); the moves are hot (UP, then DOWN alerts).
    """
    ticks = []
    price = 100.0
    for i in range(42 * 4):
        second = i // 4
        if second < 18:
            price += 0.2 if second % 2 else -0.2
        elif second < 26:
            price *= 1.0035
        else:
            price *= 0.9965
        ticks.append(
            Tick(symbol, "NYSE", round(price - 0.01, 4), round(price + 0.01, 4), start + i / 4)
        )
    return ticks


def expected(ticks: list[Tick]) -> dict[str, list[Candle]]:
    """Every candle of the ticks, per interval: the final ones the worker emits when the clock passes."""
    out = {}
    for name, seconds in INTERVALS.items():
        state, closed, late = candle_bolt.on_ticks(None, ticks, seconds, name)
        assert state is not None and late == 0
        still_open = candle_bolt.open_candle(state)
        assert still_open is not None
        out[name] = [*closed, still_open]
    return out


def send_ticks(env: Env, ticks: list[Tick]) -> None:
    records = [(t.symbol.encode(), orjson.dumps(t)) for t in ticks]
    asyncio.run(
        send_paced(env.settings.bootstrap, env.settings.topics.ticks, records, len(records))
    )


def read(env: Env, topic: str) -> list[Record]:
    return asyncio.run(read_topic(env.settings.bootstrap, topic))


def wait_for(env: Env, topic: str, want: int, timeout: float = 90) -> list[Record]:
    deadline = time.monotonic() + timeout
    while len(records := read(env, topic)) < want:
        assert time.monotonic() < deadline, f"{topic}: {len(records)} of {want} records"
        time.sleep(1)
    return records


def get(port: int, path: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=30) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def as_dicts(candles: list[Candle]) -> list[dict[str, Any]]:
    return [orjson.loads(orjson.dumps(c)) for c in candles]


def test_ticks_become_candles_indicators_signals_and_alerts(
    env: Env, start_worker: Callable[..., Any]
) -> None:
    worker = start_worker()
    start = float(int(time.time()) // 60 * 60 - 120)  # two minutes ago: the clock closes the rest
    hot, calm = f"HOT{env.suffix}", f"CALM{env.suffix}"
    ticks = {
        hot: shaped_ticks(hot, start),
        calm: [Tick(calm, "NYSE", 50.0, 50.02, start + i) for i in range(5)],
    }
    send_ticks(env, [*ticks[hot], *ticks[calm]])
    want = {s: expected(ts) for s, ts in ticks.items()}
    n_candles = sum(len(c) for per in want.values() for c in per.values())

    topics = env.settings.topics
    candles = wait_for(env, topics.candles, n_candles)
    time.sleep(3)  # nothing more may arrive: each candle exactly once
    candles = read(env, topics.candles)
    for symbol, per in want.items():
        for name, wanted in per.items():
            got = [r.value for r in candles if r.key == symbol and r.value["interval"] == name]
            assert got == as_dicts(wanted), (symbol, name)

    indicators = read(env, topics.indicators)
    assert len(indicators) == n_candles
    for symbol, per in want.items():
        for name, wanted in per.items():
            state, expect = None, []
            for c in wanted:
                state, ind = indicator_for(c, state)
                expect.append(orjson.loads(orjson.dumps(ind)))
            got = [r.value for r in indicators if r.key == symbol and r.value["interval"] == name]
            assert got == expect, (symbol, name)

    signals = [r.value for r in read(env, topics.signals)]
    assert {(s["symbol"], s["interval"], s["signal"]) for s in signals} >= {
        (hot, "1s", "SELL"),
        (hot, "1s", "BUY"),
    }
    alerts = [r.value for r in read(env, topics.alerts)]
    assert {(a["symbol"], a["direction"]) for a in alerts} == {(hot, "UP"), (hot, "DOWN")}
    assert len(alerts) == 2  # cooldown: one per direction within the 300 s window

    s = env.settings
    assert influx_count(s.influx_url, s.influx_database, "candles", "close") == n_candles

    # HTTP: the same candles, the quotes, errors as JSON.
    port = s.web_port
    status, body = get(port, f"/candles/{hot}?interval=1s&minutes=5")
    assert status == 200 and body == as_dicts(want[hot]["1s"])
    status, body = get(port, f"/candles/{hot}?interval=1s&minutes=1")
    newest_end = want[hot]["1s"][-1].start + 1
    assert body == as_dicts([c for c in want[hot]["1s"] if c.start >= newest_end - 60])
    assert get(port, f"/candles/{hot}")[1] == as_dicts(want[hot]["1m"])
    status, body = get(port, "/instruments")
    assert status == 200
    assert {q["symbol"]: (q["bid"], q["ask"], q["timestamp"]) for q in body} == {
        sym: (ts[-1].bid, ts[-1].ask, ts[-1].timestamp) for sym, ts in ticks.items()
    }
    assert get(port, "/candles/NOPE")[0] == 404
    status, body = get(port, "/candles/NOPE?minutes=0")
    assert status == 400 and "minutes" in body["error"]
    assert get(port, f"/candles/{hot}?interval=5m")[0] == 400
    status, recent = get(port, "/recent")
    assert status == 200 and len(recent["alerts"]) == 2 and recent["signals"]

    # A restarted worker answers from its changelogs and emits nothing again.
    worker.stop()
    worker = start_worker()
    deadline = time.monotonic() + 60
    while get(port, f"/candles/{hot}?interval=1s&minutes=5") != (200, as_dicts(want[hot]["1s"])):
        assert time.monotonic() < deadline, "history not recovered"
        time.sleep(1)
    time.sleep(3)
    assert len(read(env, topics.candles)) == n_candles
    assert len(read(env, topics.alerts)) == 2


def test_two_workers_answer_for_every_symbol(env: Env, start_worker: Callable[..., Any]) -> None:
    start = float(int(time.time()) - 30)
    symbols = [f"S{i}{env.suffix}" for i in range(8)]
    ticks = [
        Tick(sym, "NYSE", 10.0 + i, 10.02 + i, start + k)
        for k in range(3)
        for i, sym in enumerate(symbols)
    ]
    first = start_worker("one")
    second_port = env.settings.web_port + 1
    start_worker("two", FINTANK_WEB_PORT=str(second_port))
    send_ticks(env, ticks)
    mids = {sym: (10.0 + i + 10.02 + i) / 2 for i, sym in enumerate(symbols)}

    def every_symbol_answers(port: int) -> bool:
        status, body = get(port, "/instruments")
        if status != 200 or {q["symbol"] for q in body} != set(symbols):
            return False
        for sym in symbols:
            status, body = get(port, f"/candles/{sym}?interval=1s&minutes=1")
            if status != 200 or len(body) < 3 or {c["open"] for c in body} != {mids[sym]}:
                return False
        return True

    for port in (env.settings.web_port, second_port):
        deadline = time.monotonic() + 90
        while not every_symbol_answers(port):
            if time.monotonic() > deadline:
                diag = {
                    p: get(p, "/health")[1]["assigned"]
                    for p in (env.settings.web_port, second_port)
                }
                for sym in symbols:
                    diag[sym] = [
                        get(p, f"/candles/{sym}?interval=1s&minutes=1")
                        for p in (env.settings.web_port, second_port)
                    ]
                raise AssertionError(diag)
            time.sleep(1)
    assert first.is_up()
