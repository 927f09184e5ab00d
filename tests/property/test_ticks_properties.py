"""Invariants of the tick deserializer."""

from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fintank.records import DeadLetter, Tick
from fintank.ticks import TickDeserializer, parse_tick
from tests.support.ticks import valid_ticks

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=6)
    ),
    max_leaves=6,
)
tick_like = st.fixed_dictionaries(
    {},
    optional={
        "symbol": json_values | st.sampled_from(["VTI", ""]),
        "exchange": json_values | st.just("NYSE"),
        "bid": json_values | st.floats(),
        "ask": json_values | st.floats(),
        "timestamp": json_values | st.floats(),
        "bid_size": json_values,
    },
)


@given(st.binary(max_size=300))
def test_any_bytes_give_a_tick_or_a_dead_letter_never_an_exception(raw: bytes) -> None:
    result = TickDeserializer("ticks").process(raw, now=1.0)

    assert isinstance(result, Tick | DeadLetter)


@settings(suppress_health_check=[HealthCheck.too_slow])  # CI machines are shared and slow
@given(tick_like)
def test_any_json_object_gives_a_tick_or_a_reason(obj: dict[str, Any]) -> None:
    raw = orjson.dumps(obj)

    result = parse_tick(raw)

    if isinstance(result, Tick):
        assert result.symbol and 0 < result.bid <= result.ask and result.timestamp > 0
    else:
        assert isinstance(result, str) and result


@given(valid_ticks())
def test_valid_ticks_round_trip_through_the_wire(t: Tick) -> None:
    raw = orjson.dumps(
        {
            "symbol": t.symbol,
            "exchange": t.exchange,
            "bid": t.bid,
            "ask": t.ask,
            "timestamp": t.timestamp,
        }
    )

    assert parse_tick(raw) == t
