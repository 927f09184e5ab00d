"""Exchange replay: recorded market data (OKX, Binance, Coinbase, fintank) -> contract ticks.

`formats` converts one recorded line (pure), `pacing` schedules it (pure),
`symbols` reads ``--symbol-map``, and `run` is the edge that reads the file,
sends to Kafka and reports. ``samples/`` holds a small recording per format.
"""

from importlib.resources import files
from importlib.resources.abc import Traversable

from fintank.replay.formats import FORMATS, Bad, Skip, Ticks, convert, encode
from fintank.replay.pacing import Retimer, Schedule
from fintank.replay.symbols import SymbolMapError, parse_symbol_map, symbol_map

__all__ = [
    "FORMATS",
    "Bad",
    "Retimer",
    "Schedule",
    "Skip",
    "SymbolMapError",
    "Ticks",
    "convert",
    "encode",
    "parse_symbol_map",
    "samples",
    "symbol_map",
]


def samples() -> Traversable:
    """The folder of sample recordings shipped with fintank (``okx.jsonl``, ...)."""
    return files("fintank.replay") / "samples"
