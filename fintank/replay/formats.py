"""Recorded exchange messages -> contract ticks (pure: no I/O, no clock; ``now`` is passed in).

One recorded line is one JSON message. `convert` turns it into one of:

* `Ticks`: zero or more valid contract ticks and the line's recorded time
  (epoch seconds, for pacing; None when the line has none);
* `Skip`: a message the exchange documents as carrying no quote (subscribe
  acknowledgements, heartbeats, other channels), counted and passed over;
* `Bad`: a line that cannot be converted, with the reason; the replay
  dead-letters it.

A line is converted whole or not at all: if one item of an OKX ``data`` array
is bad, the line is `Bad` and none of its ticks is sent, so the dead letter's
payload is exactly what was not replayed.

Every tick is built as contract JSON and checked by the worker's own parser
(`fintank.ticks.parse_tick`), so what the replay sends is what the worker
accepts. Formats (field names as the exchanges document them):

* ``okx``: the public websocket ``tickers`` channel push,
  ``{"arg": {"channel": "tickers", "instId": ..}, "data": [{"instId", "bidPx",
  "bidSz", "askPx", "askSz", "ts" (ms), ..}]}``. Skipped: ``event`` messages
  (subscribe, unsubscribe, error, ...), pushes of other channels, the plain
  text keepalives ``ping`` / ``pong``, an empty ``data``.
* ``binance``: the ``bookTicker`` stream, ``{"u", "s", "b", "B", "a", "A"}``,
  bare or in the combined-stream wrapper ``{"stream": "..@bookTicker", "data":
  {..}}``. The spot stream has no event time, so the tick's time is, first
  found: ``T`` (transaction time, ms; futures), ``E`` (event time, ms;
  futures), ``recv_ts`` (a recorder's receive time in epoch ms, on the line's
  top-level object), else the replay clock ``now`` (and the line has no
  recorded time: it is not paced). Skipped: subscription replies (``id``
  with ``result`` or ``error``), other streams and events.
* ``coinbase``: the Exchange ``ticker`` channel, ``{"type": "ticker",
  "product_id", "best_bid", "best_bid_size", "best_ask", "best_ask_size",
  "time" (ISO-8601)}``. Skipped: every other ``type`` (subscriptions,
  heartbeat, error, ...). A ticker without ``time`` is bad.
* ``fintank``: lines that are contract ticks already.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeAlias

from fintank.codec import JSONDecodeError, dumps, json_type, loads
from fintank.records import Tick
from fintank.replay.fields import decimal, iso_seconds, millis
from fintank.ticks import parse_tick


@dataclass(frozen=True, slots=True)
class Ticks:
    """A converted line: its ticks (maybe none) and when it was recorded (None: no recorded time)."""

    ticks: tuple[Tick, ...]
    recorded: float | None


@dataclass(frozen=True, slots=True)
class Skip:
    """A message that carries no quote, by the exchange's documentation; ``what`` names its kind."""

    what: str


@dataclass(frozen=True, slots=True)
class Bad:
    """A line that cannot be converted, and why."""

    reason: str


Converted: TypeAlias = Ticks | Skip | Bad
Converter: TypeAlias = Callable[[bytes, float, Mapping[str, str]], Converted]

# The ``exchange`` field of the ticks of each format.
EXCHANGES = {"okx": "OKX", "binance": "BINANCE", "coinbase": "COINBASE"}


def encode(tick: Tick) -> bytes:
    """A tick's contract JSON: the optional sizes only when known (never ``null``)."""
    obj: dict[str, Any] = {
        "symbol": tick.symbol,
        "exchange": tick.exchange,
        "bid": tick.bid,
        "ask": tick.ask,
        "timestamp": tick.timestamp,
    }
    if tick.bid_size is not None:
        obj["bid_size"] = tick.bid_size
    if tick.ask_size is not None:
        obj["ask_size"] = tick.ask_size
    return dumps(obj)


def _tick(
    symbols: Mapping[str, str],
    symbol: object,
    exchange: str,
    prices: dict[str, tuple[str, object]],
    timestamp: float,
) -> Tick | str:
    """Build a tick from exchange fields (``prices``: contract name -> (exchange name, value)).

    The symbol is mapped, the prices and sizes converted, and the result
    checked by the worker's parser; a reason names the exchange's field.
    """
    if type(symbol) is not str:
        return f"the symbol must be a string, got {json_type(symbol)}"
    obj: dict[str, Any] = {"symbol": symbols.get(symbol, symbol), "exchange": exchange}
    for name, (field, value) in prices.items():
        if value is None and name.endswith("_size"):
            continue  # sizes are optional in the contract
        number = decimal(field, value)
        if type(number) is str:
            return number
        obj[name] = number
    obj["timestamp"] = timestamp
    return parse_tick(dumps(obj))


def _json(line: bytes) -> dict[str, Any] | Bad:
    try:
        obj = loads(line)
    except JSONDecodeError as exc:
        return Bad(f"not valid JSON: {exc}")
    if type(obj) is not dict:
        return Bad(f"expected a JSON object, got {json_type(obj)}")
    return obj


def _name(value: object) -> str:
    """A message kind for a Skip (bounded: it is counted by name in the summary)."""
    return value[:40] if type(value) is str else json_type(value)


# ------------------------------------------------------------------------ okx


def okx(line: bytes, now: float, symbols: Mapping[str, str]) -> Converted:
    """An OKX ``tickers`` push -> one tick per item of ``data``."""
    if line.strip() in (b"ping", b"pong"):
        return Skip("keepalive")
    obj = _json(line)
    if type(obj) is Bad:
        return obj
    assert type(obj) is dict
    if "event" in obj:
        return Skip(f"event {_name(obj['event'])}")
    arg = obj.get("arg")
    if type(arg) is not dict or "channel" not in arg:
        return Bad("not an OKX push: no 'arg' object with a 'channel'")
    if arg["channel"] != "tickers":
        return Skip(f"channel {_name(arg['channel'])}")
    data = obj.get("data")
    if type(data) is not list:
        return Bad(f"'data' must be an array, got {json_type(data)}")
    if not data:
        return Skip("empty data")
    ticks: list[Tick] = []
    for i, item in enumerate(data):
        where = f"data[{i}]: " if len(data) > 1 else ""
        if type(item) is not dict:
            return Bad(f"{where}expected an object, got {json_type(item)}")
        ts = millis("ts", item.get("ts"))
        if isinstance(ts, str):
            return Bad(where + ts)
        prices = {
            "bid": ("bidPx", item.get("bidPx")),
            "ask": ("askPx", item.get("askPx")),
            "bid_size": ("bidSz", item.get("bidSz")),
            "ask_size": ("askSz", item.get("askSz")),
        }
        symbol = item.get("instId", arg.get("instId"))
        tick = _tick(symbols, symbol, EXCHANGES["okx"], prices, ts)
        if type(tick) is str:
            return Bad(where + tick)
        ticks.append(tick)  # type: ignore[arg-type]
    return Ticks(tuple(ticks), min(t.timestamp for t in ticks))


# -------------------------------------------------------------------- binance

# Where a bookTicker's time may come from, in order of preference.
BINANCE_TIMES = ("T", "E")
RECV_TS = "recv_ts"


def binance(line: bytes, now: float, symbols: Mapping[str, str]) -> Converted:
    """A Binance ``bookTicker`` (bare or combined-stream) -> one tick."""
    obj = _json(line)
    if type(obj) is Bad:
        return obj
    assert type(obj) is dict
    if "id" in obj and ("result" in obj or "error" in obj):
        return Skip("subscription reply")
    body = obj
    if "stream" in obj and "data" in obj:
        stream = obj["stream"]
        if type(stream) is not str or not stream.endswith("bookTicker"):
            return Skip(f"stream {_name(stream)}")
        body = obj["data"]
        if type(body) is not dict:
            return Bad(f"'data' must be an object, got {json_type(body)}")
    if "e" in body and body["e"] != "bookTicker":
        return Skip(f"event {_name(body['e'])}")
    recorded: float | None = None
    for name in BINANCE_TIMES:
        if name in body:
            ts = millis(name, body[name])
            if isinstance(ts, str):
                return Bad(ts)
            recorded = ts
            break
    else:
        if RECV_TS in obj:
            ts = millis(RECV_TS, obj[RECV_TS])
            if isinstance(ts, str):
                return Bad(ts)
            recorded = ts
    prices = {
        "bid": ("b (best bid price)", body.get("b")),
        "ask": ("a (best ask price)", body.get("a")),
        "bid_size": ("B (best bid qty)", body.get("B")),
        "ask_size": ("A (best ask qty)", body.get("A")),
    }
    if "s" not in body:
        return Bad("not a bookTicker: missing field 's'")
    stamp = now if recorded is None else recorded
    tick = _tick(symbols, body["s"], EXCHANGES["binance"], prices, stamp)
    if type(tick) is str:
        return Bad(tick)
    return Ticks((tick,), recorded)  # type: ignore[arg-type]


# ------------------------------------------------------------------- coinbase


def coinbase(line: bytes, now: float, symbols: Mapping[str, str]) -> Converted:
    """A Coinbase Exchange ``ticker`` message -> one tick."""
    obj = _json(line)
    if type(obj) is Bad:
        return obj
    assert type(obj) is dict
    kind = obj.get("type")
    if kind is None:
        return Bad("not a Coinbase Exchange message: no 'type'")
    if kind != "ticker":
        return Skip(f"type {_name(kind)}")
    ts = iso_seconds("time", obj.get("time"))
    if isinstance(ts, str):
        return Bad(ts)
    prices = {
        "bid": ("best_bid", obj.get("best_bid")),
        "ask": ("best_ask", obj.get("best_ask")),
        "bid_size": ("best_bid_size", obj.get("best_bid_size")),
        "ask_size": ("best_ask_size", obj.get("best_ask_size")),
    }
    if "product_id" not in obj:
        return Bad("not a ticker: missing field 'product_id'")
    tick = _tick(symbols, obj["product_id"], EXCHANGES["coinbase"], prices, ts)
    if type(tick) is str:
        return Bad(tick)
    return Ticks((tick,), ts)  # type: ignore[arg-type]


# -------------------------------------------------------------------- fintank


def fintank(line: bytes, now: float, symbols: Mapping[str, str]) -> Converted:
    """A contract tick as it is (its symbol mapped); fields outside the contract are dropped."""
    tick = parse_tick(line)
    if type(tick) is str:
        return Bad(tick)
    assert type(tick) is Tick
    mapped = symbols.get(tick.symbol)
    if mapped is not None:
        renamed = Tick(
            mapped, tick.exchange, tick.bid, tick.ask, tick.timestamp, tick.bid_size, tick.ask_size
        )
        tick = parse_tick(encode(renamed))  # checked again: the map could name an empty symbol
        if type(tick) is str:
            return Bad(tick)
        assert type(tick) is Tick
    return Ticks((tick,), tick.timestamp)


FORMATS: dict[str, Converter] = {
    "okx": okx,
    "binance": binance,
    "coinbase": coinbase,
    "fintank": fintank,
}


def convert(
    fmt: str, line: bytes, now: float, symbols: Mapping[str, str] | None = None
) -> Converted:
    """One recorded line of format ``fmt`` -> `Ticks`, `Skip` or `Bad`; never raises on bad input.

    ``now``: the replay clock (wall-clock epoch seconds), the time of a tick
    whose line has no recorded time (Binance spot without ``recv_ts``).
    A blank line is skipped.
    """
    if not line.strip():
        return Skip("blank line")
    return FORMATS[fmt](line, now, symbols or {})
