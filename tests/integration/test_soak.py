"""The soak: 100k ticks, 10 % of them garbage, with orders flowing, through one real worker.

A worker of the built-in topology reads ten waves, 5 s apart, of 10,000 tick records
(9,000 valid random-walk ticks and 1,000 garbage records of twelve kinds:
not JSON, truncated, NaN, 1e400, prices beyond fintank's range, strings for
numbers, bid above ask, milliseconds sent as seconds, a key that disagrees,
null values, nested junk...) and 200 portfolio orders per wave (10 % invalid:
malformed, an amount of 1e308, a far-future timestamp, a key that disagrees,
a duplicate id). Each wave is produced as fast as the producer goes (rate 0);
the next starts once the worker has processed it and 5 s have passed.

Afterwards:
* the worker is still up (same pid, ``/health`` ready), and the dead letters
  are exactly the garbage: one per garbage record, located by source topic,
  partition and offset, none for a valid record;
* every component of every valid order has exactly one execution;
* memory is flat: the worker's RSS (``/proc/PID/status`` VmRSS), sampled
  every 2 s through the whole run, peaks in the second half of the run at most
  ``GROWTH_MIB`` above its peak in the first half, and never exceeds
  ``CEILING_MIB``. Tick timestamps are 10 ms apart, so the alert windows
  (300 s of event time, kept in memory by design) fill up within the first
  three waves: what grows after that grows with the input, which is what this
  bound catches.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from fintank.generators import INVALID_ORDERS, random_orders, random_walk_ticks
from fintank.peek import read_topic
from fintank.stack.worker import Worker
from tests.integration.conftest import Env
from tests.integration.load import free_port
from tests.integration.test_routing import get
from tests.support.garbage import garbage_ticks

WAVES = 10
TICKS_PER_WAVE = 10_000
GARBAGE_EVERY = 10  # every 10th tick record is garbage: 10 %
ORDERS_PER_WAVE = 200
BAD_ORDER_EVERY = 10
SAMPLE_EVERY = 2.0  # seconds between RSS samples
GROWTH_MIB = 24  # second-half peak RSS at most this much above the first-half peak
CEILING_MIB = 300  # no sample above this (the benchmark peaks at 135 MiB)
WAVE_TIMEOUT = 120  # seconds for the worker to process one wave (a bound, not a target)
WAVE_EVERY = 5.0  # seconds from one wave to the next (pacing: the run spans ~10 RSS samples a half)


@dataclass
class Sent:
    """Where every record landed, and which of them must be dead-lettered."""

    ends: dict[tuple[str, int], int] = field(default_factory=dict)  # one past the last offset
    garbage: set[tuple[str, int, int]] = field(default_factory=set)
    kinds: dict[str, int] = field(default_factory=dict)
    components: set[str] = field(default_factory=set)  # of valid orders


class RssSampler(threading.Thread):
    """VmRSS of a process every ``SAMPLE_EVERY`` s, with the time; notes if it vanished."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.samples: list[tuple[float, int]] = []  # (monotonic time, KiB)
        self.vanished = False
        self._halt = threading.Event()

    def rss_kib(self) -> int | None:
        try:
            with open(f"/proc/{self.pid}/status") as status:
                for line in status:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1])
        except FileNotFoundError:
            return None
        return None

    def run(self) -> None:
        while not self._halt.is_set():
            kib = self.rss_kib()
            if kib is None:
                self.vanished = True
                return
            self.samples.append((time.monotonic(), kib))
            self._halt.wait(SAMPLE_EVERY)

    def stop(self) -> None:
        self._halt.set()
        self.join(10)


async def send_all(
    bootstrap: str, records: list[tuple[str, str | None, bytes | None, str | None]], sent: Sent
) -> None:
    """Send (topic, key, value, garbage kind or None) records as fast as possible; note where
    each landed."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=5
    )
    await producer.start()
    try:
        futures = [
            await producer.send(topic, value, key=None if key is None else key.encode())
            for topic, key, value, _ in records
        ]
        metas = await asyncio.wait_for(asyncio.gather(*futures), 120)
    finally:
        await producer.stop()
    for (topic, _, _, kind), meta in zip(records, metas, strict=True):
        place = (topic, meta.partition)
        sent.ends[place] = max(sent.ends.get(place, 0), meta.offset + 1)
        if kind is not None:
            sent.garbage.add((topic, meta.partition, meta.offset))
            sent.kinds[kind] = sent.kinds.get(kind, 0) + 1


def bad_orders(order: dict[str, Any], accepted: dict[str, Any], now: float) -> list[Any]:
    """Invalid order records of several kinds: (key, value, kind)."""
    oid = order["portfolio_order_id"]
    return [
        (f"{oid}-junk", INVALID_ORDERS[0], "malformed"),
        (f"{oid}-hold", INVALID_ORDERS[1], "HOLD"),
        (oid, orjson.dumps({**order, "amount": 1e308}), "amount 1e308"),
        (oid, orjson.dumps({**order, "timestamp": now + 10 * 86_400}), "far future"),
        (f"not-{oid}", orjson.dumps(order), "key disagrees"),
        (accepted["portfolio_order_id"], orjson.dumps(accepted), "duplicate"),
    ]


def wave(env: Env, n: int, start: float, symbols: list[str]) -> list[Any]:
    """Wave ``n``'s records: ticks (every 10th garbage), then orders (every 10th invalid)."""
    t = env.settings.topics
    records: list[Any] = []
    first = n * TICKS_PER_WAVE
    valid = random_walk_ticks(symbols, TICKS_PER_WAVE, start, seed=n)
    kinds = 0
    for i, tick in enumerate(valid):
        tick["timestamp"] = round(start + (first + i) * 0.01, 6)  # 10 ms apart
        if i % GARBAGE_EVERY == GARBAGE_EVERY - 1:
            kinds += 1
            choices = garbage_ticks(tick["symbol"], tick["timestamp"])
            kind, key, value = choices[(n * 1000 + kinds) % len(choices)]
            records.append((t.ticks, key, value, kind))
        else:
            records.append((t.ticks, tick["symbol"], orjson.dumps(tick), None))
    orders = list(
        random_orders(
            symbols,
            ORDERS_PER_WAVE,
            start + first * 0.01,
            taxpayers=50,
            limit_share=0,
            seed=100 + n,
            id_prefix=f"soak{n}",
        )
    )
    for j, order in enumerate(orders):
        if j % BAD_ORDER_EVERY == BAD_ORDER_EVERY - 1:
            choices = bad_orders(order, orders[j - 1], time.time())
            key, value, kind = choices[(n * 100 + j) % len(choices)]
            records.append((t.orders, key, value, f"order: {kind}"))
        else:
            records.append((t.orders, order["portfolio_order_id"], orjson.dumps(order), None))
    return records


def processed_up_to(port: int, ends: dict[tuple[str, int], int]) -> bool:
    status, _, lanes = get(port, "/debug/consumer")
    return status == 200 and all(
        lanes.get(f"{topic}:{partition}", {}).get("processed", -1) >= end
        for (topic, partition), end in ends.items()
    )


def wait_for(check: Callable[[], Any], what: str, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while not (result := check()):
        assert time.monotonic() < deadline, f"timed out after {timeout}s waiting for {what}"
        time.sleep(0.5)
    return result


def test_soak_garbage_is_dead_lettered_exactly_and_memory_stays_flat(
    env: Env, start_worker: Callable[..., Worker]
) -> None:
    s = env.settings
    port = free_port()
    worker = start_worker("soak", FINTANK_WEB_PORT=str(port))
    pid = worker.pid()
    assert pid is not None
    sampler = RssSampler(pid)
    sampler.start()
    symbols = [f"{name}{env.suffix}" for name in ("VTI", "IVE", "IWS", "SPY", "QQQ")]
    start = round(time.time(), 3)
    sent = Sent()
    try:
        for n in range(WAVES):
            began = time.monotonic()
            records = wave(env, n, start, symbols)
            for topic, _key, value, kind in records:
                if kind is None and topic == s.topics.orders:
                    order = orjson.loads(value)
                    sent.components |= {
                        f"{order['portfolio_order_id']}/{i}"
                        for i, e in enumerate(order["portfolio"])
                        if e["weight"] > 0
                    }
            asyncio.run(send_all(s.bootstrap, records, sent))
            wait_for(lambda: processed_up_to(port, sent.ends), f"wave {n}", WAVE_TIMEOUT)
            assert worker.pid() == pid and not sampler.vanished, f"the worker died in wave {n}"
            time.sleep(max(0.0, began + WAVE_EVERY - time.monotonic()))
        time.sleep(2 * SAMPLE_EVERY)  # a last sample or two at rest
    finally:
        sampler.stop()

    # The worker stayed up.
    assert worker.pid() == pid and not sampler.vanished and worker.is_up()

    # Exactly the garbage is dead-lettered, once each.
    ticks_garbage = sum(1 for g in sent.garbage if g[0] == s.topics.ticks)
    assert ticks_garbage == WAVES * TICKS_PER_WAVE // GARBAGE_EVERY
    assert len({k for k in sent.kinds if not k.startswith("order:")}) == 12  # every tick kind
    letters = wait_for(
        lambda: (
            len(found := asyncio.run(read_topic(s.bootstrap, s.topics.deadletters, 60)))
            >= len(sent.garbage)
            and found
        ),
        "the dead letters",
        60,
    )
    located = [
        (r.value["source_topic"], r.value["source_partition"], r.value["source_offset"])
        for r in letters
    ]
    assert len(located) == len(set(located)), "a record was dead-lettered twice"
    assert set(located) == sent.garbage
    assert all(r.value["reason"] for r in letters)

    # Orders flowed: every component of every valid order executed exactly once.
    def executed() -> list[str] | None:
        found = asyncio.run(read_topic(s.bootstrap, s.topics.executions, 60))
        ids = [r.value["component_order_id"] for r in found]
        return ids if len(ids) >= len(sent.components) else None

    ids = wait_for(executed, "every execution", 120)
    assert sorted(ids) == sorted(sent.components)

    # Memory is flat.
    samples = sampler.samples
    assert len(samples) >= 20, f"only {len(samples)} RSS samples"
    middle = (samples[0][0] + samples[-1][0]) / 2
    first = max(kib for at, kib in samples if at <= middle) / 1024
    second = max(kib for at, kib in samples if at > middle) / 1024
    peak = max(kib for _, kib in samples) / 1024
    report = f"RSS peak first half {first:.0f} MiB, second half {second:.0f} MiB, all {peak:.0f}"
    print(report, [kib // 1024 for _, kib in samples])
    assert second <= first + GROWTH_MIB, report
    assert peak <= CEILING_MIB, report
