"""The tick path over the real Kafka and both real time-series servers.

`invoke queue_ticks` seeds valid and invalid ticks; a real worker reads
them; InfluxDB 1.x (v1 transport) or VictoriaMetrics (v2 write API) must
then hold exactly one point per valid tick, and deadletters one record per
invalid tick, with the worker still running.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from fintank.generators import INVALID_TICKS
from fintank.peek import read_topic
from fintank.sinks.query import influx_count, victoria_count
from tests.integration.conftest import Env


def wait_for(check: Callable[[], int], want: int, timeout: float = 90) -> int:
    """Poll ``check`` until it returns ``want``, then once more after a pause (nothing extra arrives)."""
    deadline = time.monotonic() + timeout
    got = check()
    while got < want and time.monotonic() < deadline:
        time.sleep(0.5)
        got = check()
    time.sleep(1.5)
    return check()


def assert_dead_letters(env: Env, n: int) -> None:
    letters = asyncio.run(read_topic(env.settings.bootstrap, env.settings.topics.deadletters))
    assert len(letters) == n
    for letter in letters:
        assert letter.key == env.settings.topics.ticks
        assert letter.value["source_topic"] == env.settings.topics.ticks
        assert letter.value["reason"]
        assert letter.value["timestamp"] > 0
    payloads = {letter.value["payload"] for letter in letters}
    assert "not json at all" in payloads
    assert any(p.startswith("b64:") for p in payloads)


def test_v1_transport_persists_every_valid_tick_once_and_dead_letters_the_rest(
    env: Env, start_worker: Callable[..., object]
) -> None:
    worker = start_worker(FINTANK_INFLUX_TRANSPORT="v1")
    symbols = f"A{env.suffix},B{env.suffix},C{env.suffix}"
    invalid = 2 * len(INVALID_TICKS)

    done = env.invoke(
        "queue-ticks",
        "--count",
        "1000",
        "--rate",
        "0",
        "--symbols",
        symbols,
        "--invalid",
        str(invalid),
    )

    assert "sent 1020 records" in done.stdout
    s = env.settings
    count = wait_for(lambda: influx_count(s.influx_url, s.influx_database, "bid_ask", "bid"), 1000)
    assert count == 1000
    per_symbol = [
        influx_count(s.influx_url, s.influx_database, "bid_ask", "ask", f"symbol = '{sym}'")
        for sym in symbols.split(",")
    ]
    assert per_symbol == [334, 333, 333]
    assert_dead_letters(env, invalid)
    assert worker.is_up()  # type: ignore[attr-defined]


def test_v2_transport_persists_every_valid_tick_once_into_victoria_metrics(
    env: Env, start_worker: Callable[..., object]
) -> None:
    worker = start_worker(FINTANK_INFLUX_TRANSPORT="v2")
    symbols = f"V{env.suffix},W{env.suffix}"

    env.invoke(
        "queue-ticks",
        "--count",
        "1000",
        "--rate",
        "0",
        "--symbols",
        symbols,
        "--invalid",
        str(len(INVALID_TICKS)),
    )

    match = f'{{__name__="bid_ask_bid",symbol=~"[VW]{env.suffix}"}}'
    count = wait_for(lambda: victoria_count(env.settings.influx_v2_url, match), 1000)
    assert count == 1000
    assert_dead_letters(env, len(INVALID_TICKS))
    assert worker.is_up()  # type: ignore[attr-defined]
