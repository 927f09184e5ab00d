"""Per-symbol spread monitor: a topology written with fintank's public API.

    ticks (key=symbol) ─► [Spread] ─┬─► spreads (key=symbol), one record per valid tick
                                    ├─► InfluxDB measurement `spread`, one point per valid tick
                                    └─► deadletters: ticks that `decode` refuses, with the reason
    GET /spreads/{symbol}: the symbol's averages, answered by the worker that owns the symbol

Per valid tick (docs/wire-format.md `ticks`): its spread (ask - bid), in basis points of the
mid too, and the symbol's running average spread and size-weighted mid ("VWAP"), from sums
kept in the table `spread-stats`. Tables are changelogged: a restarted worker carries on.

Run it from the repository root (FINTANK_TOPIC_TICKS, _SPREADS and _DEADLETTERS name its
topics; by default ticks, spreads and deadletters). See examples/README.md.

    fintank topics create examples.spread
    fintank worker examples.spread      # or: .venv/bin/faust -A examples.spread:app worker
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Any

import orjson

from fintank import Batch, Bolt, Out, Request, Response, State, Table, Topology


@dataclass(frozen=True, slots=True)
class Quote:
    symbol: str
    bid: float
    ask: float
    timestamp: float
    size: float  # bid_size + ask_size, the weight of its mid (1 if the tick gives none)


def number(obj: dict[str, Any], name: str) -> float:
    value: Any = obj.get(name)
    if type(value) not in (int, float):  # not a bool, not "1.5"; orjson refuses NaN, Infinity
        raise ValueError(f"{name} must be a number, got {value!r}")
    return float(value)


def decode(raw: bytes | None) -> Quote:
    """A tick's bytes -> `Quote`; an exception (why not) makes the record a dead letter."""
    obj = orjson.loads(b"null" if raw is None else raw)
    if type(obj) is not dict or type(obj.get("exchange")) is not str:
        raise ValueError("a tick is a JSON object with a string exchange")
    symbol = obj.get("symbol")
    if type(symbol) is not str or not symbol:
        raise ValueError(f"symbol must be a non-empty string, got {symbol!r}")
    bid, ask, time = (number(obj, n) for n in ("bid", "ask", "timestamp"))
    if not 0 < bid <= ask or time <= 0:
        raise ValueError(f"need 0 < bid <= ask and timestamp > 0, got {bid}, {ask}, {time}")
    sizes = [number(obj, n) for n in ("bid_size", "ask_size") if n in obj]
    if any(s < 0 for s in sizes):
        raise ValueError(f"sizes must be >= 0, got {sizes}")
    return Quote(symbol, bid, ask, time, sum(sizes) or 1.0)


@dataclass(frozen=True, slots=True)
class Sums:
    """A symbol's running sums: the value of the `spread-stats` table."""

    count: int = 0
    spread: float = 0.0
    size: float = 0.0
    mid_size: float = 0.0  # sum of mid * size

    def add(self, q: Quote) -> Sums:
        mid = (q.bid + q.ask) / 2
        return Sums(
            self.count + 1,
            self.spread + (q.ask - q.bid),  # the spread first: ask - bid is exact enough
            self.size + q.size,
            self.mid_size + mid * q.size,
        )

    def json(self, symbol: str) -> dict[str, Any]:
        avg, vwap = self.spread / self.count, self.mid_size / self.size
        return {"symbol": symbol, "count": self.count, "avg_spread": avg, "vwap_mid": vwap}


SUMS = Table("spread-stats", lambda restored: Sums(**restored), Sums)
# Line protocol, escaped as influxdb-client escapes it (docs/wire-format.md): in a tag value
# a backslash escapes ",", "=" and " "; InfluxDB keeps other backslashes as they are.
ESCAPE = str.maketrans({",": "\\,", "=": "\\=", " ": "\\ ", "\n": "\\n", "\r": "\\r", "\t": "\\t"})


def line(symbol: str, fields: dict[str, float], time: float) -> str:
    """The InfluxDB point of measurement `spread`, at ``time`` (epoch seconds) in ns."""
    tag = symbol.translate(ESCAPE)
    tag += " " if tag.endswith("\\") else ""  # a trailing backslash would escape the separator
    values = ",".join(f"{k}={float(v)!r}" for k, v in fields.items())  # keys: plain names
    secs, frac = divmod(time, 1)  # exact, where time * 1e9 would round the nanoseconds
    return f"spread,symbol={tag} {values} {int(secs) * 10**9 + round(frac * 1e9)}"


class Spread(Bolt):
    inputs = ("ticks",)
    outputs = ("spreads",)
    tables = (SUMS,)

    def __init__(self, state: State) -> None:
        super().__init__(state)
        self.sums = self.table(SUMS.name)

    def process(self, batch: Batch, now: float) -> Out:
        out = Out()
        for q in batch.values():  # Quotes: the stream decodes; what it cannot is a dead letter
            sums = (self.sums.get(q.symbol) or Sums()).add(q)
            self.sums.put(q.symbol, sums)
            spread = q.ask - q.bid
            value = {**asdict(q), "spread": spread, "spread_bps": spread / (q.bid + q.ask) * 2e4}
            value.update(sums.json(q.symbol))
            out.emit("spreads", q.symbol, value)
            fields = {k: value[k] for k in ("spread", "spread_bps", "avg_spread", "vwap_mid")}
            out.point(line(q.symbol, fields, q.timestamp))
        return out


def spread_of(bolt: Spread, request: Request) -> Response:
    """``GET /spreads/{symbol}``: the symbol's averages; 404 if it never ticked."""
    symbol = request.params["symbol"]
    sums = bolt.sums.get(symbol)
    if sums is None:
        return Response(404, {"error": f"no tick of {symbol!r} seen"})
    return Response(200, sums.json(symbol))


topic = os.environ.get  # the process edge: FINTANK_TOPIC_<NAME> names a topic, as for fintank's
topology = Topology("spreads")
topology.stream("ticks", topic("FINTANK_TOPIC_TICKS", "ticks"), decode=decode, key="symbol")
topology.stream("spreads", topic("FINTANK_TOPIC_SPREADS", "spreads"), key="symbol")
topology.stream("deadletters", topic("FINTANK_TOPIC_DEADLETTERS", "deadletters"))
topology.bolt(Spread)
topology.route("/spreads/{symbol}", spread_of, owner=Spread, key=lambda r: r.params["symbol"])


def __getattr__(name: str) -> Any:
    """``app``, the faust app, built when first asked for (``faust -A examples.spread:app``)."""
    if name != "app":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from fintank.config import Settings  # the worker's settings: FINTANK_* variables

    app = globals()["app"] = topology.app(Settings.from_env(os.environ))
    return app
