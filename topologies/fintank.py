"""The fintank topology: which bolt reads which topic and writes where, keyed how.

    ticks (key=symbol) ─► [TickDeserializer] ─┬─► InfluxDB bid_ask (batched)
                                              ├─► deadletters (key=source topic)
                                              ├─► [Analytics] ─► candles, indicators, signals, alerts
                                              │     (+ a 0.5 s clock closing candles by wall clock)
                                              └─► [RuleEngine.on_ticks] ─┐
    orders (key=portfolio_order_id)                                      │
      └─► [OrderValidator] ─┬─► deadletters                              │
                            ├─► fintank-components (key=symbol) ─► [RuleEngine.on_components]
                            ├─► fintank-positions (key=taxpayer)         │
                            └─► InfluxDB portfolio_orders, portfolio_component_orders
                                                                         ▼
               executions (key=symbol) ─► fills (key=symbol) ─► InfluxDB executions, fills
    fills ─► [re-key by taxpayer] ─► fintank-positions ─► [PositionKeeper] ─► GET /positions/{id}

ticks and fintank-components have the same partition count and key, so the
engine gives partition p of both to one task of the ``market`` group: a
symbol's quote and its resting components meet in one `SymbolBook` (Storm's
fields grouping). The agents are in `fintank.agents`; the engine
(`fintank.engine`) consumes, keeps state and commits.

Run it: ``.venv/bin/faust -A topologies.fintank worker -l info``.
"""

from __future__ import annotations

import os
from typing import Any

import aiohttp
from faust.web import Request, Response
from yarl import URL

from fintank import agents
from fintank.analytics import http as analytics_http
from fintank.analytics.engine import AnalyticsConfig
from fintank.analytics.http import candles_route, instruments_response
from fintank.codec import dumps, loads
from fintank.config import Settings
from fintank.feed import RecentFeed
from fintank.records import Tick
from fintank.runtime import make_app, make_engine, make_persister
from fintank.trading import position_json
from fintank.trading.records import taxpayer_key
from fintank.web import live_page

settings = Settings.from_env(os.environ)  # the process edge: read once, pass down
topics = settings.topics
app = make_app(settings)
persister = make_persister(settings)
engine = make_engine(
    settings,
    app,
    agents.groups(topics, AnalyticsConfig.from_settings(settings), persister),
    agents.outputs(topics),
    persister,
)
app.service(engine)
feed = RecentFeed(
    settings.bootstrap,
    {
        "executions": topics.executions,
        "fills": topics.fills,
        "signals": topics.signals,
        "alerts": topics.alerts,
    },
)
app.service(feed)


# ---------------------------------------------------------------- HTTP
def answer(web: Any, response: analytics_http.Response) -> Response:
    """A JSON answer written by fintank's codec (it knows fintank's records)."""
    return web.bytes(dumps(response.body), content_type="application/json", status=response.status)


async def routed(web: Any, request: Request, group: str, key: str) -> tuple[Any, Response | None]:
    """The local processor owning ``key`` in ``group``, or the owner's answer (proxied).

    Every worker answers every key: a key owned elsewhere is asked of its
    owner (one hop; the owner answers from its own state).
    """
    partition = engine.partition_of(group, key)
    if partition is None:
        return None, answer(web, analytics_http.error(503, "no partitions assigned yet"))
    task = engine.task_for(group, partition)
    if task is not None:
        return task.processor, None
    owner = engine.routing.owner(group, partition)
    if owner is None or owner == engine.url or request.query.get("routed"):
        return None, answer(
            web, analytics_http.error(503, f"{group}[{partition}] has no ready owner; try again")
        )
    url = URL(owner).with_path(request.path).with_query({**request.query, "routed": "1"})
    try:
        async with app.http_client.get(url, timeout=aiohttp.ClientTimeout(total=5)) as reply:
            body = await reply.read()
            return None, web.bytes(body, content_type="application/json", status=reply.status)
    except (aiohttp.ClientError, TimeoutError) as exc:
        error = analytics_http.error(503, f"worker {owner} did not answer: {exc!r}")
        return None, answer(web, error)


@app.page("/health")
async def health(web: Any, request: Request) -> Response:
    """``GET /health``: is this worker assigned and processing? Persister, ledger, analytics."""
    markets = [t.processor for t in engine.tasks.values() if t.group.name == "market"]
    stats = persister.stats
    return web.json(
        {
            "ready": engine.ready.is_set() and bool(engine.assigned),
            "assigned": sorted(f"{tp.topic}:{tp.partition}" for tp in engine.assigned),
            "persister": {
                "buffered": len(persister),
                "written": stats.written,
                "batches": stats.batches,
                "retries": stats.retries,
                "rejected": stats.rejected,
            },
            "ledger": {
                "executions": sum(len(m.ledger.executions) for m in markets),
                "fills": sum(len(m.ledger.filled) for m in markets),
            },
            "analytics": {"late_ticks": sum(m.analytics.late_ticks for m in markets)},
            "engine": engine.stats,
        }
    )


@app.page("/positions/{taxpayer_id}")
async def get_positions(web: Any, request: Request, taxpayer_id: str) -> Response:
    """``GET /positions/{taxpayer_id}``: cash and shares summed from fills (any worker answers)."""
    key = taxpayer_key(taxpayer_id)
    processor, reply = await routed(web, request, "positions", key)
    if reply is not None:
        return reply
    account = processor.accounts.get(key)
    if account is None:
        return web.json(
            {"error": f"unknown taxpayer {taxpayer_id!r} (no accepted order)"}, status=404
        )
    return web.json(position_json(account.taxpayer_id, account.position))


@app.page("/candles/{symbol}")
async def get_candles(web: Any, request: Request, symbol: str) -> Response:
    """``GET /candles/{symbol}?interval=1m&minutes=30`` (any worker answers)."""
    query = analytics_http.parse_candle_query(request.query)
    if isinstance(query, str):
        return answer(web, analytics_http.error(400, query))  # 400 before anything about the key
    processor, reply = await routed(web, request, "market", symbol)
    if reply is not None:
        return reply
    return answer(web, candles_route(symbol, request.query, processor.analytics))


@app.page("/instruments")
async def get_instruments(web: Any, request: Request) -> Response:
    """``GET /instruments``: every symbol's quote, gathered from every worker.

    Each worker holds the quotes of its own partitions; the newest quote of
    each symbol wins. ``?scope=local`` answers from this worker alone (how
    workers ask each other).
    """
    quotes: dict[str, Tick] = {}
    for task in list(engine.tasks.values()):
        if task.group.name != "market" or not task.ready.is_set():
            continue
        books = task.processor.books
        for key in books.all_keys():
            book = books.get(key)
            if book is not None and book.quote is not None:
                _newest(quotes, book.quote)
    if request.query.get("scope") != "local":
        for peer in _peers():
            try:
                async with app.http_client.get(
                    URL(peer).with_path("/instruments").with_query(scope="local"),
                    timeout=aiohttp.ClientTimeout(total=5),
                ) as reply:
                    reply.raise_for_status()
                    for quote in loads(await reply.read()):
                        _newest(quotes, Tick(**quote))
            except (aiohttp.ClientError, TimeoutError) as exc:
                error = analytics_http.error(503, f"worker {peer} did not answer: {exc!r}")
                return answer(web, error)
    return answer(web, instruments_response(quotes))


def _newest(quotes: dict[str, Tick], quote: Tick) -> None:
    held = quotes.get(quote.symbol)
    if held is None or quote.timestamp > held.timestamp:
        quotes[quote.symbol] = quote


def _peers() -> list[str]:
    """The web addresses of the other members of the group (from the last assignment)."""
    return sorted({u for u in engine.routing.urls if u and u != engine.url})


@app.page("/recent")
async def get_recent(web: Any, request: Request) -> Response:
    """``GET /recent``: the newest executions, fills, signals and alerts (live page)."""
    return answer(web, analytics_http.Response(200, feed.recent()))


@app.page("/")
async def live(web: Any, request: Request) -> Response:
    """The live page: quotes, candles, executions, fills, signals and alerts."""
    return web.bytes(live_page(), content_type="text/html")


@app.page("/debug/consumer")
async def debug_consumer(web: Any, request: Request) -> Response:
    """Per input partition: processed and committed offsets, fetched/processed/discarded records."""
    return web.json(engine.describe())
