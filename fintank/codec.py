"""The one module that owns orjson and the wire format of CONTRACT.md.

Faust is told to use the ``"fintank-orjson"`` codec registered here rather than
its own json module (whether faust picks orjson has changed between versions).
"""

from __future__ import annotations

import base64
from typing import Any

import orjson
from faust.serializers import codecs

CODEC_NAME = "fintank-orjson"

# orjson serialises frozen slotted dataclasses natively, fields in declaration order.
dumps = orjson.dumps
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


def key_bytes(key: str) -> bytes:
    """Keys on the wire are UTF-8 strings."""
    return key.encode("utf-8")


class OrjsonCodec(codecs.Codec):
    """Faust codec: objects <-> UTF-8 JSON bytes through orjson."""

    def _dumps(self, obj: Any) -> bytes:
        return orjson.dumps(obj)

    def _loads(self, s: bytes) -> Any:
        return orjson.loads(s)


def register() -> None:
    """Make ``"fintank-orjson"`` usable as a faust ``value_serializer`` (idempotent)."""
    codecs.register(CODEC_NAME, OrjsonCodec())


register()
