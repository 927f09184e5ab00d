"""The tick deserializer bolt: raw Kafka bytes -> `Tick`, or a dead letter saying why.

This is the hottest code in fintank, so it is written for speed: one
``orjson.loads`` per record, exact ``type() is`` checks instead of
isinstance chains, no exceptions on the happy path, and a batch entry point
so the agent pays Python's call overhead once per fetch, not once per tick.
orjson already rejects NaN, Infinity, numbers that overflow to infinity and
invalid UTF-8, so every float it hands back is finite. `parse_tick` adds
fintank's limits (`fintank.limits`: prices within [1e-100, 1e100], timestamps
InfluxDB can store), so nothing derived from a tick can overflow; the batch
entry point adds the two rules that need more than the value: a timestamp
too far after ``now``, and a record key that disagrees with the symbol.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from fintank.codec import (
    JSONDecodeError,
    bad_number,
    bad_string,
    json_type,
    loads,
    payload_text,
    show,
)
from fintank.limits import MAX_NUMBER, MAX_TIMESTAMP, MIN_PRICE, bad_key, too_far_ahead
from fintank.records import DeadLetter, Tick

_NUMBER = (int, float)  # JSON numbers; bool is a subclass of int but ``type(True) is bool``


def parse_tick(raw: bytes | None) -> Tick | str:
    """Validate one record value per CONTRACT.md `ticks`: a `Tick`, or the reason it is invalid."""
    if raw is None:
        return "empty record value (null)"
    try:
        obj = loads(raw)
    except JSONDecodeError as exc:
        return f"not valid JSON: {exc}"
    if type(obj) is not dict:
        return f"a tick must be a JSON object, got {json_type(obj)}"
    symbol = obj.get("symbol")
    if type(symbol) is not str or not symbol:
        return bad_string("symbol", symbol)
    exchange = obj.get("exchange")
    if type(exchange) is not str:
        return bad_string("exchange", exchange)
    bid: Any = obj.get("bid")
    ask: Any = obj.get("ask")
    ts: Any = obj.get("timestamp")
    if type(bid) not in _NUMBER or type(ask) not in _NUMBER or type(ts) not in _NUMBER:
        for name, value in (("bid", bid), ("ask", ask), ("timestamp", ts)):
            if type(value) not in _NUMBER:
                return bad_number(name, value)
    if bid <= 0:
        return f"bid must be > 0, got {bid}"
    if ask <= 0:
        return f"ask must be > 0, got {ask}"
    if bid > ask:
        return f"bid {bid} is above ask {ask}"
    if ts <= 0:
        return f"timestamp must be > 0, got {ts}"
    if bid < MIN_PRICE or ask > MAX_NUMBER:
        return _out_of_range(bid, ask)
    if ts >= MAX_TIMESTAMP:
        return (
            f"timestamp {ts!r} is past 2262-04-11, the last time InfluxDB can store "
            "(milliseconds sent as seconds?)"
        )
    bid_size: Any = obj.get("bid_size")
    ask_size: Any = obj.get("ask_size")
    if bid_size is not None or ask_size is not None:
        for name, value in (("bid_size", bid_size), ("ask_size", ask_size)):
            if name in obj and (type(value) not in _NUMBER or value < 0):
                return f"{name} must be a number >= 0 when present, got {show(value)}"
        bid_size = None if bid_size is None else float(bid_size)
        ask_size = None if ask_size is None else float(ask_size)
    return Tick(symbol, exchange, float(bid), float(ask), float(ts), bid_size, ask_size)


def _out_of_range(bid: float, ask: float) -> str:
    name, value = ("bid", bid) if bid < MIN_PRICE else ("ask", ask)
    return (
        f"{name} {value!r} is outside fintank's price range [{MIN_PRICE:g}, {MAX_NUMBER:g}] "
        "(what it derives from it would not stay finite)"
    )


@dataclass(slots=True)
class TickBatch:
    """What the deserializer emits for one batch: valid ticks (in order) and dead letters.

    ``offsets`` / ``dead_offsets``: the record offset of each valid tick / dead
    letter, when the caller passed offsets.
    """

    ticks: list[Tick] = field(default_factory=list)
    offsets: list[int] = field(default_factory=list)
    deadletters: list[DeadLetter] = field(default_factory=list)
    dead_offsets: list[int] = field(default_factory=list)


class TickDeserializer:
    """Bolt: raw tick values -> valid ticks + dead letters (keyed by the source topic).

    ``max_future``: seconds a tick's timestamp may lie after ``now`` (None: no bound;
    the built-in topology passes ``FINTANK_MAX_FUTURE``).
    """

    outputs = ("ticks", "deadletters")

    def __init__(self, source_topic: str, max_future: float | None = None) -> None:
        self.source_topic = source_topic
        self.max_future = max_future

    def judge(self, raw: bytes | None, now: float, key: bytes | None = None) -> Tick | str:
        """One record (keyed ``key``): its `Tick`, or the reason it is dead-lettered."""
        result = parse_tick(raw)
        if type(result) is str:
            return result
        tick: Tick = result  # type: ignore[assignment]
        return (
            too_far_ahead(tick.timestamp, now, self.max_future)
            or bad_key(key, "symbol", tick.symbol)
            or tick
        )

    def process(self, raw: bytes | None, now: float, key: bytes | None = None) -> Tick | DeadLetter:
        """One record: its `Tick`, or a `DeadLetter` stamped with wall-clock ``now``."""
        result = self.judge(raw, now, key)
        if type(result) is str:
            return DeadLetter(self.source_topic, result, payload_text(raw), now)
        return result  # type: ignore[return-value]

    def process_batch(
        self,
        raws: list[bytes | None],
        now: float,
        offsets: list[int] | None = None,
        keys: list[bytes | None] | None = None,
    ) -> TickBatch:
        """Many records at once, in order; ``now`` stamps the batch's dead letters.

        With ``offsets`` (one per record) the result also lists each valid tick's offset;
        with ``keys`` (one per record) a tick whose key is not its symbol is dead-lettered.
        """
        batch = TickBatch()
        ticks = batch.ticks
        kept = batch.offsets
        latest = math.inf if self.max_future is None else now + self.max_future
        for i, raw in enumerate(raws):
            result = parse_tick(raw)
            if type(result) is not str:
                # The two rules beyond the value, inline: this loop is the hot path.
                tick: Tick = result  # type: ignore[assignment]
                if tick.timestamp > latest:
                    result = too_far_ahead(tick.timestamp, now, self.max_future) or ""
                elif keys is not None:
                    key = keys[i]
                    if key is not None and key != tick.symbol.encode():
                        result = bad_key(key, "symbol", tick.symbol) or ""
            if type(result) is str:
                batch.deadletters.append(
                    DeadLetter(self.source_topic, result, payload_text(raw), now)
                )
                if offsets is not None:
                    batch.dead_offsets.append(offsets[i])
            else:
                ticks.append(result)  # type: ignore[arg-type]
                if offsets is not None:
                    kept.append(offsets[i])
        return batch
