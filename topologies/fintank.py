"""The fintank topology: which bolt reads which stream and writes where, keyed how.

    ticks (key=symbol) ─► [Market] ─┬─► InfluxDB bid_ask, candles       (TickDeserializer, Analytics,
                                    ├─► candles, indicators, signals,    RuleEngine; a 0.5 s clock
    components (key=symbol) ───────►│   alerts                           closes quiet candles)
        ▲                           ├─► executions ─► fills ─► InfluxDB executions, fills
        │                           └─► deadletters (key=source topic)
    orders (key=portfolio_order_id) ─► [Orders] ─┬─► components, deadletters
                                                 └─► positions (key=taxpayer), InfluxDB orders
    fills (key=symbol) ─► [FillsByTaxpayer] ─► positions
    positions (key=taxpayer) ─► [Positions] ─► accounts ─► GET /positions/{taxpayer_id}

ticks and components share a key and a partition count, so partition p of
both reaches one Market instance: a symbol's quote and its resting
components meet in one `SymbolBook` (Storm's fields grouping). The bolts are
in `fintank.bolts`; the runtime (`fintank.runtime`) runs them on fintank's
engine.

Run it: ``fintank worker`` or ``.venv/bin/faust -A topologies.fintank worker -l info``.
"""

from __future__ import annotations

import os
from dataclasses import fields
from typing import Any

from fintank.analytics import http as analytics_http
from fintank.analytics.engine import AnalyticsConfig
from fintank.bolts import FillsByTaxpayer, Market, Orders, Positions
from fintank.config import Settings, Topics
from fintank.engine import KafkaSettings
from fintank.feed import RecentFeed
from fintank.records import Tick
from fintank.runtime import build
from fintank.topology import Request, Response, Topology
from fintank.trading import position_json
from fintank.trading.records import taxpayer_key
from fintank.web import live_page

settings = Settings.from_env(os.environ)  # the process edge: read once, pass down
topics = settings.topics

#: What each stream is keyed by (its grouping): the inputs a bolt reads together share one.
KEYS = {
    "ticks": "symbol",
    "orders": "portfolio_order_id",
    "components": "symbol",
    "executions": "symbol",
    "fills": "symbol",
    "candles": "symbol",
    "indicators": "symbol",
    "signals": "symbol",
    "alerts": "symbol",
    "positions": "taxpayer_id",
    "deadletters": "source_topic",
}

topology = Topology("fintank")
for f in fields(Topics):  # every stream on its configured topic (docs/wire-format.md)
    topology.stream(f.name, getattr(topics, f.name), key=KEYS[f.name])
topology.bolt(
    Market,
    analytics=AnalyticsConfig.from_settings(settings),
    max_future=settings.max_future,
    max_resting=settings.max_resting,
)
topology.bolt(
    Orders, max_future=settings.max_future, order_id_retention=settings.order_id_retention
)
topology.bolt(FillsByTaxpayer)
topology.bolt(Positions)

feed = RecentFeed(
    KafkaSettings.from_settings(settings),  # servers, TLS, SASL
    {name: getattr(topics, name) for name in ("executions", "fills", "signals", "alerts")},
)
topology.service(lambda _settings: feed)


# ---------------------------------------------------------------- HTTP
def positions(bolt: Positions, request: Request) -> Response:
    """``GET /positions/{taxpayer_id}``: cash and shares summed from fills; 404 if unknown."""
    taxpayer_id = request.params["taxpayer_id"]
    account = bolt.accounts.get(taxpayer_key(taxpayer_id))
    if account is None:
        return Response(404, {"error": f"unknown taxpayer {taxpayer_id!r} (no accepted order)"})
    return Response(200, position_json(account.taxpayer_id, account.position))


def candles(bolt: Market, request: Request) -> Response:
    """``GET /candles/{symbol}?interval=1m&minutes=30``: emitted candles, then the open one."""
    answer = analytics_http.candles_route(request.params["symbol"], request.query, bolt.analytics)
    return Response(answer.status, answer.body)


def candle_query(request: Request) -> Response | None:
    """A 400 for bad ``interval``/``minutes``, before the symbol is looked up anywhere."""
    query = analytics_http.parse_candle_query(request.query)
    return Response(400, {"error": query}) if isinstance(query, str) else None


def quotes(markets: list[Market], request: Request) -> list[Any]:
    """This worker's quotes (its partitions' books)."""
    found = [book.quote for m in markets for book in map(m.books.get, m.books.all_keys())]
    return [q for q in found if q is not None]


def newest_quotes(parts: list[list[Any]], request: Request) -> Response:
    """``GET /instruments``: every symbol's newest quote, from every worker."""
    newest: dict[str, Tick] = {}
    for part in parts:
        for quote in part:
            tick = quote if isinstance(quote, Tick) else Tick(**quote)
            held = newest.get(tick.symbol)
            if held is None or tick.timestamp > held.timestamp:
                newest[tick.symbol] = tick
    answer = analytics_http.instruments_response(newest)
    return Response(answer.status, answer.body)


topology.route(
    "/positions/{taxpayer_id}",
    positions,
    owner=Positions,
    key=lambda r: taxpayer_key(r.params["taxpayer_id"]),
)
topology.route(
    "/candles/{symbol}", candles, owner=Market, key=lambda r: r.params["symbol"], check=candle_query
)
topology.route("/instruments", quotes, gather=Market, merge=newest_quotes)
topology.route("/recent", lambda request: Response(200, feed.recent()))
topology.route("/", lambda request: Response(200, live_page(), "text/html"))

app = build(topology, settings).app  # faust -A topologies.fintank worker
