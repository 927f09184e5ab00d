"""Faust's table routing with two workers: every worker answers for every key.

A taxpayer's account lives only on the worker that owns its ``fintank-positions``
partition (the ``accounts`` table's changelog partition). ``GET /positions/{id}``
sent to the other worker must be forwarded to the owner. Until the table
changelogs used fintank's key codec, faust hashed the JSON-encoded key
(``b'"42"'``) and about half of these requests went to a worker without the
account (404).
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

from aiokafka.partitioner import murmur2

from tests.integration.conftest import Env
from tests.integration.test_rule_engine import (
    dry_run_orders,
    expected_components,
    expected_positions,
    seed_ticks,
    wait_for_fills,
)

TOLERANCE = 1e-5  # as test_rule_engine: sums of 6-decimal floats, added in another order


def partition_of(key: str, partitions: int) -> int:
    """The partition fintank's producer (aiokafka's default partitioner) gives ``key``."""
    return int(murmur2(key.encode()) & 0x7FFFFFFF) % partitions


def get(port: int, path: str) -> tuple[int, str, Any]:
    """Status, content type and body (JSON if it parses, else text) of a GET."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=30) as reply:
            status, ctype, raw = reply.status, reply.headers.get_content_type(), reply.read()
    except urllib.error.HTTPError as exc:
        status, ctype, raw = exc.code, exc.headers.get_content_type(), exc.read()
    except (urllib.error.URLError, OSError) as exc:
        return 0, "", repr(exc)
    try:
        return status, ctype, json.loads(raw)
    except ValueError:
        return status, ctype, raw.decode(errors="replace")


def position_problem(
    answer: tuple[int, str, Any], taxpayer: str, cash: float, shares: dict[str, float]
) -> str | None:
    """Why ``answer`` is not the taxpayer's expected position, or None if it is."""
    status, ctype, body = answer
    if status != 200 or ctype != "application/json" or not isinstance(body, dict):
        return "not a 200 JSON object"
    if str(body.get("taxpayer_id")) != taxpayer:
        return "wrong taxpayer_id"
    if not isinstance(body.get("cash"), float | int) or abs(body["cash"] - cash) >= TOLERANCE:
        return f"cash {body.get('cash')!r}, expected {cash!r}"
    held = body.get("positions")
    if not isinstance(held, dict):
        return "no positions object"
    for symbol in held.keys() | shares.keys():  # symbols at 0 may be left out
        if abs(held.get(symbol, 0.0) - shares.get(symbol, 0.0)) >= TOLERANCE:
            return f"{symbol}: {held.get(symbol)!r} shares, expected {shares.get(symbol)!r}"
    return None


def unknown_problem(answer: tuple[int, str, Any]) -> str | None:
    status, ctype, body = answer
    if status != 404 or ctype != "application/json":
        return "not a 404 JSON answer"
    if not isinstance(body, dict) or not isinstance(body.get("error"), str):
        return 'not {"error": "..."}'
    return None


def test_two_workers_answer_positions_for_every_taxpayer(
    env: Env, start_worker: Callable[..., Any]
) -> None:
    s = env.settings
    ports = (s.web_port, s.web_port + 1)
    first = start_worker("one")
    second = start_worker("two", FINTANK_WEB_PORT=str(ports[1]))

    symbols = f"P{env.suffix},Q{env.suffix},R{env.suffix}"
    seed_ticks(env, symbols, count=90)
    args = (
        "--count",
        "40",
        "--symbols",
        symbols,
        "--taxpayers",
        "8",
        "--limit-share",
        "0",
        "--seed",
        "31",
        "--rate",
        "0",
    )
    orders = dry_run_orders(env, *args)
    taxpayers = sorted({str(o["taxpayer_id"]) for o in orders}, key=int)
    assert taxpayers == [str(i) for i in range(1, 9)]
    # Taxpayers 1..8 hash to every positions partition, so each worker owns some of them.
    assert {partition_of(t, s.partitions) for t in taxpayers} == set(range(s.partitions))
    components = expected_components(orders)
    env.invoke("queue-orders", *args)

    _, fills = wait_for_fills(env, len(components))
    assert sorted(r.value["component_order_id"] for r in fills) == sorted(components)
    cash, shares = expected_positions(fills)
    assert set(cash) == set(taxpayers)

    # One unknown taxpayer per partition: each owner's 404, answered directly and routed.
    unknown: dict[int, str] = {}
    i = 0
    while len(unknown) < s.partitions:
        key = f"nobody-{env.suffix}-{i}"
        unknown.setdefault(partition_of(key, s.partitions), key)
        i += 1

    def failures() -> dict[str, Any]:
        bad: dict[str, Any] = {}
        for port in ports:
            for taxpayer in taxpayers:
                answer = get(port, f"/positions/{taxpayer}")
                why = position_problem(answer, taxpayer, cash[taxpayer], shares[taxpayer])
                if why:
                    bad[f"{port} /positions/{taxpayer}"] = (why, answer)
            for key in unknown.values():
                answer = get(port, f"/positions/{key}")
                why = unknown_problem(answer)
                if why:
                    bad[f"{port} /positions/{key}"] = (why, answer)
        return bad

    deadline = time.monotonic() + 90
    while bad := failures():
        if time.monotonic() > deadline:
            owners = {port: get(port, "/health")[2] for port in ports}
            assigned = {
                port: health.get("assigned") if isinstance(health, dict) else health
                for port, health in owners.items()
            }
            where = {t: partition_of(t, s.partitions) for t in taxpayers}
            raise AssertionError(
                f"failing answers: {bad}\nassigned: {assigned}\n"
                f"taxpayer -> {s.topics.positions} partition: {where}"
            )
        time.sleep(1)

    # Routing really was exercised: both workers own positions partitions with taxpayers.
    owned = {}
    for port in ports:
        health = get(port, "/health")[2]
        owned[port] = {
            int(tp.rsplit(":", 1)[1])
            for tp in health["assigned"]
            if tp.rsplit(":", 1)[0] == s.topics.positions
        }
    assert all(owned.values()), owned
    assert owned[ports[0]].isdisjoint(owned[ports[1]]), owned
    assert first.is_up() and second.is_up()
