"""Bad input against a real worker of the built-in topology, on the real Kafka and InfluxDB.

Garbage produced into the internal topics (``fintank-components``,
``fintank-positions``) and into ``fills`` (read back by FillsByTaxpayer) is
dead-lettered, once each, with the reason and its partition and offset; the
worker stays up, commits past it, and a valid order placed afterwards still
executes, fills and moves the taxpayer's position. Its web server answers
every error as JSON and does not serve faust's own views.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from fintank.peek import Record, read_topic
from fintank.stack.worker import Worker
from tests.integration.conftest import Env
from tests.integration.load import free_port
from tests.integration.test_routing import get


async def produce(
    bootstrap: str, records: list[tuple[str, str | None, bytes | None]]
) -> list[tuple[str, int, int]]:
    """Send (topic, key, value) records in order; where each landed: (topic, partition, offset)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        placed = []
        for topic, key, value in records:
            meta = await producer.send_and_wait(
                topic, value, key=None if key is None else key.encode()
            )
            placed.append((topic, meta.partition, meta.offset))
        return placed
    finally:
        await producer.stop()


def read(env: Env, topic: str) -> list[Record]:
    return asyncio.run(read_topic(env.settings.bootstrap, topic, timeout=30))


def wait_for(check: Callable[[], Any], what: str, timeout: float = 90) -> Any:
    deadline = time.monotonic() + timeout
    while not (result := check()):
        assert time.monotonic() < deadline, f"timed out after {timeout}s waiting for {what}"
        time.sleep(0.5)
    return result


def garbage(env: Env, symbol: str, taxpayer: str) -> list[tuple[str, str | None, bytes | None]]:
    t = env.settings.topics
    component = {
        "taxpayer_id": taxpayer,
        "portfolio_order_id": "forged",
        "component_order_id": "forged/0",
        "order_type": "BUY",
        "symbol": symbol,
        "amount": 10.0,
        "priority": 1,
        "limit_price": None,
        "timestamp": time.time(),
    }
    return [
        (t.components, symbol, b"\xff\xfe not json"),
        (t.components, symbol, None),
        (t.components, symbol, orjson.dumps({"symbol": symbol})),
        (t.components, None, orjson.dumps({**component, "amount": 1e300})),
        (t.components, f"not-{symbol}", orjson.dumps(component)),  # key disagrees
        (t.positions, taxpayer, b"[1, 2, 3]"),
        (t.positions, taxpayer, orjson.dumps({"taxpayer_id": taxpayer, "fill": "no"})),
        (t.positions, "someone-else", orjson.dumps({"taxpayer_id": taxpayer})),
        (t.positions, None, b'{"taxpayer_id": NaN}'),
        (t.fills, symbol, b"{truncated"),
        (t.fills, symbol, orjson.dumps({"taxpayer_id": taxpayer, "fill_id": "x"})),
        (t.fills, None, b"\x00"),
    ]


def test_garbage_on_internal_topics_is_dead_lettered_and_the_worker_goes_on(
    env: Env, start_worker: Callable[..., Worker]
) -> None:
    s = env.settings
    port = free_port()
    worker = start_worker("badinput", FINTANK_WEB_PORT=str(port))
    symbol, taxpayer = f"S{env.suffix}", f"t{env.suffix}"
    now = time.time()
    tick = {"symbol": symbol, "exchange": "X", "bid": 10.0, "ask": 10.5, "timestamp": now}
    asyncio.run(produce(s.bootstrap, [(s.topics.ticks, symbol, orjson.dumps(tick))]))

    bad = asyncio.run(produce(s.bootstrap, garbage(env, symbol, taxpayer)))
    order = {
        "taxpayer_id": taxpayer,
        "portfolio_order_id": f"po-{env.suffix}",
        "order_type": "BUY",
        "amount": 105.0,
        "priority": 1,
        "timestamp": time.time(),
        "portfolio": [{"symbol": symbol, "weight": 1}],
    }
    asyncio.run(
        produce(s.bootstrap, [(s.topics.orders, order["portfolio_order_id"], orjson.dumps(order))])
    )

    # The valid order executes and fills at the quote, and reaches the position.
    [execution] = wait_for(lambda: read(env, s.topics.executions), "the execution")
    assert execution.value["requested_price"] == 10.5 and execution.value["requested_shares"] == 10
    # (The fills topic also holds the garbage this test wrote to it, on any partition.)
    [fill] = wait_for(
        lambda: [
            r
            for r in read(env, s.topics.fills)
            if isinstance(r.value, dict) and "component_order_id" in r.value
        ],
        "the fill",
    )
    assert fill.value["component_order_id"] == f"po-{env.suffix}/0"
    status, _, body = wait_for(
        lambda: (a := get(port, f"/positions/{taxpayer}"))[0] == 200 and a[2]["positions"] and a,
        "the position",
    )
    assert body == {"taxpayer_id": taxpayer, "cash": -105.0, "positions": {symbol: 10.0}}

    # Each garbage record is dead-lettered exactly once, located and with a reason.
    wanted = sorted(bad)
    letters = wait_for(
        lambda: (found := read(env, s.topics.deadletters)) and len(found) >= len(wanted) and found,
        f"{len(wanted)} dead letters",
    )
    time.sleep(2)  # nothing more may come
    letters = read(env, s.topics.deadletters)
    located = sorted(
        (r.value["source_topic"], r.value["source_partition"], r.value["source_offset"])
        for r in letters
    )
    assert located == wanted
    assert all(r.value["reason"] and r.key == r.value["source_topic"] for r in letters)
    reasons = {
        (r.value["source_topic"], r.value["source_partition"], r.value["source_offset"]): r.value[
            "reason"
        ]
        for r in letters
    }
    for place, (_, _, value) in zip(bad, garbage(env, symbol, taxpayer), strict=True):
        if value is None:
            assert reasons[place] == "empty record value (null)"

    # The worker is up and has committed past every garbage record.
    def committed_past_garbage() -> bool:
        status, _, lanes = get(port, "/debug/consumer")
        return status == 200 and all(
            lanes.get(f"{topic}:{partition}", {}).get("committed", -1) > offset
            for topic, partition, offset in bad
        )

    wait_for(committed_past_garbage, "commits past the garbage", timeout=60)
    assert worker.is_up()


FAUST_VIEWS = ["/router/", "/router/topics", "/table/", "/graph/", "/stats/", "/assignment/"]


def test_the_worker_answers_errors_as_json_and_serves_no_faust_views(
    env: Env, start_worker: Callable[..., Worker]
) -> None:
    port = free_port()
    start_worker("http", FINTANK_WEB_PORT=str(port))

    for path in FAUST_VIEWS:
        assert get(port, path) == (404, "application/json", {"error": f"Not Found: GET {path}"})
    assert get(port, "/no/such/route") == (
        404,
        "application/json",
        {"error": "Not Found: GET /no/such/route"},
    )
    status, ctype, body = get(port, "/candles/VTI?interval=2h")
    assert (status, ctype) == (400, "application/json") and set(body) == {"error"}
    status, ctype, body = get(port, "/positions/nobody-at-all")
    assert (status, ctype) == (404, "application/json") and set(body) == {"error"}
