"""What the worker's web server answers for instruments and candles (CONTRACT.md "HTTP").

Pure functions from plain state to a `Response` (status and a JSON-ready
body, to be written with ``orjson.dumps``): the web handlers only fetch the
state and send the answer. Bad query parameters give 400 before an unknown
symbol gives 404; errors are ``{"error": "..."}``.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from fintank.analytics.candles import INTERVALS
from fintank.analytics.records import Candle
from fintank.records import Tick

DEFAULT_INTERVAL = "1m"
DEFAULT_MINUTES = 30
MIN_MINUTES = 1
MAX_MINUTES = 1440


@dataclass(frozen=True, slots=True)
class Response:
    """An HTTP answer: status code and JSON-ready body."""

    status: int
    body: Any


@dataclass(frozen=True, slots=True)
class CandleQuery:
    """Validated query parameters of ``GET /candles/{symbol}``."""

    interval: str = DEFAULT_INTERVAL
    minutes: int = DEFAULT_MINUTES


def error(status: int, message: str) -> Response:
    """An error answer: ``{"error": message}``."""
    return Response(status, {"error": message})


def instruments_response(quotes: Mapping[str, Tick]) -> Response:
    """``GET /instruments``: every symbol's current quote, by symbol."""
    body = [
        {
            "symbol": quote.symbol,
            "exchange": quote.exchange,
            "bid": quote.bid,
            "ask": quote.ask,
            "timestamp": quote.timestamp,
        }
        for _, quote in sorted(quotes.items())
    ]
    return Response(200, body)


def parse_candle_query(params: Mapping[str, str]) -> CandleQuery | str:
    """The validated ``interval`` and ``minutes`` parameters, or the reason they are bad."""
    interval = params.get("interval", DEFAULT_INTERVAL)
    if interval not in INTERVALS:
        choices = ", ".join(INTERVALS)
        return f"interval must be one of {choices}, got {interval!r}"
    raw = params.get("minutes")
    if raw is None:
        return CandleQuery(interval, DEFAULT_MINUTES)
    minutes = _integer(raw)
    if minutes is None or not MIN_MINUTES <= minutes <= MAX_MINUTES:
        return f"minutes must be an integer {MIN_MINUTES}..{MAX_MINUTES}, got {raw!r}"
    return CandleQuery(interval, minutes)


def candles_response(
    emitted: Sequence[Candle], open_candle: Candle | None, interval: str, minutes: int
) -> list[Any]:
    """The body of a candle query: emitted candles in the last ``minutes``, oldest first.

    ``emitted`` holds the symbol's emitted candles of ``interval`` oldest first
    (as emitted). Kept: those whose start is at or after the newest one's end
    minus ``minutes`` (event time). The still-open candle, if given, comes
    last with ``"final": false``.
    """
    body: list[Any] = []
    if emitted:
        newest_end = emitted[-1].start + INTERVALS[interval]
        cut = newest_end - minutes * 60
        body.extend(emitted[bisect_left(emitted, cut, key=_start) :])
    if open_candle is not None:
        body.append(candle_dict(open_candle, final=False))
    return body


class CandleSource(Protocol):
    """Where `candles_route` finds a symbol's candles (`fintank.analytics.engine.Analytics`)."""

    def known(self, symbol: str) -> bool:
        """Whether ``symbol`` ever had a valid tick."""
        ...

    def emitted(self, symbol: str, interval: str, minutes: int) -> Sequence[Candle]:
        """Emitted candles, oldest first (at least those a ``minutes`` query keeps)."""
        ...

    def open_candle(self, symbol: str, interval: str) -> Candle | None:
        """The still-open candle, if any."""
        ...


def candles_route(symbol: str, params: Mapping[str, str], source: CandleSource) -> Response:
    """``GET /candles/{symbol}``: 400 on bad parameters, then 404 for a symbol never ticked."""
    query = parse_candle_query(params)
    if isinstance(query, str):
        return error(400, query)
    if not source.known(symbol):
        return error(404, f"unknown symbol {symbol!r}: no valid tick seen")
    body = candles_response(
        source.emitted(symbol, query.interval, query.minutes),
        source.open_candle(symbol, query.interval),
        query.interval,
        query.minutes,
    )
    return Response(200, body)


def candle_dict(candle: Candle, *, final: bool) -> dict[str, Any]:
    """A candle as a JSON object carrying the optional ``final`` flag."""
    return {
        "symbol": candle.symbol,
        "interval": candle.interval,
        "start": candle.start,
        "open": candle.open,
        "high": candle.high,
        "low": candle.low,
        "close": candle.close,
        "count": candle.count,
        "final": final,
    }


def _start(candle: Candle) -> float:
    return candle.start


def _integer(raw: str) -> int | None:
    """A non-negative decimal integer written with ASCII digits only, else None."""
    if not raw or not raw.isascii() or not raw.isdigit():
        return None
    try:
        return int(raw)
    except ValueError:  # more digits than int() accepts
        return None
