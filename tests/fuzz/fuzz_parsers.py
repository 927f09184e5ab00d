"""An atheris (libFuzzer) target over every parser of fintank's inputs: run as a script.

    python tests/fuzz/fuzz_parsers.py CORPUS_DIR -runs=20000 -max_total_time=60

The first byte of an input picks the reader (ticks, orders, components, fills,
positions) and the next four are a record key; the rest is the record value.
Each reader must return its record or a reason (a non-empty string), never
raise: an exception, or a result of another kind, is a crash libFuzzer reports
(and the script exits non-zero). `write_seeds` fills a corpus with valid
records and near misses, so mutation starts next to the deep rules.
`tests/property/test_atheris_fuzz.py` runs it for a bounded time.
"""

from __future__ import annotations

import sys
from pathlib import Path

import atheris
import orjson

with atheris.instrument_imports(include=["fintank"]):
    from fintank.records import Tick
    from fintank.ticks import TickDeserializer
    from fintank.trading.internal import parse_component, parse_fill, parse_position_event
    from fintank.trading.orders import OrderValidator, Rejected

NOW = 1_763_722_800.0
TICKS = TickDeserializer("ticks", max_future=86_400.0)
ORDERS = OrderValidator("orders", max_future=86_400.0)
ACCEPTED = {"po-1": (0, 1)}


def one(data: bytes) -> None:
    if len(data) < 5:
        return
    target, key, value = data[0] % 5, data[1:5].rstrip(b"\x00") or None, data[5:]
    if target == 0:
        tick = TICKS.judge(value, NOW, key)
        assert isinstance(tick, Tick) or (isinstance(tick, str) and tick), tick
        batch = TICKS.process_batch([value, None], NOW, [0, 1], [key, None])
        assert len(batch.ticks) + len(batch.deadletters) == 2
    elif target == 1:
        result = ORDERS.process(value, NOW, (0, 7), ACCEPTED, key)
        assert not isinstance(result, Rejected) or result.deadletter.reason
    else:
        if target == 2:
            record: object = parse_component(value, key)
        elif target == 3:
            record = parse_fill(value)
        else:
            record = parse_position_event(value, key)
        assert not isinstance(record, str) or record, "an empty reason"


def write_seeds(folder: Path) -> None:
    """Valid records of each kind and a few near misses, as corpus files."""
    tick = {"symbol": "VTI", "exchange": "NYSE", "bid": 109.71, "ask": 109.74, "timestamp": NOW}
    order = {
        "taxpayer_id": 42,
        "portfolio_order_id": "po-2",
        "order_type": "BUY",
        "amount": 1000.0,
        "priority": 1,
        "timestamp": NOW,
        "portfolio": [{"symbol": "VTI", "weight": 0.5}, {"symbol": "IVE", "weight": 0.5}],
    }
    component = {
        "taxpayer_id": 42,
        "portfolio_order_id": "po-2",
        "component_order_id": "po-2/0",
        "order_type": "BUY",
        "symbol": "VTI",
        "amount": 500.0,
        "priority": 1,
        "limit_price": None,
        "timestamp": NOW,
    }
    fill = {
        "taxpayer_id": 42,
        "portfolio_order_id": "po-2",
        "component_order_id": "po-2/0",
        "market_order_id": "po-2/0/m",
        "execution_id": "po-2/0/x",
        "fill_id": "po-2/0/f",
        "order_type": "BUY",
        "symbol": "VTI",
        "filled_amount": 500.0,
        "filled_shares": 4.5,
        "filled_price": 109.74,
        "delta_shares_position": 4.5,
        "delta_cash_position": -500.0,
        "timestamp": NOW,
    }
    seeds = [
        (0, b"VTI", orjson.dumps(tick)),
        (0, b"VTI", orjson.dumps({**tick, "bid": 1e-100, "ask": 1e100})),
        (0, b"", orjson.dumps({**tick, "timestamp": NOW * 1000})),
        (1, b"po-2", orjson.dumps(order)),
        (1, b"po-2", orjson.dumps({**order, "amount": 1e308})),
        (2, b"VTI", orjson.dumps(component)),
        (3, b"", orjson.dumps(fill)),
        (4, b"42", orjson.dumps({"taxpayer_id": 42, "fill": fill})),
        (4, b"42", orjson.dumps({"taxpayer_id": "42"})),
    ]
    folder.mkdir(parents=True, exist_ok=True)
    for i, (target, key, value) in enumerate(seeds):
        (folder / f"seed-{i}").write_bytes(bytes([target]) + key[:4].ljust(4, b"\x00") + value)


if __name__ == "__main__":
    corpus = [a for a in sys.argv[1:] if not a.startswith("-")]
    for folder in corpus:
        write_seeds(Path(folder))
    atheris.Setup(sys.argv, one)
    atheris.Fuzz()
