"""Fuzzing the parsers and the bolts: whatever arrives, a value or a reason, never an exception.

Inputs are arbitrary bytes, arbitrary JSON-ish text (nested, NaN and Infinity,
integers past 64 bits, numbers that overflow or underflow, unicode and lone
surrogates, duplicate keys, truncation), and objects with a topic's own field
names whose values are mostly plausible, so the deeper rules are reached.
"""

from __future__ import annotations

import math
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fintank.bolts import FillsByTaxpayer, Market, Orders, Positions
from fintank.limits import MAX_NUMBER, MAX_TIMESTAMP, MIN_PRICE
from fintank.records import DeadLetter, Tick
from fintank.testing import Harness
from fintank.ticks import TickDeserializer, parse_tick
from fintank.trading.components import split
from fintank.trading.internal import parse_component, parse_fill, parse_position_event
from fintank.trading.orders import OrderValidator, Rejected, parse_order
from fintank.trading.records import ComponentOrder, PortfolioOrder
from tests.support.garbage import (
    COMPONENT_FIELDS,
    FILL_FIELDS,
    ORDER_FIELDS,
    TICK_FIELDS,
    as_bytes,
    json_text,
    non_finite_paths,
    record_values,
)
from tests.support.ticks import T0

FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
NOW = T0
keys = st.none() | st.sampled_from([b"VTI", b"po-1", b"42", b"\xff"]) | st.binary(max_size=4)
anything = st.binary(max_size=300) | as_bytes(json_text) | st.none()


@FUZZ
@given(anything | record_values(TICK_FIELDS))
def test_parse_tick_returns_a_valid_tick_or_a_reason(raw: bytes | None) -> None:
    result = parse_tick(raw)

    if isinstance(result, str):
        assert result
        return
    assert isinstance(result, Tick) and result.symbol and type(result.exchange) is str
    assert MIN_PRICE <= result.bid <= result.ask <= MAX_NUMBER
    assert 0 < result.timestamp < MAX_TIMESTAMP
    assert non_finite_paths(result) == []


@FUZZ
@given(
    st.lists(st.tuples(anything | record_values(TICK_FIELDS), keys), max_size=8),
    st.none() | st.floats(min_value=0, max_value=1e6),
)
def test_the_tick_deserializer_judges_every_record_once(
    records: list[tuple[bytes | None, bytes | None]], max_future: float | None
) -> None:
    raws = [r for r, _ in records]
    ks = [k for _, k in records]

    batch = TickDeserializer("ticks", max_future).process_batch(
        raws, NOW, list(range(len(raws))), ks
    )

    assert sorted(batch.offsets + batch.dead_offsets) == list(range(len(raws)))
    assert all(isinstance(d, DeadLetter) and d.reason for d in batch.deadletters)
    for offset, tick in zip(batch.offsets, batch.ticks, strict=True):
        assert ks[offset] in (None, tick.symbol.encode())
        assert max_future is None or tick.timestamp <= NOW + max_future


@FUZZ
@given(anything | record_values(ORDER_FIELDS))
def test_parse_order_returns_a_valid_order_or_a_reason(raw: bytes | None) -> None:
    result = parse_order(raw)

    if isinstance(result, str):
        assert result
        return
    assert isinstance(result, PortfolioOrder)
    assert 0 < result.amount <= MAX_NUMBER and 0 < result.timestamp < MAX_TIMESTAMP
    assert abs(math.fsum(e.weight for e in result.portfolio) - 1) <= 1e-6
    assert non_finite_paths(split(result)) == []


@FUZZ
@given(anything | record_values(ORDER_FIELDS), keys, st.none() | st.floats(0, 1e6))
def test_the_order_validator_never_raises(
    raw: bytes | None, key: bytes | None, max_future: float | None
) -> None:
    result = OrderValidator("orders", max_future).process(raw, NOW, (0, 7), {"po-1": (0, 1)}, key)

    if isinstance(result, Rejected):
        assert result.deadletter.reason
    else:
        assert key in (None, result.order.portfolio_order_id.encode())


@FUZZ
@given(anything | record_values(COMPONENT_FIELDS), keys)
def test_parse_component_returns_a_component_or_a_reason(
    raw: bytes | None, key: bytes | None
) -> None:
    result = parse_component(raw, key)

    assert isinstance(result, ComponentOrder | str)
    assert non_finite_paths(result) == []


@FUZZ
@given(anything | record_values(FILL_FIELDS))
def test_parse_fill_returns_a_fill_object_or_a_reason(raw: bytes | None) -> None:
    assert isinstance(parse_fill(raw), dict | str)


@FUZZ
@given(
    anything
    | as_bytes(
        st.builds(
            lambda t, f: '{"taxpayer_id":' + t + ',"fill":' + f + "}",
            st.sampled_from(["42", '"42"', '""', "1.5", "null"]),
            json_text | st.just("{}"),
        )
    ),
    keys,
)
def test_parse_position_event_returns_an_event_or_a_reason(
    raw: bytes | None, key: bytes | None
) -> None:
    assert isinstance(parse_position_event(raw, key), dict | str)


def judged_once(out: Any, n: int) -> list[int]:
    """The offsets dead-lettered by ``out`` (each at most once, all within the batch)."""
    offsets = [o for o, _ in out.deadletters]
    assert len(set(offsets)) == len(offsets) and all(0 <= o < n for o in offsets)
    assert all(letter.reason for _, letter in out.deadletters)
    return offsets


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.tuples(record_values(TICK_FIELDS), st.none() | st.just("VTI")), max_size=10),
    st.lists(st.tuples(record_values(COMPONENT_FIELDS), st.none() | st.just("VTI")), max_size=5),
    st.lists(st.tuples(record_values(ORDER_FIELDS), st.none() | st.just("po-1")), max_size=5),
    st.lists(record_values(FILL_FIELDS), max_size=5),
)
def test_every_bolt_survives_garbage_on_every_input(
    ticks: list[tuple[bytes | None, str | None]],
    components: list[tuple[bytes | None, str | None]],
    orders: list[tuple[bytes | None, str | None]],
    fills: list[bytes | None],
) -> None:
    market = Harness(Market, max_future=86_400.0)
    for stream, records in (("ticks", ticks), ("components", components)):
        values = [v for v, _ in records]
        with_keys = all(k is not None for _, k in records)
        out = market.feed(
            stream, values, NOW, keys=[k or "" for _, k in records] if with_keys else None
        )
        judged_once(out, len(values))
    orders_out = Harness(Orders, max_future=86_400.0).feed("orders", [v for v, _ in orders], NOW)
    judged_once(orders_out, len(orders))
    judged_once(Harness(FillsByTaxpayer).feed("fills", fills, NOW), len(fills))
    positions = Harness(Positions)
    judged_once(positions.feed("positions", fills, NOW), len(fills))
    market.restarted()
    positions.restarted()
