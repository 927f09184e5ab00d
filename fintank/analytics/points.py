# influxdb-client ships py.typed but leaves Point's methods unannotated.
# mypy: disable-error-code="no-untyped-call"
"""Candles -> InfluxDB line protocol (CONTRACT.md measurement `candles`).

Tags ``symbol`` and ``interval``; float fields ``open``, ``high``, ``low``,
``close`` and the integer field ``count``; time = the window start in
nanoseconds. influxdb-client's `Point` does the escaping and formatting.
"""

from __future__ import annotations

from influxdb_client.client.write.point import Point
from influxdb_client.domain.write_precision import WritePrecision

from fintank.analytics.records import Candle

MEASUREMENT = "candles"
_NS = 1_000_000_000


def candle_point(candle: Candle) -> Point:
    """The InfluxDB point of one candle."""
    point: Point = (
        Point(MEASUREMENT)
        .tag("symbol", candle.symbol)
        .tag("interval", candle.interval)
        .field("open", float(candle.open))
        .field("high", float(candle.high))
        .field("low", float(candle.low))
        .field("close", float(candle.close))
        .field("count", int(candle.count))
        .time(start_ns(candle.start), WritePrecision.NS)
    )
    return point


def candle_line(candle: Candle) -> str:
    """One candle as a line of InfluxDB line protocol."""
    line: str = candle_point(candle).to_line_protocol()
    return line


def start_ns(start: float) -> int:
    """A window start (whole seconds: windows are epoch-aligned) in nanoseconds, exactly.

    ``int(start * 1e9)`` would round: epoch nanoseconds exceed 2**53. The
    sub-second part is kept to the microsecond for non-aligned values.
    """
    whole = int(start)
    return whole * _NS + round((start - whole) * 1_000_000) * 1_000
