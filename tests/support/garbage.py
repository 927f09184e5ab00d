"""Bad input: strategies for JSON-ish text and adversarial records, and garbage for the soak.

JSON is built as *text* (not through orjson), so it can hold what orjson
refuses to write: NaN and Infinity, integers beyond 64 bits, numbers that
overflow or underflow a float, lone surrogates, duplicate keys, truncation.
Records come in two kinds: anything at all (`json_text`), and objects with a
topic's own field names whose values are mostly plausible and sometimes not
(`record_text`), so the validators' deeper rules are reached too.
"""

from __future__ import annotations

import math
from typing import Any

import orjson
from hypothesis import strategies as st

from fintank.limits import MAX_NUMBER, MIN_PRICE

# Numbers as JSON text, and things that look like numbers but are not JSON.
NUMBER_TEXTS = [
    "0", "-0", "1", "-1", "0.5", "2", "100.25", "1.0", "1e0", "1E2", "-1.5e-3",
    "1e100", "1.0000000000000002e100", "1e-100", "9.999999999999999e-101",
    "1e300", "1e308", "-1e308", "1.7976931348623157e308", "1e309", "-1e309",
    "5e-324", "1e-400", "1763722800.125", "1.7637228e12", "1.7637228e15",
    "9223372036.854775", "9223372036854775807", "-9223372036854775808",
    "9223372036854775808", "18446744073709551615", "18446744073709551616",
    "123456789012345678901234567890", "0.30000000000000004",
]  # fmt: skip
NOT_NUMBERS = [
    "NaN", "Infinity", "-Infinity", "nan", "inf", "0x10", "01", "1.", ".5", "+1", "1e", "--1",
]  # fmt: skip
LITERALS = ["true", "false", "null"]
STRING_TEXTS = [
    '""', '"VTI"', '"IVE"', '"NYSE"', '"BUY"', '"SELL"', '"HOLD"', '"buy"', '"1.5"', '"NaN"',
    '"42"', '"po-1"', '"\\u0000"', '"\\ud800"', '"\\udfff\\ud800"', '"\\u00e9"', '"é"',
    '"\U0001d11e"', '"a\\"b"', '"\\n"', '" "', '"' + "x" * 300 + '"',
]  # fmt: skip

TICK_FIELDS = ["symbol", "exchange", "bid", "ask", "timestamp", "bid_size", "ask_size"]
ORDER_FIELDS = [
    "taxpayer_id", "portfolio_order_id", "order_type", "amount", "priority", "timestamp",
    "portfolio",
]  # fmt: skip
ENTRY_FIELDS = ["symbol", "weight", "limit_price"]
COMPONENT_FIELDS = [
    "taxpayer_id", "portfolio_order_id", "component_order_id", "order_type", "symbol",
    "amount", "priority", "limit_price", "timestamp",
]  # fmt: skip
FILL_FIELDS = [
    "taxpayer_id", "portfolio_order_id", "component_order_id", "market_order_id",
    "execution_id", "fill_id", "order_type", "symbol", "filled_amount", "filled_shares",
    "filled_price", "delta_shares_position", "delta_cash_position", "timestamp",
]  # fmt: skip
FIELD_NAMES = sorted({*TICK_FIELDS, *ORDER_FIELDS, *ENTRY_FIELDS, *COMPONENT_FIELDS, *FILL_FIELDS})


def quoted(text: str) -> str:
    """``text`` as a JSON string."""
    return orjson.dumps(text).decode()


valid_scalars = (
    st.sampled_from(NUMBER_TEXTS + LITERALS + STRING_TEXTS)
    | st.integers().map(str)
    | st.floats(allow_nan=False, allow_infinity=False).map(repr)
    | st.text(max_size=12).map(quoted)
)
scalars = valid_scalars | st.sampled_from(NOT_NUMBERS) | st.floats().map(repr)
keys = st.sampled_from(FIELD_NAMES).map(quoted) | st.text(max_size=6).map(quoted)


def _array(items: list[str]) -> str:
    return "[" + ",".join(items) + "]"


def _object(pairs: list[tuple[str, str]]) -> str:
    return "{" + ",".join(f"{k}:{v}" for k, v in pairs) + "}"


def _nested(leaves: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.recursive(
        leaves,
        lambda inner: (
            st.lists(inner, max_size=4).map(_array)
            | st.lists(st.tuples(keys, inner), max_size=6).map(_object)
        ),
        max_leaves=12,
    )


#: Anything at all, JSON or nearly: NaN, Infinity, hex, leading zeros...
json_text = _nested(scalars)
#: JSON text orjson's grammar accepts (its numbers may still overflow a float).
json_value_text = _nested(valid_scalars)

_PORTFOLIOS = [
    '[{"symbol":"VTI","weight":1}]',
    '[{"symbol":"VTI","weight":0.5},{"symbol":"IVE","weight":0.5,"limit_price":94}]',
    '[{"symbol":"VTI","weight":0.25,"limit_price":null},{"symbol":"IVE","weight":0.75},'
    '{"symbol":"IWS","weight":0}]',
]
#: Valid values per field: a record of them all is valid (prices pair up: bid <= ask).
GOOD: dict[str, list[str]] = {
    "symbol": ['"VTI"', '"IVE"', '"\U0001d11e"', '"a b,c=d"'],
    "exchange": ['"NYSE"', '""'],
    "bid": ["109.71", "1", "1e-100", "50"],
    "ask": ["109.74", "1e100", "200", "109.71"],
    "timestamp": ["1763722800.125", "1", "9223372036.0", "1763722800"],
    "bid_size": ["0", "3.5"],
    "ask_size": ["0", "900"],
    "taxpayer_id": ["42", '"42"', "-7", "9223372036854775807"],
    "portfolio_order_id": ['"po-1"', '"po/1"'],
    "component_order_id": ['"po-1/0"'],
    "market_order_id": ['"po-1/0/m"'],
    "execution_id": ['"po-1/0/x"'],
    "fill_id": ['"po-1/0/f"'],
    "order_type": ['"BUY"', '"SELL"'],
    "amount": ["1000.0", "1e100", "0.01", "5"],
    "priority": ["1", "-3", "9223372036854775807"],
    "limit_price": ["94.0", "null"],
    "filled_amount": ["500.0"],
    "filled_shares": ["4.5"],
    "filled_price": ["109.74"],
    "delta_shares_position": ["4.5", "-4.5"],
    "delta_cash_position": ["-500.0", "500.0"],
    "portfolio": _PORTFOLIOS,
}
#: Plausible but wrong values per field: near misses of the rules.
BAD: dict[str, list[str]] = {
    "symbol": ['""', "1", "null", '["VTI"]'],
    "exchange": ["null", "0"],
    "bid": ["5e-324", "1e308", "0", "-1", '"109.71"', "1e309", "NaN", "true"],
    "ask": ["1.7976931348623157e308", "1e101", "0", "-Infinity"],
    "timestamp": ["1.7637228e12", "9223372036.854775", "0", "-1", "1e300", '"now"'],
    "bid_size": ["-1", "null", '"3"'],
    "ask_size": ["1e309", "-0.5"],
    "taxpayer_id": ['""', "1.0", "18446744073709551616", "true", "[]"],
    "portfolio_order_id": ['""', "1", "null"],
    "component_order_id": ['""', "0"],
    "order_type": ['"HOLD"', '"buy"', "1"],
    "amount": ["1e308", "1.7976931348623157e308", "0", "-5", '"100"'],
    "priority": ["1.0", "1e0", "9223372036854775808", '"1"'],
    "limit_price": ["0", "-1", '"94"', "1e308"],
    "delta_shares_position": ["1e300", "1.7976931348623157e308"],
    "delta_cash_position": ["1e300", "-1.7976931348623157e308"],
    "portfolio": [
        "[]",
        '[{"symbol":"VTI","weight":1e308},{"symbol":"IVE","weight":-1e308}]',
        '[{"symbol":"VTI","weight":0.5},{"symbol":"VTI","weight":0.5}]',
        '[{"symbol":"VTI","weight":0.9}]',
        '{"symbol":"VTI","weight":1}',
    ],
}


def record_text(fields: list[str]) -> st.SearchStrategy[str]:
    """A JSON object with (most of) ``fields``: each value valid (mostly), a near miss,
    or any JSON value; now and then a field missing or an extra (or repeated) one."""

    @st.composite
    def build(draw: st.DrawFn) -> str:
        pairs = []
        for name in fields:
            roll = draw(st.integers(0, 19))
            if roll == 0:
                continue  # missing
            if roll <= 16:
                value = draw(st.sampled_from(GOOD.get(name, ["null"])))
            elif roll <= 18:
                value = draw(st.sampled_from(BAD.get(name, ["null"])))
            else:
                value = draw(json_value_text)
            pairs.append((quoted(name), value))
        if draw(st.integers(0, 9)) == 0:
            pairs.append((draw(keys), draw(json_value_text)))  # an extra or a repeated field
        return _object(draw(st.permutations(pairs)))

    return build()


def as_bytes(text: st.SearchStrategy[str]) -> st.SearchStrategy[bytes]:
    """JSON text as a record value: UTF-8 (lone surrogates kept), now and then cut short."""

    @st.composite
    def build(draw: st.DrawFn) -> bytes:
        raw = draw(text).encode("utf-8", "surrogatepass")
        if raw and draw(st.integers(0, 19)) == 0:
            raw = raw[: draw(st.integers(0, len(raw) - 1))]
        return raw

    return build()


def record_values(fields: list[str]) -> st.SearchStrategy[bytes | None]:
    """What can arrive as a record value on a topic whose records have ``fields``."""
    return st.one_of(
        as_bytes(record_text(fields)),
        as_bytes(json_text),
        st.binary(max_size=200),
        st.none(),  # a Kafka null value (a tombstone)
    )


# --- valid but extreme: inside fintank's limits, at their edges -----------------------

prices = st.sampled_from([MIN_PRICE, MAX_NUMBER, 1.0, 109.74]) | st.floats(
    min_value=MIN_PRICE, max_value=MAX_NUMBER
)


def non_finite_paths(value: Any, path: str = "") -> list[str]:
    """Where in ``value`` (dataclasses, dicts, lists, tuples, sets) a float is not finite."""
    if isinstance(value, float):
        return [] if math.isfinite(value) else [path or "<value>"]
    if hasattr(value, "__dataclass_fields__"):
        value = {name: getattr(value, name) for name in value.__dataclass_fields__}
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in non_finite_paths(v, f"{path}.{k}")]
    if isinstance(value, list | tuple | set | frozenset):
        return [p for i, v in enumerate(value) for p in non_finite_paths(v, f"{path}[{i}]")]
    return []


# --- garbage for the soak: (kind, key, value); each kind dead-lettered --------------------


def garbage_ticks(symbol: str, now: float) -> list[tuple[str, str | None, bytes | None]]:
    """One record of each kind of garbage on ``ticks`` (the soak cycles through them)."""
    good = {"symbol": symbol, "exchange": "NYSE", "bid": 10.0, "ask": 10.5, "timestamp": now}

    def tick(**changes: Any) -> bytes:
        return orjson.dumps({**good, **changes})

    return [
        ("not json", symbol, b"\x00\xffnot json"),
        ("truncated", symbol, tick()[:-7]),
        ("an array", symbol, b'["VTI", 1, 2]'),
        ("NaN text", symbol, tick().replace(b'"bid":10.0', b'"bid":NaN')),
        ("huge number", symbol, tick().replace(b'"ask":10.5', b'"ask":1e400')),
        ("beyond the price range", symbol, tick(bid=1e-300)),
        ("a string price", symbol, tick(bid="10.0")),
        ("bid above ask", symbol, tick(bid=11.0)),
        ("milliseconds as seconds", symbol, tick(timestamp=now * 1000)),
        ("key disagrees", f"not-{symbol}", tick()),
        ("null value", symbol, None),
        ("nested junk", symbol, b'{"symbol": {"symbol": [[[]]]}, "bid": [1e308]}'),
    ]
