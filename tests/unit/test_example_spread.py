"""examples/spread.py without a broker: its decoder, its bolt, its table, its route.

`fintank.testing.Harness` drives the bolt as the runtime does: batches of
records decoded by the stream's ``decode`` (what does not decode comes back as
a dead letter), in-memory tables, and a restart through the changelog codec.
"""

from __future__ import annotations

import math
import subprocess
import sys
from fractions import Fraction
from pathlib import Path
from typing import Any

import faust
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from influxdb_client.client.write.point import Point

import examples.spread as spread_module
from examples.spread import SUMS, Quote, Spread, Sums, decode, line, spread_of, topology
from fintank import Out, Request
from fintank.testing import Harness
from tests.support.ticks import T0, tick_json

NOW = T0 + 60
REPO = Path(__file__).resolve().parents[2]


def harness() -> Harness:
    return Harness(Spread, decode={"ticks": topology.streams["ticks"].decode})


def feed(h: Harness, raws: list[bytes]) -> Out:
    return h.feed("ticks", raws, now=NOW)


def test_the_topology_fits_together() -> None:
    assert topology.problems() == []
    assert topology.inputs() == ["ticks"]
    assert topology.outputs() == ["deadletters", "spreads"]  # deadletters: what does not decode
    assert topology.streams["ticks"].decode is decode
    assert {s.key for s in topology.streams.values()} == {"symbol", None}
    assert [r.path for r in topology.routes] == ["/spreads/{symbol}"]


def test_the_faust_app_is_built_only_when_asked_for() -> None:
    imported = "import examples.spread as m, sys; sys.exit('app' in vars(m))"
    assert subprocess.run([sys.executable, "-c", imported], cwd=REPO, timeout=60).returncode == 0
    app = spread_module.app
    assert isinstance(app, faust.App) and spread_module.app is app
    with pytest.raises(AttributeError):
        _ = spread_module.nothing


def test_a_tick_gives_a_spreads_record_a_point_and_the_symbols_sums() -> None:
    h = harness()
    first = tick_json(bid=100.0, ask=100.5, bid_size=3, ask_size=1, timestamp=T0 + 0.125)
    out = feed(h, [first, tick_json(bid=101.0, ask=101.25)])

    assert [(e.output, e.key) for e in out.emits] == [("spreads", "VTI")] * 2
    assert out.emits[0].value == {
        "symbol": "VTI",
        "bid": 100.0,
        "ask": 100.5,
        "timestamp": T0 + 0.125,
        "size": 4.0,
        "spread": 0.5,
        "spread_bps": pytest.approx(0.5 / 100.25 * 1e4),
        "count": 1,
        "avg_spread": 0.5,
        "vwap_mid": 100.25,
    }
    second = out.emits[1].value
    assert (second["count"], second["size"], second["avg_spread"]) == (2, 1.0, 0.375)
    assert second["vwap_mid"] == pytest.approx((100.25 * 4 + 101.125 * 1) / 5)
    bps = out.emits[0].value["spread_bps"]
    assert out.points[0] == (
        f"spread,symbol=VTI spread=0.5,spread_bps={bps!r},avg_spread=0.5,vwap_mid=100.25"
        " 1763722800125000000"
    )
    assert len(out.points) == 2
    assert out.deadletters == [] and out.then is None
    assert h.table(SUMS.name) == {"VTI": Sums(2, 0.75, 5.0, 100.25 * 4 + 101.125)}


def test_symbols_are_kept_apart_and_the_route_answers_for_each() -> None:
    h = harness()
    feed(h, [tick_json(symbol="VTI"), tick_json(symbol="IVE", bid=94.0, ask=94.5)])

    ok = spread_of(h.bolt, Request({"symbol": "IVE"}, {}))
    assert (ok.status, ok.body) == (
        200,
        {"symbol": "IVE", "count": 1, "avg_spread": 0.5, "vwap_mid": 94.25},
    )
    assert spread_of(h.bolt, Request({"symbol": "VTI"}, {})).body["count"] == 1
    missing = spread_of(h.bolt, Request({"symbol": "NOPE"}, {}))
    assert missing.status == 404 and "NOPE" in missing.body["error"]


def test_a_restarted_partition_carries_on_from_its_changelog() -> None:
    h = harness()
    feed(h, [tick_json(bid=10.0, ask=11.0)] * 3)

    h = h.restarted()  # the table back from its changelog (JSON), then the next tick
    assert spread_of(h.bolt, Request({"symbol": "VTI"}, {})).body["count"] == 3
    out = feed(h, [tick_json(bid=10.0, ask=12.0)])

    assert out.emits[0].value["count"] == 4
    assert out.emits[0].value["avg_spread"] == pytest.approx((3 * 1.0 + 2.0) / 4)
    assert isinstance(h.table(SUMS.name)["VTI"], Sums)


def test_what_does_not_decode_is_dead_lettered_with_the_reason() -> None:
    h = harness()
    raws = [tick_json(), b"not json at all", tick_json(bid=2.0, ask=1.0), tick_json()]

    out = feed(h, raws)

    assert [offset for offset, _ in out.deadletters] == [1, 2]
    letters = [letter for _, letter in out.deadletters]
    assert all(letter.source_topic == "ticks" and letter.timestamp == NOW for letter in letters)
    assert letters[0].payload == "not json at all"
    assert letters[0].reason.startswith("cannot decode a ticks record: ")
    assert letters[1].reason.endswith(
        "need 0 < bid <= ask and timestamp > 0, got 2.0, 1.0, 1763722800.0"
    )
    assert [e.value["count"] for e in out.emits] == [1, 2]
    assert len(out.points) == 2


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"not json", "line 1 column 1"),
        (None, "JSON object"),
        (b"[1, 2]", "JSON object"),
        (tick_json(exchange=None), "string exchange"),
        (tick_json(symbol=""), "symbol must be a non-empty string"),
        (tick_json(symbol=7), "symbol must be a non-empty string"),
        (tick_json(bid="109.71"), "bid must be a number, got '109.71'"),
        (tick_json(ask=True), "ask must be a number"),
        (tick_json(timestamp=None), "timestamp must be a number"),
        (tick_json(bid=109.8, ask=109.7), "need 0 < bid <= ask"),
        (tick_json(bid=0), "need 0 < bid <= ask"),
        (tick_json(timestamp=-1), "timestamp > 0"),
        (tick_json(bid_size=-1), "sizes must be >= 0"),
        (b'{"symbol":"V","exchange":"","bid":1,"ask":2,"timestamp":1,"ask_size":null}', "ask_size"),
        (b'{"symbol":"V","exchange":"","bid":NaN,"ask":2,"timestamp":1}', "line 1 column"),
    ],
)
def test_decode_says_why_a_record_is_not_a_tick(raw: bytes | None, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        decode(raw)


def test_decode_takes_integers_sizes_and_an_empty_exchange() -> None:
    assert decode(tick_json(bid=1, ask=2, timestamp=5, exchange="")) == Quote("VTI", 1, 2, 5, 1.0)
    assert decode(tick_json(bid_size=2, ask_size=0.5)).size == 2.5
    assert decode(tick_json(bid_size=0, ask_size=0)).size == 1.0  # no size: weight 1


# ---------------------------------------------------------------- properties
symbols = st.sampled_from(["VTI", "IVE", "BRK B", "a,b=c", "x\\"])
prices = st.floats(min_value=0.01, max_value=1e6)
sizes = st.none() | st.floats(min_value=0, max_value=1e6)


@st.composite
def ticks(draw: st.DrawFn) -> dict[str, Any]:
    bid = draw(prices)
    tick = {
        "symbol": draw(symbols),
        "exchange": "NYSE",
        "bid": bid,
        "ask": bid + draw(st.floats(min_value=0, max_value=100)),
        "timestamp": draw(st.floats(min_value=1, max_value=4e9)),
    }
    for name in ("bid_size", "ask_size"):
        size = draw(sizes)
        if size is not None:
            tick[name] = size
    return tick


@settings(max_examples=200, deadline=None)
@given(st.lists(ticks(), min_size=1, max_size=30))
def test_spreads_and_running_averages_match_the_ticks(batch: list[dict[str, Any]]) -> None:
    h = harness()
    out = feed(h, [orjson.dumps(t) for t in batch])

    assert len(out.emits) == len(out.points) == len(batch)
    seen: dict[str, list[tuple[float, float, float]]] = {}
    for tick, emit in zip(batch, out.emits, strict=True):
        value = emit.value
        assert emit.key == value["symbol"] == tick["symbol"]
        assert value["spread"] == tick["ask"] - tick["bid"]
        mid = (tick["bid"] + tick["ask"]) / 2
        assert value["spread_bps"] == pytest.approx(value["spread"] / mid * 1e4)
        weight = tick.get("bid_size", 0.0) + tick.get("ask_size", 0.0) or 1.0
        history = seen.setdefault(tick["symbol"], [])
        history.append((value["spread"], mid, weight))
        assert value["count"] == len(history)
        assert value["avg_spread"] == pytest.approx(
            math.fsum(s for s, _, _ in history) / len(history)
        )
        total = math.fsum(w for _, _, w in history)
        vwap = math.fsum(m * w for _, m, w in history) / total
        assert value["vwap_mid"] == pytest.approx(vwap, rel=1e-9)
    for symbol, history in seen.items():
        answer = spread_of(h.bolt, Request({"symbol": symbol}, {}))
        assert answer.status == 200 and answer.body["count"] == len(history)


@settings(max_examples=300, deadline=None)
@given(
    st.text(min_size=1),
    st.floats(min_value=-1e9, max_value=1e9),
    st.floats(min_value=1, max_value=4e9),
)
def test_points_are_escaped_as_influxdb_client_escapes_them(
    symbol: str, value: float, time: float
) -> None:
    point = line(symbol, {"spread": value}, time)

    reference = Point("spread").tag("symbol", symbol).field("x", 1.0).to_line_protocol()
    head = reference.rsplit(" x=", 1)[0]
    assert point.startswith(head + " ")
    field, ns = point[len(head) + 1 :].split(" ")
    assert field == f"spread={value!r}"
    assert abs(int(ns) - Fraction(time) * 10**9) <= 0.5 + 1e-6  # the nearest nanosecond


@given(
    st.binary() | st.dictionaries(st.text(), st.none() | st.booleans() | st.floats() | st.text())
)
def test_decode_returns_a_valid_quote_or_raises_a_value_error(raw: Any) -> None:
    data = raw if isinstance(raw, bytes) else orjson.dumps(raw)
    try:
        quote = decode(data)
    except ValueError:
        return
    assert quote.symbol and 0 < quote.bid <= quote.ask and quote.timestamp > 0 and quote.size > 0
