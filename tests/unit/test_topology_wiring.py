"""The built-in topology's wiring, checked from its declarations and by driving its bolts.

Every stream a bolt reads is fed from outside (ticks, orders) or written by a
bolt; every stream a bolt writes is read by a bolt or is one of the outputs
docs/wire-format.md promises; the streams a bolt meets by partition share a
key and a partition count; and each record the bolts emit is keyed by the
field its stream declares.
"""

from __future__ import annotations

from typing import Any

from fintank.bolts import FillsByTaxpayer, Market, Orders, Positions
from fintank.codec import dumps, loads
from fintank.config import Settings
from fintank.stack.topics import wanted_topics
from fintank.testing import Harness
from tests.support.trading import entry, order_json
from topologies.fintank import KEYS, topology

EXTERNAL_INPUTS = {"ticks", "orders"}
EXTERNAL_OUTPUTS = {
    "executions",
    "fills",
    "candles",
    "indicators",
    "signals",
    "alerts",
    "deadletters",
}


def test_the_declarations_fit_together() -> None:
    assert topology.problems() == []
    assert [b.cls for b in topology.bolts] == [Market, Orders, FillsByTaxpayer, Positions]


def test_every_stream_read_is_fed_from_outside_or_written_by_a_bolt() -> None:
    assert set(topology.inputs()) == EXTERNAL_INPUTS
    for spec in topology.bolts:
        for name in spec.cls.inputs:
            assert name in EXTERNAL_INPUTS or topology.writers(name), (spec.name, name)


def test_every_declared_output_is_read_by_a_bolt_or_promised_to_the_outside() -> None:
    assert set(topology.outputs()) <= EXTERNAL_OUTPUTS  # nothing written and left unread
    for spec in topology.bolts:
        for name in spec.cls.outputs:
            assert topology.readers(name) or name in EXTERNAL_OUTPUTS, (spec.name, name)
    written = {n for spec in topology.bolts for n in spec.cls.outputs}
    assert written >= EXTERNAL_OUTPUTS


def test_streams_met_by_partition_share_a_key_and_a_partition_count() -> None:
    assert {name: s.key for name, s in topology.streams.items()} == KEYS
    settings = Settings()
    partitions = wanted_topics(settings)
    for spec in topology.bolts:
        met = [*spec.cls.inputs, *spec.cls.replay]
        assert len({topology.streams[n].key for n in met}) == 1, spec.name
        assert len({partitions[topology.streams[n].topic] for n in met}) == 1, spec.name
    market = topology.spec(Market).cls
    assert set(market.inputs) == {"ticks", "components"}  # a quote meets its resting components


def keyed_as_declared(out: Any) -> list[str]:
    """Each emit's output, after checking its key is its value's declared key field."""
    names = []
    for emit in out.emits:
        value = loads(dumps(emit.value))
        field = KEYS[emit.output]
        assert emit.key == str(value[field]), (emit.output, emit.key, value)
        names.append(emit.output)
    return names


def delivered(out: Any, now: float) -> list[Any]:
    """``out`` and everything its ``then`` chain sends once delivered, in order."""
    outs = [out]
    while out.then is not None:
        out = out.then(now) if callable(out.then) else out.then
        outs.append(out)
    return outs


def test_records_flow_through_the_bolts_keyed_as_their_streams_declare() -> None:
    orders = Harness(Orders)
    placed = orders.feed(
        "orders",
        [
            order_json(
                portfolio_order_id="po-1",
                taxpayer_id=42,
                portfolio=[entry("VTI", 0.5), entry("IVE", 0.5)],
            ),
            b"{not json",
        ],
        now=1.0,
    )
    assert sorted(keyed_as_declared(placed)) == ["components", "components", "positions"]
    assert [offset for offset, _ in placed.deadletters] == [1]

    market = Harness(Market)
    components = [dumps(e.value) for e in placed.emits if e.output == "components"]
    resting = market.feed("components", components, now=2.0)
    assert keyed_as_declared(resting) == []
    ticks = [
        dumps({"symbol": s, "exchange": "X", "bid": 10.0, "ask": 10.5, "timestamp": 100.0 + i})
        for i, s in enumerate(["VTI", "IVE", "VTI"])
    ]
    quoted = market.feed("ticks", ticks, now=103.0)
    sent = [name for o in delivered(quoted, 103.5) for name in keyed_as_declared(o)]
    assert sent.count("executions") == 2 and sent.count("fills") == 2

    closed = market.tick(200.0)  # the wall clock closes the quiet symbols' candles
    assert "candles" in keyed_as_declared(closed)

    fills = [
        dumps(e.value) for o in delivered(quoted, 103.5) for e in o.emits if e.output == "fills"
    ]
    by_taxpayer = Harness(FillsByTaxpayer).feed("fills", fills, now=104.0)
    assert keyed_as_declared(by_taxpayer) == ["positions", "positions"]

    positions = Harness(Positions)
    updates = [dumps(e.value) for e in placed.emits + by_taxpayer.emits if e.output == "positions"]
    assert keyed_as_declared(positions.feed("positions", updates, now=105.0)) == []
    account = positions.restarted().table("accounts")["42"]
    assert account.taxpayer_id == 42
