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


def random_orders(
    symbols: list[str],
    count: int,
    start_time: float,
    taxpayers: int = 100,
    limit_share: float = 0.2,
    seed: int | None = None,
    id_prefix: str = "po",
) -> Iterator[dict[str, Any]]:
    """``count`` valid portfolio orders over ``symbols``: weights sum to 1, BUY or SELL.

    About ``limit_share`` of the components carry a limit price within ±0.5 %
    of the symbol's start price, so some execute at once and some rest.
    Weights are multiples of 1/1000 whose sum is exactly 1.
    """
    rng = random.Random(seed)
    run = rng.getrandbits(32)
    for i in range(count):
        k = rng.randint(1, len(symbols))
        chosen = rng.sample(symbols, k)
        cuts = sorted(rng.sample(range(1, 1000), k - 1)) if k > 1 else []
        weights = [(b - a) / 1000 for a, b in zip([0, *cuts], [*cuts, 1000], strict=True)]
        portfolio: list[dict[str, Any]] = []
        for symbol, weight in zip(chosen, weights, strict=True):
            entry: dict[str, Any] = {"symbol": symbol, "weight": weight}
            if rng.random() < limit_share:
                base = START_PRICES.get(symbol, 100.0)
                entry["limit_price"] = round(base * rng.uniform(0.995, 1.005), 2)
            portfolio.append(entry)
        yield {
            "taxpayer_id": rng.randint(1, max(1, taxpayers)),
            "portfolio_order_id": f"{id_prefix}-{run:08x}-{i}",
            "order_type": rng.choice(["BUY", "SELL"]),
            "amount": round(rng.uniform(100, 10_000), 2),
            "priority": rng.randint(1, 3),
            "timestamp": round(start_time + i * 0.001, 6),
            "portfolio": portfolio,
        }


INVALID_ORDERS: list[bytes] = [
    b"{not json",
    b'{"taxpayer_id": 1, "portfolio_order_id": "bad-1", "order_type": "HOLD", "amount": 10,'
    b' "priority": 1, "timestamp": 1763722800.5, "portfolio": [{"symbol": "VTI", "weight": 1}]}',
    b'{"taxpayer_id": 1, "portfolio_order_id": "bad-2", "order_type": "BUY", "amount": 10,'
    b' "priority": 1, "timestamp": 1763722800.5,'
    b' "portfolio": [{"symbol": "VTI", "weight": 0.5}, {"symbol": "IVE", "weight": 0.4}]}',
    b'{"taxpayer_id": 1, "portfolio_order_id": "bad-3", "order_type": "BUY", "amount": -5,'
    b' "priority": 1, "timestamp": 1763722800.5, "portfolio": [{"symbol": "VTI", "weight": 1}]}',
]
