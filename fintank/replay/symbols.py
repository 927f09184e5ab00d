"""``--symbol-map``: the exchange's symbols -> the symbols to put on ``ticks``.

``BTC-USDT=BTCUSDT,ETH-USDT=ETHUSDT`` inline, or the same pairs in a file,
one or more a line (commas or newlines between them, ``#`` starts a comment).
A symbol the map does not name passes unchanged.
"""

from __future__ import annotations

from pathlib import Path

from fintank.errors import FintankError


class SymbolMapError(FintankError):
    """A ``--symbol-map`` that cannot be used; the message is one line."""


def parse_symbol_map(text: str, where: str = "--symbol-map") -> dict[str, str]:
    """``"A=B, C=D"`` (commas or newlines, ``#`` comments) -> ``{"A": "B", "C": "D"}``."""
    mapping: dict[str, str] = {}
    for line in text.splitlines():
        for item in line.split("#", 1)[0].split(","):
            item = item.strip()
            if not item:
                continue
            source, sep, target = (part.strip() for part in item.partition("="))
            if not sep or not source or not target:
                raise SymbolMapError(f"{where}: {item!r} is not FROM=TO (e.g. BTC-USDT=BTCUSDT)")
            if not (_utf8(source) and _utf8(target)):
                raise SymbolMapError(f"{where}: {item!r} is not valid UTF-8 text")
            if mapping.get(source, target) != target:
                raise SymbolMapError(
                    f"{where}: {source!r} is mapped twice ({mapping[source]!r} and {target!r})"
                )
            mapping[source] = target
    if not mapping:
        raise SymbolMapError(f"{where}: no FROM=TO pair (e.g. BTC-USDT=BTCUSDT,ETH-USDT=ETHUSDT)")
    return mapping


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a command line's undecodable bytes (surrogate escapes)
        return False
    return True


def symbol_map(arg: str) -> dict[str, str]:
    """The map a ``--symbol-map`` argument names: pairs when it holds ``=``, else a file of pairs."""
    if "=" in arg:
        return parse_symbol_map(arg)
    path = Path(arg)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SymbolMapError(
            f"--symbol-map: no such file {arg!r} (give FROM=TO pairs or a file of them)"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SymbolMapError(f"--symbol-map: cannot read {arg!r}: {exc}") from None
    return parse_symbol_map(text, f"--symbol-map {arg}")
