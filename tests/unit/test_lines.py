"""Our cached bid_ask line builder writes exactly what influxdb-client's Point would."""

import math

from hypothesis import given
from hypothesis import strategies as st
from influxdb_client import Point, WritePrecision

from fintank.records import Tick
from fintank.sinks.lines import BidAskLines, to_ns
from tests.support.ticks import tick, valid_ticks


def point_line(t: Tick) -> str:
    point = (
        Point("bid_ask")
        .field("bid", t.bid)
        .field("ask", t.ask)
        .time(to_ns(t.timestamp), WritePrecision.NS)
    )
    point.tag("symbol", t.symbol)
    if t.exchange:
        point.tag("exchange", t.exchange)
    return point.to_line_protocol()


def test_golden_line() -> None:
    line = BidAskLines().lines([tick(bid=109.71, ask=110.0, timestamp=1763722800.125)])

    assert line == ["bid_ask,exchange=NYSE,symbol=VTI bid=109.71,ask=110 1763722800125000000"]


def test_tags_with_spaces_and_commas_are_escaped() -> None:
    line = BidAskLines().lines([Tick("BRK B,A", "New York", 1.0, 2.0, 1.0)])[0]

    assert line.startswith(r"bid_ask,exchange=New\ York,symbol=BRK\ B\,A ")


weird_symbols = st.text(
    st.characters(codec="utf-8", exclude_categories=["Cs", "Cc"]), min_size=1, max_size=8
)


@given(valid_ticks(symbol=weird_symbols | st.sampled_from(["VTI"])))
def test_same_fields_tags_and_time_as_influxdb_client_point(t: Tick) -> None:
    ours = BidAskLines().lines([t])[0]
    theirs = point_line(t)

    # Point sorts fields by name (ask, bid); ours writes bid first. Compare parsed parts.
    our_head, our_fields, our_time = ours.rsplit(" ", 2)
    their_head, their_fields, their_time = theirs.rsplit(" ", 2)
    assert our_head == their_head
    assert sorted(our_fields.split(",")) == sorted(their_fields.split(","))
    assert our_time == their_time


def test_to_ns_keeps_decimal_microseconds() -> None:
    assert to_ns(1763722800.125) == 1763722800_125000000
    assert to_ns(1763722800.1) == 1763722800_100000000
    assert to_ns(1763722800.000001) == 1763722800_000001000


# From 1973 on, floats are >= 15 ns apart; nearer 1970 two floats can share a nanosecond.
@given(st.floats(min_value=1e8, max_value=4e9), st.floats(min_value=1e8, max_value=4e9))
def test_to_ns_keeps_distinct_timestamps_distinct(a: float, b: float) -> None:
    assert (to_ns(a) == to_ns(b)) == (a == b)


def reference_to_ns(timestamp: float) -> int:
    """`to_ns` as first written, with ``round(ns, -3)``: the one it must equal."""
    secs = math.floor(timestamp)
    ns = round((timestamp - secs) * 1e9)
    snapped = round(ns, -3)
    if abs(ns - snapped) <= math.ulp(timestamp) * 5e8:
        ns = snapped
    return secs * 1_000_000_000 + ns


@given(st.floats(min_value=0.0, max_value=1e12, allow_nan=False, allow_infinity=False))
def test_to_ns_equals_its_reference(timestamp: float) -> None:
    assert to_ns(timestamp) == reference_to_ns(timestamp)


@given(st.integers(0, 10**12), st.integers(0, 999_999_999))
def test_to_ns_equals_its_reference_on_whole_and_half_microseconds(secs: int, ns: int) -> None:
    timestamp = secs + ns / 1e9
    assert to_ns(timestamp) == reference_to_ns(timestamp)
