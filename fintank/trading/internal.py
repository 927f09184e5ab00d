"""Strict readers of the records fintank's bolts pass to each other: a record, or the reason.

fintank writes ``fintank-components``, ``fills`` and ``fintank-positions``
itself, but anyone with access to the cluster can write to them too, and a
record a bolt cannot read must not stop the worker: it is dead-lettered with
the reason and the partition goes on (docs/wire-format.md, "Internal topics").
So these readers check every field a bolt uses, its JSON type, and that every
number is finite and within `fintank.limits.MAX_DERIVED` (what fintank derives
stays far below it), returning the reason in words instead of raising. The
``*_from_json`` functions of `fintank.trading.records` stay for table values,
which only fintank writes.
"""

from __future__ import annotations

from typing import Any

from fintank.codec import JSONDecodeError, bad_number, bad_string, json_type, loads, show
from fintank.limits import MAX_DERIVED, MAX_NUMBER, bad_key
from fintank.trading.records import (
    BUY,
    SELL,
    ComponentOrder,
    Execution,
    TaxpayerId,
    taxpayer_key,
)

_NUMBER = (int, float)  # JSON numbers; ``type(True) is bool``, so booleans are not numbers
_SIDES = (BUY, SELL)
# A component's amount is round(order amount x weight, 6): at most 1e100 x (1 + 1e-6).
_MAX_COMPONENT_AMOUNT = 2 * MAX_NUMBER
_FILL_TEXT = (
    "portfolio_order_id",
    "component_order_id",
    "market_order_id",
    "execution_id",
    "fill_id",
    "symbol",
)
_FILL_NUMBERS = (
    "filled_amount",
    "filled_shares",
    "filled_price",
    "delta_shares_position",
    "delta_cash_position",
    "timestamp",
)


class _Bad(Exception):
    """A field is wrong: the reason (only inside this module; readers return it as a value)."""


def parse_component(raw: bytes | None, key: bytes | None = None) -> ComponentOrder | str:
    """A `ComponentOrder` from a ``fintank-components`` record keyed ``key``, or the reason."""
    try:
        obj = _object(raw, "a component order")
        limit: Any = obj.get("limit_price")
        if limit is not None:
            limit = _number(obj, "limit_price", positive=True)
        amount = _number(obj, "amount", bound=_MAX_COMPONENT_AMOUNT)
        if amount < 0:
            raise _Bad(f"amount must be >= 0, got {amount!r}")
        comp = ComponentOrder(
            _taxpayer(obj),
            _text(obj, "portfolio_order_id"),
            _text(obj, "component_order_id"),
            _side(obj),
            _text(obj, "symbol"),
            amount,
            _integer(obj, "priority"),
            limit,
            _number(obj, "timestamp"),
            _optional_offset(obj, "source_partition"),
            _optional_offset(obj, "source_offset"),
        )
    except _Bad as bad:
        return str(bad)
    return bad_key(key, "symbol", comp.symbol) or comp


def parse_fill(raw: bytes | None) -> dict[str, Any] | str:
    """A fill record (as on ``fills``) as its JSON object, each field checked, or the reason."""
    try:
        obj = _object(raw, "a fill")
        _check_fill(obj)
    except _Bad as bad:
        return str(bad)
    return obj


def parse_position_event(raw: bytes | None, key: bytes | None = None) -> dict[str, Any] | str:
    """A ``fintank-positions`` record keyed ``key``: ``{"taxpayer_id"[, "fill"]}``, or the reason."""
    try:
        obj = _object(raw, "a positions record")
        taxpayer = _taxpayer(obj)
        fill = obj.get("fill")
        if fill is not None:
            if type(fill) is not dict:
                raise _Bad(f"fill must be a JSON object, got {json_type(fill)}")
            _check_fill(fill, "fill.")
            _optional_offset(obj, "source_partition")
            _optional_offset(obj, "source_offset")
    except _Bad as bad:
        return str(bad)
    return bad_key(key, "taxpayer key", taxpayer_key(taxpayer)) or obj


def parse_execution(obj: object) -> Execution | str:
    """An `Execution` from a decoded ``executions`` record (the ledger's replay), or the reason."""
    try:
        if type(obj) is not dict:
            raise _Bad(f"an execution must be a JSON object, got {json_type(obj)}")
        return Execution(
            _taxpayer(obj),
            _text(obj, "portfolio_order_id"),
            _text(obj, "component_order_id"),
            _text(obj, "market_order_id"),
            _text(obj, "execution_id"),
            _side(obj),
            _text(obj, "symbol"),
            _number(obj, "requested_amount"),
            _number(obj, "requested_shares"),
            _number(obj, "requested_price"),
            _number(obj, "quote_timestamp"),
            _number(obj, "timestamp"),
        )
    except _Bad as bad:
        return str(bad)


def _check_fill(obj: dict[str, Any], where: str = "") -> None:
    _taxpayer(obj, where)
    _side(obj, where)
    for name in _FILL_TEXT:
        _text(obj, name, where)
    for name in _FILL_NUMBERS:
        _number(obj, name, where=where)


def _object(raw: bytes | None, what: str) -> dict[str, Any]:
    if raw is None:
        raise _Bad("empty record value (null)")
    try:
        obj = loads(raw)
    except JSONDecodeError as exc:
        raise _Bad(f"not valid JSON: {exc}") from None
    if type(obj) is not dict:
        raise _Bad(f"{what} must be a JSON object, got {json_type(obj)}")
    return obj


def _text(obj: dict[str, Any], name: str, where: str = "") -> str:
    value = obj.get(name)
    if type(value) is not str or not value:
        raise _Bad(bad_string(where + name, value))
    return value


def _taxpayer(obj: dict[str, Any], where: str = "") -> TaxpayerId:
    value = obj.get("taxpayer_id")
    if (type(value) is str and value) or type(value) is int:
        return value
    raise _Bad(f"{where}taxpayer_id must be an integer or a non-empty string, got {show(value)}")


def _side(obj: dict[str, Any], where: str = "") -> str:
    value = obj.get("order_type")
    if type(value) is not str or value not in _SIDES:
        raise _Bad(f"{where}order_type must be BUY or SELL, got {show(value)}")
    return value


def _integer(obj: dict[str, Any], name: str) -> int:
    value = obj.get(name)
    if type(value) is not int:
        raise _Bad(f"{name} must be an integer, got {show(value)}")
    return value


def _optional_offset(obj: dict[str, Any], name: str) -> int | None:
    value = obj.get(name)
    if value is None:
        return None
    if type(value) is not int or value < 0:
        raise _Bad(f"{name} must be an integer >= 0 or absent, got {show(value)}")
    return value


def _number(
    obj: dict[str, Any],
    name: str,
    bound: float = MAX_DERIVED,
    positive: bool = False,
    where: str = "",
) -> float:
    value: Any = obj.get(name)
    if type(value) not in _NUMBER:
        raise _Bad(bad_number(where + name, value))
    number = float(value)  # orjson's floats are finite; a 64-bit integer fits a float
    if not -bound <= number <= bound:
        raise _Bad(f"{where}{name} {number!r} is beyond fintank's limit {bound:g}")
    if positive and number <= 0:
        raise _Bad(f"{where}{name} must be > 0, got {number!r}")
    return number
