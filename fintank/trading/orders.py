"""The order validator bolt: raw portfolio-order bytes -> an accepted order, or a dead letter.

`parse_order` applies every validity rule of CONTRACT.md `orders`, returning the
reason in words instead of raising. `OrderValidator` adds the one rule that
needs state: a second record carrying an already accepted
``portfolio_order_id`` is a duplicate, while the *same* Kafka record delivered
again after a crash is not. A record is identified by its (partition, offset);
the topology keeps ``accepted: portfolio_order_id -> (partition, offset)`` in a
table and stores what `Accepted` tells it to.

orjson already rejects NaN, Infinity and numbers that overflow, so every
number it returns is finite; an integer beyond 64 bits comes back as a float
and is reported as out of range. `parse_order` adds fintank's limits
(`fintank.limits`: an amount of at most 1e100, a timestamp InfluxDB can store)
so that no cash or share count derived from an order can overflow; the
validator adds the rules that need more than the value: a timestamp too far
after ``now``, and a record key that disagrees with the portfolio_order_id.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from fintank.codec import (
    JSONDecodeError,
    bad_number,
    bad_string,
    json_type,
    loads,
    payload_text,
    show,
)
from fintank.limits import MAX_NUMBER, MAX_TIMESTAMP, bad_key, too_far_ahead
from fintank.records import DeadLetter, Emit
from fintank.trading.components import split
from fintank.trading.records import BUY, SELL, PortfolioEntry, PortfolioOrder

WEIGHT_TOLERANCE = 1e-6
DUPLICATE = "duplicate portfolio_order_id"

_NUMBER = (int, float)  # JSON numbers; ``type(True) is bool``, so booleans are not numbers
_SIDES = (BUY, SELL)


def parse_order(raw: bytes | None) -> PortfolioOrder | str:
    """Validate one record value per CONTRACT.md `orders`: a `PortfolioOrder`, or the reason."""
    if raw is None:
        return "empty record value (null)"
    try:
        obj = loads(raw)
    except JSONDecodeError as exc:
        return f"not valid JSON: {exc}"
    if type(obj) is not dict:
        return f"a portfolio order must be a JSON object, got {json_type(obj)}"

    taxpayer_id: Any = obj.get("taxpayer_id")
    if not ((type(taxpayer_id) is str and taxpayer_id) or type(taxpayer_id) is int):
        return _bad_taxpayer(taxpayer_id)
    order_id = obj.get("portfolio_order_id")
    if type(order_id) is not str or not order_id:
        return bad_string("portfolio_order_id", order_id)
    side: Any = obj.get("order_type")
    if type(side) is not str or side not in _SIDES:
        return f"order_type must be BUY or SELL, got {show(side)}"
    amount: Any = obj.get("amount")
    if type(amount) not in _NUMBER:
        return bad_number("amount", amount)
    if amount <= 0:
        return f"amount must be > 0, got {amount}"
    if amount > MAX_NUMBER:
        return (
            f"amount {amount!r} is above fintank's limit {MAX_NUMBER:g} "
            "(the cash and shares derived from it would not stay finite)"
        )
    priority: Any = obj.get("priority")
    if type(priority) is not int:
        return _bad_integer("priority", priority)
    ts: Any = obj.get("timestamp")
    if type(ts) not in _NUMBER:
        return bad_number("timestamp", ts)
    if ts <= 0:
        return f"timestamp must be > 0, got {ts}"
    if ts >= MAX_TIMESTAMP:
        return (
            f"timestamp {ts!r} is past 2262-04-11, the last time InfluxDB can store "
            "(milliseconds sent as seconds?)"
        )

    portfolio = _parse_portfolio(obj.get("portfolio"))
    if isinstance(portfolio, str):
        return portfolio
    return PortfolioOrder(
        taxpayer_id,
        order_id,
        side,
        float(amount),
        priority,
        float(ts),
        portfolio,
    )


def _parse_portfolio(portfolio: object) -> tuple[PortfolioEntry, ...] | str:
    if type(portfolio) is not list:
        if portfolio is None:
            return "missing field 'portfolio' (or null)"
        return f"portfolio must be a JSON array, got {json_type(portfolio)}"
    if not portfolio:
        return "portfolio must not be empty"
    entries = []
    first_at: dict[str, int] = {}
    for i, item in enumerate(portfolio):
        where = f"portfolio[{i}]"
        if type(item) is not dict:
            return f"{where} must be a JSON object, got {json_type(item)}"
        symbol = item.get("symbol")
        if type(symbol) is not str or not symbol:
            return bad_string(f"{where}.symbol", symbol)
        if symbol in first_at:
            return f"{where}.symbol {symbol!r} repeats portfolio[{first_at[symbol]}]"
        first_at[symbol] = i
        weight: Any = item.get("weight")
        if type(weight) not in _NUMBER:
            return bad_number(f"{where}.weight", weight)
        if weight < 0:
            return f"{where}.weight must be >= 0, got {weight}"
        if weight > 1.0 + WEIGHT_TOLERANCE:  # also keeps fsum below from overflowing
            return (
                f"portfolio weights must sum to 1 (within {WEIGHT_TOLERANCE:g}), "
                f"but {where}.weight alone is {weight!r}"
            )
        limit: Any = item.get("limit_price")
        if limit is not None:
            if type(limit) not in _NUMBER:
                return f"{where}.limit_price must be a JSON number or null, got {show(limit)}"
            if limit <= 0:
                return f"{where}.limit_price must be > 0 (or null), got {limit}"
            limit = float(limit)
        entries.append(PortfolioEntry(symbol, float(weight), limit))
    total = math.fsum(e.weight for e in entries)
    if abs(total - 1.0) > WEIGHT_TOLERANCE:
        return f"portfolio weights must sum to 1 (within {WEIGHT_TOLERANCE:g}), got {total!r}"
    return tuple(entries)


Source = tuple[int, int]  # a Kafka record's (partition, offset)


class AcceptedIds(Protocol):
    """Where accepted orders are remembered: portfolio_order_id -> (partition, offset)."""

    def get(self, key: str) -> Sequence[int] | None: ...


@dataclass(frozen=True, slots=True)
class Rejected:
    """The record is invalid or a duplicate: emit its dead letter, store nothing."""

    deadletter: DeadLetter

    def emits(self) -> list[Emit]:
        """The dead letter, keyed by its source topic."""
        return [Emit("deadletters", self.deadletter.source_topic, self.deadletter)]


@dataclass(frozen=True, slots=True)
class Accepted:
    """A new order: store ``accepted[order.portfolio_order_id] = source``, emit its components."""

    order: PortfolioOrder
    source: Source

    def emits(self) -> list[Emit]:
        """The order's components, keyed by symbol (output ``components``)."""
        return _component_emits(self.order)


@dataclass(frozen=True, slots=True)
class Redelivered:
    """The accepted record itself, delivered again: emit the same components again, store nothing.

    The components are deterministic (same ids, same content), so re-sending
    them repairs a send lost in the crash; downstream treats a
    ``component_order_id`` it has already seen as a repeat.
    """

    order: PortfolioOrder

    def emits(self) -> list[Emit]:
        """The order's components again, identical to the first time."""
        return _component_emits(self.order)


OrderResult = Rejected | Accepted | Redelivered


def _component_emits(order: PortfolioOrder) -> list[Emit]:
    return [Emit("components", c.symbol, c) for c in split(order)]


class OrderValidator:
    """Bolt: raw portfolio orders -> components (key=symbol) + dead letters (key=source topic).

    ``max_future``: seconds an order's timestamp may lie after ``now`` (None: no bound;
    the built-in topology passes ``FINTANK_MAX_FUTURE``).
    """

    outputs = ("components", "deadletters")

    def __init__(self, source_topic: str, max_future: float | None = None) -> None:
        self.source_topic = source_topic
        self.max_future = max_future

    def process(
        self,
        raw: bytes | None,
        now: float,
        source: Source,
        accepted: AcceptedIds,
        key: bytes | None = None,
    ) -> OrderResult:
        """Judge one record read at ``source`` = (partition, offset), keyed ``key``.

        ``accepted`` maps each accepted ``portfolio_order_id`` to the (partition,
        offset) of the record that was accepted (a list after a JSON round trip
        is fine). Validity is judged first, so an invalid record is rejected for
        being invalid whatever its id; then the timestamp against ``now`` and the
        key against the id (a record on the wrong partition cannot be checked for
        duplicates); duplicates last. ``now`` stamps dead letters.
        """
        order = parse_order(raw)
        if isinstance(order, str):
            return self._reject(order, raw, now)
        beyond = too_far_ahead(order.timestamp, now, self.max_future) or bad_key(
            key, "portfolio_order_id", order.portfolio_order_id
        )
        if beyond is not None:
            return self._reject(beyond, raw, now)
        seen = accepted.get(order.portfolio_order_id)
        if seen is None:
            return Accepted(order, (source[0], source[1]))
        if seen[0] == source[0] and seen[1] == source[1]:
            return Redelivered(order)
        return self._reject(DUPLICATE, raw, now)

    def _reject(self, reason: str, raw: bytes | None, now: float) -> Rejected:
        return Rejected(DeadLetter(self.source_topic, reason, payload_text(raw), now))


def _bad_integer(name: str, value: object) -> str:
    if value is None:
        return f"missing field {name!r} (or null)"
    if type(value) is float:
        return (
            f"{name} must be an integer (no fraction or exponent, at most 64 bits), got {value!r}"
        )
    return f"{name} must be an integer, got {show(value)}"


def _bad_taxpayer(value: object) -> str:
    if value is None:
        return "missing field 'taxpayer_id' (or null)"
    if type(value) is str:
        return "taxpayer_id must not be empty"
    if type(value) is float:
        return (
            "taxpayer_id must be an integer (no fraction or exponent, at most 64 bits) "
            f"or a non-empty string, got {value!r}"
        )
    return f"taxpayer_id must be an integer or a non-empty string, got {show(value)}"
