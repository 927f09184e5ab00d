"""The order-flow dashboard, proven against the real InfluxDB rather than as valid JSON.

Ten minutes of order flow (quotes, portfolio orders and their components,
executions, fills, dead letters, candles) are built with fintank's own bolts
and line builders and written through the project's `InfluxPersister` over
the v1 transport. Then every query of every panel in
``dashboards/order-flow.json`` is rendered the way Grafana renders it
(``$timeFilter``, ``$__interval``, ``$__interval_ms``, the template
variables) and run on InfluxDB: each must return series with exactly the
columns the panel plots, and the totals must add up to the data loaded.
A last check holds every measurement, tag and field a panel names to the
measurements table of docs/wire-format.md (the project's own statement of
the wire contract, inside the repository), plus the ``deadletters``
extension the worker writes.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from fintank.analytics import candles as candle_bolt
from fintank.analytics.points import candle_line
from fintank.analytics.records import Candle
from fintank.config import Settings
from fintank.generators import random_walk_ticks
from fintank.records import Tick
from fintank.sinks.influx import InfluxPersister
from fintank.sinks.lines import BidAskLines, deadletter_line
from fintank.sinks.query import influxql
from fintank.sinks.transports import InfluxV1Transport
from fintank.trading import (
    Execution,
    Fill,
    PortfolioOrder,
    SymbolBook,
    fill_for,
    on_component,
    split,
)
from fintank.trading import points as trading_points
from tests.integration.conftest import Env
from tests.support.trading import entry, order

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "dashboards" / "order-flow.json"
WIRE_FORMAT = REPO / "docs" / "wire-format.md"

SYMBOLS = ["VTI", "IVE", "IWS"]
INTERVAL, INTERVAL_MS = "10s", 10_000  # what Grafana picks for $__interval on a ~1h range


# --- the dashboard -----------------------------------------------------------------


def load_dashboard() -> dict[str, Any]:
    return dict(json.loads(DASHBOARD.read_text()))


def all_panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, including those a collapsed row keeps inside itself."""
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def all_targets(dashboard: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(panel title, target) for every query of every panel."""
    return [
        (panel["title"], target)
        for panel in all_panels(dashboard)
        if panel["type"] != "row"
        for target in panel["targets"]
    ]


def variable(dashboard: dict[str, Any], name: str) -> dict[str, Any]:
    return next(v for v in dashboard["templating"]["list"] if v["name"] == name)


@dataclass(frozen=True)
class Render:
    """What Grafana substitutes into a raw InfluxQL query."""

    start_ms: int
    end_ms: int
    variables: dict[str, str]

    def __call__(self, query: str) -> str:
        q = query.replace("$timeFilter", f"time >= {self.start_ms}ms and time <= {self.end_ms}ms")
        q = q.replace("$__interval_ms", str(INTERVAL_MS)).replace("$__interval", INTERVAL)
        for name, value in self.variables.items():
            q = re.sub(rf"\$\{{{name}\}}|\${name}\b", value.replace("\\", r"\\"), q)
        left = re.findall(r"\$\{?\w+", q)
        assert not left, f"variables Grafana would substitute but the test does not: {left}"
        return q


def render_for(dashboard: dict[str, Any], symbols: list[str]) -> Render:
    """The last hour up to now, ``symbols`` selected, other variables at their defaults."""
    now_ms = int(time.time() * 1000)
    values = {
        # A multi-value variable inside /^$symbol$/ becomes a regex alternation.
        "symbol": "(" + "|".join(re.escape(s) for s in symbols) + ")",
        "candle_interval": variable(dashboard, "candle_interval")["current"]["value"],
    }
    return Render(now_ms - 3_600_000, now_ms, values)


def aliases(query: str) -> list[str]:
    """The columns a query plots: the ``AS "name"`` of each selected expression."""
    return re.findall(r'\bAS "(\w+)"', query)


def group_tags(query: str) -> list[str]:
    """Tag keys in the query's GROUP BY (each series of the result carries them)."""
    match = re.search(r"GROUP BY (.*?)(?: fill\(\w+\))?$", query)
    return re.findall(r'"(\w+)"', match.group(1)) if match else []


# --- the data ----------------------------------------------------------------------


@dataclass
class OrderFlow:
    ticks: list[Tick]
    orders: list[PortfolioOrder]
    executions: list[Execution]
    fills: list[Fill]
    deadletters: list[tuple[str, float]]
    candles: list[Candle]

    def lines(self) -> list[str]:
        """Every point, built by the same code the worker uses."""
        out = BidAskLines().lines(self.ticks)
        for o in self.orders:
            out.append(trading_points.portfolio_order_line(o))
            out.extend(trading_points.component_line(c) for c in split(o))
        out.extend(trading_points.execution_line(e) for e in self.executions)
        out.extend(trading_points.fill_line(f) for f in self.fills)
        out.extend(deadletter_line(topic, ts) for topic, ts in self.deadletters)
        out.extend(candle_line(c) for c in self.candles)
        return out


def order_flow(now: float) -> OrderFlow:
    """The ten whole minutes before ``now``: a tick per symbol per second, an order a minute."""
    t0 = math.floor(now / 60) * 60 - 600
    n = 1800
    ticks = [
        Tick(raw["symbol"], raw["exchange"], raw["bid"], raw["ask"], t0 + i * 600 / n)
        for i, raw in enumerate(random_walk_ticks(SYMBOLS, n, t0, seed=4))
    ]
    orders: list[PortfolioOrder] = []
    executions: list[Execution] = []
    fills: list[Fill] = []
    for k in range(8):
        po = order(
            entry("VTI", 0.5),
            entry("IVE", 0.3),
            entry("IWS", 0.2),
            order_type="SELL" if k % 3 == 2 else "BUY",
            amount=1000.0 + 250 * k,
            portfolio_order_id=f"po-{k}",
            taxpayer_id=42 + k % 2,
            timestamp=t0 + 30 + 60 * k + 0.5,
        )
        orders.append(po)
        for comp in split(po):
            quote = max(
                (t for t in ticks if t.symbol == comp.symbol and t.timestamp <= po.timestamp),
                key=lambda t: t.timestamp,
            )
            _, done = on_component(SymbolBook(quote), comp, po.timestamp + 0.25)
            executions.extend(done)
            fills.extend(fill_for(e, e.timestamp + 0.05) for e in done)
    deadletters: list[tuple[str, float]] = [
        ("ticks", t0 + 10),
        ("ticks", t0 + 70),
        ("ticks", t0 + 75),
    ]
    deadletters += [("orders", t0 + 200.5), ("orders", t0 + 400.25)]
    candles: list[Candle] = []
    for symbol in SYMBOLS:
        mine = [t for t in ticks if t.symbol == symbol]
        _, emitted, late = candle_bolt.on_ticks(None, mine, 60, "1m")
        assert late == 0
        candles.extend(emitted)
    return OrderFlow(ticks, orders, executions, fills, deadletters, candles)


async def persist(settings: Settings, lines: list[str]) -> None:
    persister = InfluxPersister(
        InfluxV1Transport(settings.influx_url, settings.influx_database), batch_size=1000
    )
    persister.add(lines)
    await persister.close()
    assert (persister.stats.written, persister.stats.rejected) == (len(lines), 0)


def loaded(env: Env) -> OrderFlow:
    flow = order_flow(time.time())
    asyncio.run(persist(env.settings, flow.lines()))
    return flow


def run(env: Env, query: str) -> list[dict[str, Any]]:
    return influxql(env.settings.influx_url, env.settings.influx_database, query, epoch="ms")


# --- the tests ---------------------------------------------------------------------


def test_every_panel_query_returns_the_columns_its_panel_plots(env: Env) -> None:
    flow = loaded(env)
    dashboard = load_dashboard()
    symbol_query = variable(dashboard, "symbol")["query"]

    listed = [row[1] for series in run(env, symbol_query) for row in series["values"]]

    assert sorted(listed) == sorted(SYMBOLS)
    assert flow.candles and flow.executions and flow.fills
    targets = all_targets(dashboard)
    assert len(targets) >= 12
    for selected in (SYMBOLS, ["IVE"]):  # "All", and one symbol (as in a repeated panel)
        render = render_for(dashboard, selected)
        for title, target in targets:
            query = render(target["query"])
            columns = ["time", *aliases(query)]
            tags = group_tags(query)
            where = f"panel {title!r}, {target['refId']}, symbols {selected}: {query}"

            series = run(env, query)

            assert series, f"no data for {where}"
            for s in series:
                assert s["columns"] == columns, where
                assert sorted(s.get("tags", {})) == sorted(tags), where
                if "symbol" in tags:
                    assert s["tags"]["symbol"] in selected, where
            for i, column in enumerate(columns[1:], start=1):
                plotted = [row[i] for s in series for row in s["values"] if row[i] is not None]
                assert plotted, f"column {column!r} is all null for {where}"


def test_panel_numbers_add_up_to_the_order_flow_that_was_written(env: Env) -> None:
    flow = loaded(env)
    dashboard = load_dashboard()
    render = render_for(dashboard, SYMBOLS)
    queries = {
        (title, target["refId"]): render(target["query"])
        for title, target in all_targets(dashboard)
    }

    def rows(title: str, ref: str = "A") -> list[tuple[dict[str, str], list[Any]]]:
        series = run(env, queries[(title, ref)])
        return [(s.get("tags", {}), row) for s in series for row in s["values"]]

    def total(title: str, ref: str = "A", by: str | None = None) -> dict[str | None, float]:
        sums: dict[str | None, float] = defaultdict(float)
        for tags, row in rows(title, ref):
            sums[tags.get(by) if by else None] += row[1] or 0.0
        return dict(sums)

    amounts: defaultdict[str, float] = defaultdict(float)
    for o in flow.orders:
        amounts[o.order_type] += o.amount
    shares: defaultdict[str, float] = defaultdict(float)
    for f in flow.fills:
        shares[f.symbol] += f.delta_shares_position
    cash = sum(f.delta_cash_position for f in flow.fills)
    sides = Counter(o.order_type for o in flow.orders)
    executed = Counter(e.order_type for e in flow.executions)
    notional: defaultdict[str, float] = defaultdict(float)
    for e in flow.executions:
        notional[e.order_type] += e.requested_amount

    assert total("Total deposits") == {None: pytest.approx(amounts["BUY"])}
    assert total("Total withdrawals") == {None: pytest.approx(amounts["SELL"])}
    assert total("Portfolio orders by side", by="order_type") == sides
    per_s = total("Executions per second", by="order_type")
    assert {k: round(v * INTERVAL_MS / 1000) for k, v in per_s.items()} == executed
    assert total("Executed notional by side", by="order_type") == pytest.approx(notional)
    assert total("Net shares per symbol (fills)", by="symbol") == pytest.approx(shares)
    assert total("Cash flow from fills") == {None: pytest.approx(cash)}
    assert rows("Cash flow from fills", "B")[-1][1][1] == pytest.approx(cash)
    assert total("Dead letters per minute", by="source_topic") == Counter(
        topic for topic, _ in flow.deadletters
    )
    spreads = [row[1] for _, row in rows("Spread (ask - bid)")]
    assert spreads and all(s >= 0 for s in spreads)
    ohlc = rows("OHLC $symbol ($candle_interval)")
    by_symbol = Counter[str]()
    for tags, (_, o, h, lo, c, v) in ohlc:
        assert lo <= min(o, c) <= max(o, c) <= h
        by_symbol[tags["symbol"]] += v
    assert by_symbol == Counter(
        {s: sum(c.count for c in flow.candles if c.symbol == s) for s in SYMBOLS}
    )


# --- the wire format ---------------------------------------------------------------


def documented_measurements() -> dict[str, tuple[set[str], set[str]]]:
    """docs/wire-format.md's "InfluxDB measurements" tables: measurement -> (tags, fields).

    The section runs from its heading to the next level-2 heading, so the
    tables of its subsections (the ``deadletters`` extension) count too.
    """
    text = WIRE_FORMAT.read_text(encoding="utf-8")
    heading = re.search(r"^## InfluxDB measurements$", text, re.M)
    assert heading, f"{WIRE_FORMAT} has no '## InfluxDB measurements' section"
    section = text[heading.end() :].split("\n## ", 1)[0]
    table: dict[str, tuple[set[str], set[str]]] = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3 or cells[0] in ("measurement", "") or set(cells[0]) <= {"-"}:
            continue
        tags, fields = ({x.strip() for x in cell.split(",")} for cell in cells[1:])
        table[cells[0]] = (tags, fields)
    return table


def deadletters_extension() -> dict[str, tuple[set[str], set[str]]]:
    """The documented ``deadletters`` extension, read off the line the worker writes."""
    head, fields, _ = deadletter_line("ticks", 1.0).split(" ")
    measurement, *tags = head.split(",")
    return {
        measurement: (
            {t.split("=")[0] for t in tags},
            {f.split("=")[0] for f in fields.split(",")},
        )
    }


def test_every_panel_names_only_contract_measurements_tags_and_fields() -> None:
    known = {**documented_measurements(), **deadletters_extension()}
    assert {"bid_ask", "portfolio_orders", "executions", "fills", "candles"} <= set(known)
    dashboard = load_dashboard()
    queries = [(title, t["query"]) for title, t in all_targets(dashboard)]
    queries.append(("$symbol", variable(dashboard, "symbol")["query"]))
    used = set()

    for title, query in queries:
        measurement = re.search(r'\bFROM "(\w+)"', query)
        assert measurement, f"{title}: no measurement in {query}"
        name = measurement.group(1)
        assert name in known, f"{title}: measurement {name!r} is not in docs/wire-format.md"
        tags, fields = known[name]
        named = set(re.findall(r'"(\w+)"', query)) - {name} - set(aliases(query))
        unknown = named - tags - fields
        assert not unknown, f"{title}: {sorted(unknown)} are not tags or fields of {name}"
        for value in re.findall(r"\"order_type\" = '(\w+)'", query):
            assert value in ("BUY", "SELL"), f"{title}: order_type {value!r}"
        used.add(name)

    assert used >= {"bid_ask", "portfolio_orders", "executions", "fills", "deadletters", "candles"}


def test_every_panel_queries_raw_influxql_through_the_datasource_variable() -> None:
    dashboard = load_dashboard()
    kinds = {v["name"]: v["type"] for v in dashboard["templating"]["list"]}
    symbol = variable(dashboard, "symbol")
    ds = {"type": "influxdb", "uid": "${datasource}"}

    assert dashboard["schemaVersion"] >= 39
    assert kinds["datasource"] == "datasource"
    assert variable(dashboard, "datasource")["query"] == "influxdb"
    assert (symbol["type"], symbol["multi"], symbol["datasource"]) == ("query", True, ds)
    assert any(p["type"] == "row" and p["title"] == "Candles" for p in dashboard["panels"])
    for panel in all_panels(dashboard):
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == ds, panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == ds, panel["title"]
            assert target["rawQuery"] is True, panel["title"]
            assert "$timeFilter" in target["query"], panel["title"]
            if re.search(r'\bFROM "(bid_ask|executions|fills|candles)"', target["query"]):
                assert '"symbol" =~ /^$symbol$/' in target["query"], panel["title"]
