"""The live page in a real browser, against a real worker fed through Kafka.

Ticks spanning a dozen seconds of event time (so 1s candles close) and a few
portfolio orders go to the test's topics; headless Chromium opens the
worker's `GET /` and must show the instruments, a candle chart and the
executions and fills, and this worker's throughput and lag per input topic
(from its GET /metrics). The screenshot is kept in test-artifacts/live-page.png.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import orjson

from fintank.generators import random_orders, random_walk_ticks
from fintank.producer import send_paced
from tests.integration.conftest import REPO, Env
from tests.integration.load import free_port
from tests.support.browser import Browser, BrowserError

SCREENSHOT = REPO / "test-artifacts" / "live-page.png"
SPAN_S = 12.0  # event time covered by the ticks: about a dozen 1s candles per symbol


def count(selector: str) -> str:
    """JavaScript: how many elements match ``selector``."""
    return f"document.querySelectorAll({json.dumps(selector)}).length"


def texts(selector: str) -> str:
    """JavaScript: the text of each element matching ``selector``."""
    return f"[...document.querySelectorAll({json.dumps(selector)})].map((e) => e.textContent)"


def text(element_id: str) -> str:
    """JavaScript: the text of the element with id ``element_id``."""
    return f"document.getElementById({json.dumps(element_id)}).textContent"


def click(selector: str) -> str:
    """JavaScript: click the first element matching ``selector``."""
    return f"document.querySelector({json.dumps(selector)}).click()"


READY = " && ".join(
    [
        f"{count('#instruments tbody tr')} >= 3",
        f"{count('#chart svg g.candle')} >= 2",
        f"{count('#executions tbody tr')} >= 1",
        f"{count('#fills tbody tr')} >= 1",
        # this worker's inputs, each with a rate once two polls of /metrics are in
        f"{count('#worker tbody tr')} >= 5",
        "[...document.querySelectorAll('#worker tbody tr')].every("
        "(tr) => tr.cells[1].textContent !== '–' && tr.cells[3].textContent !== '–')",
        f"{text('status')}.startsWith('updated')",  # the last poll of every route answered
    ]
)


def seed(env: Env, symbols: list[str], ticks: int = 240, orders: int = 6) -> None:
    """Send ticks spread evenly over the last ``SPAN_S`` seconds, then market orders."""
    s = env.settings
    start = time.time() - SPAN_S
    tick_records: list[tuple[bytes | None, bytes]] = []
    for i, tick in enumerate(random_walk_ticks(symbols, ticks, start, seed=3)):
        tick["timestamp"] = round(start + i * SPAN_S / ticks, 6)
        tick_records.append((tick["symbol"].encode(), orjson.dumps(tick)))
    order_records: list[tuple[bytes | None, bytes]] = [
        (o["portfolio_order_id"].encode(), orjson.dumps(o))
        for o in random_orders(symbols, orders, time.time(), taxpayers=3, limit_share=0, seed=7)
    ]
    asyncio.run(send_paced(s.bootstrap, s.topics.ticks, tick_records, ticks, label="ticks"))
    asyncio.run(send_paced(s.bootstrap, s.topics.orders, order_records, orders, label="orders"))


async def look_at_the_page(url: str) -> dict[str, Any]:
    """Open the page, wait until it shows data, try its controls; what it showed."""
    async with Browser() as browser:
        await browser.navigate(url)
        try:
            await browser.wait_for(READY, timeout=60)
        except BrowserError as err:
            status = await browser.evaluate(text("status"))
            note = await browser.evaluate(text("chart-note"))
            raise AssertionError(f"{err}; status: {status!r}; chart: {note!r}") from err
        finally:
            await browser.screenshot(SCREENSHOT)
        seen = {
            "symbols": await browser.evaluate(
                "[...document.querySelectorAll('#instruments tbody tr')]"
                ".map((tr) => tr.dataset.symbol)"
            ),
            "selected": await browser.evaluate(
                texts("#instruments tbody tr.selected td:first-child")
            ),
            "title": await browser.evaluate(text("chart-title")),
            "open_candles": await browser.evaluate(count("#chart svg g.candle.open")),
            "executions": await browser.evaluate(texts("#executions tbody tr")),
            "fills": await browser.evaluate(texts("#fills tbody tr")),
            "worker": await browser.evaluate(
                "[...document.querySelectorAll('#worker tbody tr')]"
                ".map((tr) => [...tr.cells].map((td) => td.textContent))"
            ),
        }
        # Clicking the second symbol puts its candles on the chart.
        second = seen["symbols"][1]
        await browser.evaluate(click(f"#instruments tr[data-symbol={json.dumps(second)}] td"))
        await browser.wait_for(
            f"{text('chart-title')}.startsWith({json.dumps(second)})"
            f" && {count('#chart svg g.candle')} >= 2",
            timeout=10,
        )
        # The 1m view answers too (maybe with no closed minute yet), without an error.
        await browser.evaluate(click('button[data-interval="1m"]'))
        await browser.wait_for(
            f"{text('chart-title')}.includes('1m candles') && {text('chart-note')} !== ''",
            timeout=10,
        )
        seen["note_1m"] = await browser.evaluate(
            "[document.getElementById('chart-note').className, " + text("chart-note") + "]"
        )
        return seen


def test_the_live_page_shows_quotes_candles_executions_and_fills(
    env: Env, start_worker: Callable[..., Any]
) -> None:
    worker = start_worker(FINTANK_WEB_PORT=str(free_port()))  # not the shared 16066
    symbols = [f"A{env.suffix}", f"B{env.suffix}", f"C{env.suffix}"]
    seed(env, symbols)

    seen = asyncio.run(look_at_the_page(f"{worker.url}/"))

    assert sorted(seen["symbols"]) == sorted(symbols)
    assert seen["selected"] == [seen["symbols"][0]]  # the first symbol is charted by default
    assert seen["title"].startswith(f"{seen['symbols'][0]} · 1s candles")
    assert seen["open_candles"] <= 1  # at most the still-open candle is drawn hollow
    for row in seen["executions"] + seen["fills"]:
        assert any(symbol in row for symbol in symbols), row
    assert seen["note_1m"][0] != "error", seen["note_1m"]
    worker_rows = {row[0]: row for row in seen["worker"]}
    topics = env.settings.topics
    assert {topics.ticks, topics.orders, topics.components} <= set(worker_rows)
    ticks_row = worker_rows[topics.ticks]  # topic, records in/s, records in, lag, partitions
    assert ticks_row[2] == "240" and ticks_row[4] == str(env.settings.partitions)
    assert SCREENSHOT.stat().st_size > 10_000
