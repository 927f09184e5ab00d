"""No non-finite number reaches the wire, InfluxDB or a changelog, whatever the input.

Orders and ticks at the edges of fintank's limits (prices from 1e-100 to
1e100, amounts up to 1e100, moves of 200 orders of magnitude between two
ticks) flow through the real bolts of the built-in topology, Orders -> Market
(quotes, candles, indicators, signals, alerts, executions, fills) ->
FillsByTaxpayer -> Positions, with records just beyond the limits mixed in.
Every emitted value, every InfluxDB line and every table value must hold
finite numbers only (fintank's codec would write inf and nan as null, and
InfluxDB refuses them), every table must survive its JSON round trip, and
exactly the records beyond the limits are dead-lettered.
"""

from __future__ import annotations

import re
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fintank.bolt import Out
from fintank.bolts import FillsByTaxpayer, Market, Orders, Positions
from fintank.codec import dumps
from fintank.limits import DEFAULT_MAX_FUTURE, MAX_NUMBER
from fintank.testing import Harness
from tests.support.garbage import non_finite_paths, prices
from tests.support.ticks import T0

SYMBOLS = ["A", "B"]
NOW = T0 + 1_000_000.0  # after every tick: the clock closes every window
OVERFLOWING_TICKS = [  # valid for the contract, beyond fintank's limits
    {"bid": 5e-324, "ask": 1.0},
    {"bid": 1.0, "ask": 1.7976931348623157e308},
]


def delivered(out: Out, now: float) -> list[Out]:
    outs = [out]
    while out.then is not None:
        out = out.then(now) if callable(out.then) else out.then
        outs.append(out)
    return outs


def line_numbers(line: str) -> list[float]:
    """The field values and the time of an InfluxDB line, as numbers."""
    parts = re.split(r"(?<!\\) ", line)
    assert len(parts) == 3, line
    numbers = [float(int(parts[2]))]
    assert 0 <= int(parts[2]) < 2**63, line
    for pair in re.split(r"(?<!\\),", parts[1]):
        value = pair.rsplit("=", 1)[1]
        numbers.append(float(value[:-1]) if value.endswith("i") else float(value))
    return numbers


@st.composite
def flows(draw: st.DrawFn) -> dict[str, Any]:
    amounts = st.sampled_from([MAX_NUMBER, 1e-100, 0.01, 1e50]) | st.floats(1e-6, MAX_NUMBER)
    orders = []
    for i in range(draw(st.integers(1, 4))):
        weight = draw(st.sampled_from([0.0, 0.25, 0.5, 1.0]))
        portfolio = [{"symbol": "A", "weight": 1 - weight}, {"symbol": "B", "weight": weight}]
        if draw(st.booleans()):
            portfolio[0]["limit_price"] = draw(prices)
        orders.append(
            {
                "taxpayer_id": draw(st.sampled_from([1, "1", 2])),
                "portfolio_order_id": f"po-{i}",
                "order_type": draw(st.sampled_from(["BUY", "SELL"])),
                "amount": draw(amounts),
                "priority": 1,
                "timestamp": T0,
                "portfolio": portfolio,
            }
        )
    overflowing_orders = draw(st.integers(0, 2))
    ticks, ts = [], T0
    for _ in range(draw(st.integers(1, 60))):
        ts += draw(st.sampled_from([0.0, 0.25, 1.0, 1.5, 61.0]))
        low, high = sorted([draw(prices), draw(prices)])
        ticks.append(
            {"symbol": draw(st.sampled_from(SYMBOLS)), "exchange": "X", "bid": low, "ask": high}
            | {"timestamp": ts}
        )
    overflowing = draw(st.lists(st.sampled_from(OVERFLOWING_TICKS), max_size=3))
    for bad in overflowing:
        at = draw(st.integers(0, len(ticks)))
        ticks.insert(at, {"symbol": "A", "exchange": "X", "timestamp": ts} | bad)
    return {
        "orders": orders,
        "overflowing_orders": overflowing_orders,
        "ticks": ticks,
        "overflowing_ticks": len(overflowing),
        "batch": draw(st.integers(1, 20)),
    }


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(flows())
def test_no_emit_point_or_table_value_holds_a_non_finite_number(flow: dict[str, Any]) -> None:
    outs: list[Out] = []
    orders = Harness(Orders, max_future=DEFAULT_MAX_FUTURE)
    market = Harness(Market, max_future=DEFAULT_MAX_FUTURE)
    taxpayers, positions = Harness(FillsByTaxpayer), Harness(Positions)

    raw_orders = [orjson.dumps(o) for o in flow["orders"]]
    raw_orders += [
        orjson.dumps({**flow["orders"][0], "portfolio_order_id": f"big-{i}", "amount": 1e308})
        for i in range(flow["overflowing_orders"])
    ]
    ids = [orjson.loads(r)["portfolio_order_id"] for r in raw_orders]
    placed = orders.feed("orders", raw_orders, NOW, keys=ids)
    outs.append(placed)
    assert len(placed.deadletters) == flow["overflowing_orders"]

    comps = [e for e in placed.emits if e.output == "components"]
    outs += delivered(
        market.feed("components", [dumps(e.value) for e in comps], NOW, [e.key for e in comps]),
        NOW,
    )
    ticks, size = flow["ticks"], flow["batch"]
    dead_ticks = 0
    for i in range(0, len(ticks), size):
        chunk = ticks[i : i + size]
        out = market.feed(
            "ticks", [orjson.dumps(t) for t in chunk], NOW, [t["symbol"] for t in chunk]
        )
        dead_ticks += len(out.deadletters)
        outs += delivered(out, NOW)
    assert dead_ticks == flow["overflowing_ticks"]
    outs += delivered(market.tick(NOW), NOW)

    fills = [e for o in outs for e in o.emits if e.output == "fills"]
    by_taxpayer = taxpayers.feed("fills", [dumps(e.value) for e in fills], NOW)
    assert by_taxpayer.deadletters == []
    updates = [e for o in (placed, by_taxpayer) for e in o.emits if e.output == "positions"]
    kept = positions.feed(
        "positions", [dumps(e.value) for e in updates], NOW, [e.key for e in updates]
    )
    assert kept.deadletters == []
    outs += [by_taxpayer, kept]

    for out in outs:
        for emit in out.emits:
            assert non_finite_paths(emit.value) == [], (emit.output, emit.value)
            assert b"null" not in dumps(emit.value).replace(b'"limit_price":null', b"") or (
                emit.output == "indicators"  # null until enough closes, by the contract
            )
        for line in out.points:
            assert all(n == n and abs(n) != float("inf") for n in line_numbers(line)), line
    for harness in (orders, market, positions):
        for table in harness.stores:
            values = harness.table(table)
            assert non_finite_paths(values) == [], table
            assert harness.restarted().table(table) == values, table
