"""Seed data: random-walk ticks (and, in fintank.trading, random portfolio orders).

Pure and seeded, so tests, the benchmark and `invoke queue_ticks` share one
generator and a run can be reproduced.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

START_PRICES = {"VTI": 109.7, "IVE": 94.2, "IWS": 48.3, "SPY": 450.1, "QQQ": 380.4}


def random_walk_ticks(
    symbols: list[str],
    count: int,
    start_time: float,
    seed: int | None = None,
    step: float = 0.001,
) -> Iterator[dict[str, Any]]:
    """``count`` valid ticks round-robin over ``symbols``: bid < ask, prices walk by ~``step``.

    Timestamps start at ``start_time`` and grow by 1 ms per tick, so every
    (symbol, timestamp) is distinct: one tick is one InfluxDB point.
    """
    rng = random.Random(seed)
    mids = {s: START_PRICES.get(s, rng.uniform(20, 500)) for s in symbols}
    for i in range(count):
        symbol = symbols[i % len(symbols)]
        mid = mids[symbol] = max(0.05, mids[symbol] * (1 + rng.gauss(0, step)))
        half_spread = max(0.005, mid * rng.uniform(0.00005, 0.0004))
        yield {
            "symbol": symbol,
            "exchange": "NYSE",
            "bid": round(mid - half_spread, 4),
            "ask": round(mid + half_spread, 4),
            "timestamp": round(start_time + i * 0.001, 6),
        }


# Invalid ticks that exercise each rule of the contract; `invoke queue_ticks --invalid N` cycles them.
INVALID_TICKS: list[bytes] = [
    b"not json at all",
    b'["VTI", 1, 2]',
    b'{"exchange": "NYSE", "bid": 1.0, "ask": 1.1, "timestamp": 1763722800.0}',
    b'{"symbol": "", "exchange": "NYSE", "bid": 1.0, "ask": 1.1, "timestamp": 1763722800.0}',
    b'{"symbol": "VTI", "exchange": "NYSE", "bid": "1.0", "ask": 1.1, "timestamp": 1763722800.0}',
    b'{"symbol": "VTI", "exchange": "NYSE", "bid": NaN, "ask": 1.1, "timestamp": 1763722800.0}',
    b'{"symbol": "VTI", "exchange": "NYSE", "bid": -1.0, "ask": 1.1, "timestamp": 1763722800.0}',
    b'{"symbol": "VTI", "exchange": "NYSE", "bid": 1.2, "ask": 1.1, "timestamp": 1763722800.0}',
    b'{"symbol": "VTI", "exchange": "NYSE", "bid": 1.0, "ask": 1.1, "timestamp": 0}',
    b"\xff\xfe not utf-8",
]
