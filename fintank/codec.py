"""The one module that owns orjson and the wire format of CONTRACT.md.

Everything fintank writes to Kafka (outputs and changelogs) is turned into
bytes here; nothing goes through faust's serializers.
"""

from __future__ import annotations

import base64
from typing import Any

import orjson


def _default(obj: Any) -> Any:
    if isinstance(obj, set | frozenset):
        return sorted(obj)  # sorted: the same set always gives the same bytes
    raise TypeError(f"{type(obj).__name__} is not JSON serializable")


def dumps(obj: Any) -> bytes:
    """JSON bytes; frozen slotted dataclasses natively (fields in declaration order), sets sorted."""
    return orjson.dumps(obj, default=_default)


loads = orjson.loads
JSONDecodeError = orjson.JSONDecodeError


def payload_text(raw: bytes | None) -> str:
    """A record value as text for a dead letter: UTF-8 as is, anything else ``b64:``-prefixed."""
    if raw is None:
        return ""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return "b64:" + base64.b64encode(raw).decode("ascii")


def json_type(value: object) -> str:
    """What JSON calls a decoded value, for error messages ("a string", "an array", "null")."""
    if value is None:
        return "null"
    return {
        bool: "a boolean",
        str: "a string",
        list: "an array",
        dict: "an object",
        int: "a number",
        float: "a number",
    }.get(type(value), type(value).__name__)


def show(value: object) -> str:
    """A decoded value for an error message: its JSON type and repr, or that it is absent."""
    return "nothing (missing or null)" if value is None else f"{json_type(value)} {value!r}"


def bad_string(name: str, value: object) -> str:
    """Why ``value`` is not a valid non-empty string field ``name``."""
    if value is None:
        return f"missing field {name!r} (or null)"
    if type(value) is str:
        return f"{name} must not be empty"
    return f"{name} must be a string, got {show(value)}"


def bad_number(name: str, value: object) -> str:
    """Why ``value`` is not a valid JSON number field ``name``."""
    if value is None:
        return f"missing field {name!r} (or null)"
    return f"{name} must be a JSON number, got {show(value)}"


def key_bytes(key: str) -> bytes:
    """Keys on the wire are UTF-8 strings."""
    return key.encode("utf-8")
