"""A steady, seeded mixed load for the engine fault tests, sent from a background thread.

Ticks: each symbol's mid swings +-1 % around its base price (a sine of period
``period`` seconds plus seeded noise), so a resting BUY limit a little below the
ask crosses when the price swings down and a SELL limit a little above the bid
crosses when it swings up. Among them: a few late ticks (valid, older than the
symbol's newest, so persisted but not a new quote), ticks with sizes, one symbol
on the empty exchange, and invalid ticks.

Orders: market and limit components (limits placed near the load's own current
quote), some taxpayer ids written as text ("7" is taxpayer 7), weights of 0,
invalid orders (including one reusing an accepted order's id, and invalid
records followed by a valid one with the same id) and duplicates (a second
record with an accepted portfolio_order_id, same bytes or changed amount).

Every record is recorded with the (partition, offset) Kafka gave it, so a test
knows exactly which records must be dead-lettered, and with which reason
(`fintank.ticks.parse_tick` / `fintank.trading.orders.parse_order` name it).

`finish` ends the main phase; until `stop`, the load then keeps sending *sweep*
rounds: every symbol's quote to 3 % below and 3 % above its base, which crosses
every limit the load can have placed, whenever its component reached the book.
"""

from __future__ import annotations

import asyncio
import math
import random
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from fintank.config import Settings
from fintank.generators import INVALID_ORDERS, INVALID_TICKS
from fintank.ticks import parse_tick
from fintank.trading.orders import DUPLICATE, parse_order

SWING = 0.01  # the mid swings +-1 % around the base ...
NOISE = 0.0003  # ... plus this much (sd, relative) noise
LIMIT_GAP = (0.0005, 0.004)  # limits this far (relative) inside the current quote
SWEEP = 0.03  # sweep rounds move the mid 3 % below and above the base: crosses every limit


def free_port(avoid: tuple[int, ...] = ()) -> int:
    """A TCP port nobody listens on now, for a worker's web server.

    Not the conftest's fixed 16066 (other tests may run workers there at the same
    time) and below Linux's ephemeral range, where clients' own ports come from.
    """
    pick = random.SystemRandom()
    while True:
        port = pick.randrange(20_000, 30_000)
        if port in avoid:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port


@dataclass(frozen=True, slots=True)
class Sent:
    """Where Kafka put one record the load sent, and what it was."""

    topic: str
    partition: int
    offset: int
    key: str | None
    value: bytes | None

    @property
    def source(self) -> tuple[str, int, int]:
        """The record's identity, as a dead letter names it."""
        return (self.topic, self.partition, self.offset)


@dataclass(frozen=True, slots=True)
class Bad:
    """A record that must be dead-lettered exactly once, with this reason."""

    sent: Sent
    reason: str


class MixedLoad:
    """Ticks and portfolio orders (valid and not) at steady rates, on a background thread."""

    def __init__(
        self,
        settings: Settings,
        symbols: list[str],
        *,
        seed: int,
        id_prefix: str,
        tick_rate: float = 400.0,
        order_rate: float = 8.0,
        taxpayers: int = 12,
        limit_share: float = 0.35,
        bad_tick_every: int = 100,
        late_tick_every: int = 150,
        bad_order_share: float = 0.12,
        duplicate_share: float = 0.12,
        period: float = 10.0,
        max_duration: float = 150.0,
        sweep_every: float = 2.0,
    ) -> None:
        assert tick_rate <= 1000, "timestamps are 1/tick_rate apart, late ones half that"
        self.bootstrap = settings.bootstrap
        self.ticks_topic = settings.topics.ticks
        self.orders_topic = settings.topics.orders
        self.symbols = list(symbols)
        self.id_prefix = id_prefix
        self.tick_rate = tick_rate
        self.order_rate = order_rate
        self.taxpayers = taxpayers
        self.limit_share = limit_share
        self.bad_tick_every = bad_tick_every
        self.late_tick_every = late_tick_every
        self.bad_order_share = bad_order_share
        self.duplicate_share = duplicate_share
        self.period = period
        self.max_duration = max_duration
        self.sweep_every = sweep_every

        # Two streams, so the orders do not depend on how many ticks went out between them.
        self.rng = random.Random(seed)  # ticks
        self.order_rng = random.Random(seed + 1)
        self.base = {s: self.rng.uniform(20, 400) for s in self.symbols}
        self.phase = {s: self.rng.uniform(0, 2 * math.pi) for s in self.symbols}
        exchanges = ["NYSE", "ARCA", "NASDAQ"]
        self.exchange = {s: exchanges[i % len(exchanges)] for i, s in enumerate(self.symbols)}
        self.exchange[self.symbols[-1]] = ""  # valid: "exchange (may be empty)"
        self.quote: dict[str, dict[str, Any]] = {}  # symbol -> newest tick the load made

        # What was sent (appended by the load's thread once Kafka acknowledged it).
        self.ticks: list[tuple[Sent, dict[str, Any]]] = []  # valid ticks
        self.orders: list[tuple[Sent, dict[str, Any]]] = []  # valid (accepted) orders
        self.bad: list[Bad] = []  # must be dead-lettered once each
        self.sweeps = 0
        self.sweep_ticks: set[tuple[str, float]] = set()  # (symbol, timestamp) of sweep ticks

        self._t0 = 0.0  # event time of tick 0
        self._tick_i = 0
        self._order_j = 0
        self._recent: list[dict[str, Any]] = []  # ticks of the last few seconds (for late ones)
        self._queue: list[tuple[str, str | None, bytes | None, str, Any]] = []
        self._started = 0.0
        self._finish = threading.Event()
        self._stop = threading.Event()
        self.main_done = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    # ------------------------------------------------------------ control (test thread)
    def start(self) -> MixedLoad:
        self._started = time.monotonic()
        self._thread = threading.Thread(target=self._main, name="mixed-load", daemon=True)
        self._thread.start()
        return self

    @property
    def elapsed(self) -> float:
        """Seconds since `start`."""
        return time.monotonic() - self._started

    def check(self) -> None:
        """Raise what went wrong on the load's thread, if anything did."""
        if self._error is not None:
            raise AssertionError(f"the load failed: {self._error!r}") from self._error

    def finish(self, timeout: float = 60) -> None:
        """End the main phase (sweep rounds go on until `stop`); wait until it has ended."""
        self._finish.set()
        if not self.main_done.wait(timeout):
            self.check()
            raise AssertionError(f"the load's main phase did not end in {timeout}s")
        self.check()

    def stop(self, timeout: float = 60) -> None:
        """Stop sending (after the main phase, if it still runs) and wait for the thread."""
        self._finish.set()
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            assert not self._thread.is_alive(), f"the load did not stop in {timeout}s"
        self.check()

    # ------------------------------------------------------------ the load's thread
    def _main(self) -> None:
        try:
            asyncio.run(self._run())
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            self._error = exc
        finally:
            self.main_done.set()

    async def _run(self) -> None:
        producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap,
            enable_idempotence=True,  # a retried send must not put a record on a topic twice
            linger_ms=5,
            request_timeout_ms=30_000,
        )
        await producer.start()
        try:
            self._t0 = round(time.time(), 3)
            while not self._finish.is_set() and self.elapsed < self.max_duration:
                elapsed = self.elapsed
                while self._tick_i < int(elapsed * self.tick_rate):
                    self._next_tick()
                while self._order_j < int(elapsed * self.order_rate):
                    self._next_order()
                await self._send(producer)
                await asyncio.sleep(0.05)
            self.main_done.set()
            next_sweep = 0.0
            while not self._stop.is_set():
                if time.monotonic() >= next_sweep:
                    self._sweep()
                    await self._send(producer)
                    next_sweep = time.monotonic() + self.sweep_every
                await asyncio.sleep(0.1)
        finally:
            await producer.stop()

    async def _send(self, producer: AIOKafkaProducer) -> None:
        """Send what was queued (in order), then record where Kafka put each record."""
        queued, self._queue = self._queue, []
        futures = []
        for topic, key, value, _, _ in queued:
            raw_key = None if key is None else key.encode()
            futures.append(await producer.send(topic, value=value, key=raw_key))
        metas = await asyncio.wait_for(asyncio.gather(*futures), 60)
        for (topic, key, value, kind, info), meta in zip(queued, metas, strict=True):
            sent = Sent(topic, meta.partition, meta.offset, key, value)
            if kind == "tick":
                self.ticks.append((sent, info))
            elif kind == "order":
                self.orders.append((sent, info))
            else:
                self.bad.append(Bad(sent, info))

    def _queue_tick(self, tick: dict[str, Any]) -> None:
        self._queue.append((self.ticks_topic, tick["symbol"], orjson.dumps(tick), "tick", tick))

    def _queue_order(self, order: dict[str, Any]) -> None:
        key = order["portfolio_order_id"]
        self._queue.append((self.orders_topic, key, orjson.dumps(order), "order", order))

    def _queue_bad(self, topic: str, key: str | None, raw: bytes | None, reason: str) -> None:
        self._queue.append((topic, key, raw, "bad", reason))

    # ------------------------------------------------------------ ticks
    def _make_tick(self, symbol: str, mid: float, timestamp: float) -> dict[str, Any]:
        half = mid * self.rng.uniform(0.00005, 0.0003)
        tick: dict[str, Any] = {
            "symbol": symbol,
            "exchange": self.exchange[symbol],
            "bid": round(mid - half, 4),
            "ask": round(mid + half, 4),
            "timestamp": timestamp,
        }
        assert 0 < tick["bid"] < tick["ask"]
        return tick

    def _timestamp(self, i: int) -> float:
        return round(self._t0 + i / self.tick_rate, 6)

    def _next_tick(self) -> None:
        i = self._tick_i
        self._tick_i += 1
        symbol = self.symbols[i % len(self.symbols)]
        t = i / self.tick_rate
        swing = SWING * math.sin(2 * math.pi * t / self.period + self.phase[symbol])
        mid = self.base[symbol] * (1 + swing) * (1 + max(-4 * NOISE, self.rng.gauss(0, NOISE)))
        tick = self._make_tick(symbol, mid, self._timestamp(i))
        if self.rng.random() < 0.05:
            tick["bid_size"] = self.rng.randint(0, 900)
            tick["ask_size"] = round(self.rng.uniform(0, 900), 2)
        self.quote[symbol] = tick
        self._queue_tick(tick)
        self._recent.append(tick)
        del self._recent[: -int(self.tick_rate * 3)]
        if i % self.late_tick_every == self.late_tick_every - 1 and len(self._recent) > 100:
            # Valid but late: half a tick before one sent a second or two ago (so no
            # other tick of the symbol has this time: each tick is one InfluxDB point;
            # popped, so no second late tick is made from the same one).
            old = self._recent.pop(self.rng.randrange(0, len(self._recent) // 2))
            late = self._make_tick(
                old["symbol"],
                (old["bid"] + old["ask"]) / 2,
                round(old["timestamp"] - 0.5 / self.tick_rate, 6),
            )
            self._queue_tick(late)
        if i % self.bad_tick_every == self.bad_tick_every - 1:
            self._bad_tick(i // self.bad_tick_every)

    def _bad_tick(self, n: int) -> None:
        symbol = self.rng.choice(self.symbols)
        now = self._timestamp(self._tick_i)
        extra: list[bytes | None] = [
            None,
            orjson.dumps(
                {"symbol": symbol, "exchange": "NYSE", "bid": 1.0, "ask": 1.1, "timestamp": now}
            )[:-1],  # truncated JSON
            orjson.dumps({"symbol": symbol, "bid": 1.0, "ask": 1.1, "timestamp": now}),
            orjson.dumps(
                {"symbol": symbol, "exchange": "NYSE", "bid": 1, "ask": 2, "timestamp": "1"}
            ),
            orjson.dumps(
                {
                    "symbol": symbol,
                    "exchange": "NYSE",
                    "bid": 1.0,
                    "ask": 1.1,
                    "timestamp": now,
                    "bid_size": -1,
                }
            ),
            orjson.dumps(
                {"symbol": symbol, "exchange": "NYSE", "bid": 0, "ask": 1.1, "timestamp": now}
            ),
        ]
        choices = [*INVALID_TICKS, *extra]
        raw = choices[n % len(choices)]
        reason = parse_tick(raw)
        assert isinstance(reason, str), raw
        # Null keys land on any partition (Kafka wants a key or a value, though).
        key = None if n % 3 == 0 and raw is not None else symbol
        self._queue_bad(self.ticks_topic, key, raw, reason)

    def _sweep(self) -> None:
        """Every symbol to 3 % below, 3 % above, then back to its base: every limit crosses."""
        self.sweeps += 1
        for level in (1 - SWEEP, 1 + SWEEP, 1.0):
            for symbol in self.symbols:
                i = self._tick_i
                self._tick_i += 1
                tick = self._make_tick(symbol, self.base[symbol] * level, self._timestamp(i))
                self.quote[symbol] = tick
                self.sweep_ticks.add((symbol, tick["timestamp"]))
                self._queue_tick(tick)

    # ------------------------------------------------------------ orders
    def _next_order(self) -> None:
        j = self._order_j
        self._order_j += 1
        accepted = [o for _, o in self.orders[-60:]] + [
            info for _, _, _, kind, info in self._queue if kind == "order"
        ]
        r = self.order_rng.random()
        if r < self.duplicate_share and accepted:
            self._duplicate(self.order_rng.choice(accepted))
        elif r < self.duplicate_share + self.bad_order_share:
            self._bad_order(j, accepted)
        else:
            self._queue_order(self._valid_order(j))

    def _valid_order(self, j: int) -> dict[str, Any]:
        rng = self.order_rng
        side = rng.choice(["BUY", "SELL"])
        k = rng.randint(1, min(4, len(self.symbols)))
        chosen = rng.sample(self.symbols, k)
        cuts = sorted(rng.sample(range(1, 1000), k - 1)) if k > 1 else []
        weights = [(b - a) / 1000 for a, b in zip([0, *cuts], [*cuts, 1000], strict=True)]
        portfolio: list[dict[str, Any]] = []
        for symbol, weight in zip(chosen, weights, strict=True):
            entry: dict[str, Any] = {"symbol": symbol, "weight": weight}
            quote = self.quote.get(symbol)
            if quote is not None and rng.random() < self.limit_share:
                gap = rng.uniform(*LIMIT_GAP)
                if side == "BUY":
                    entry["limit_price"] = round(quote["ask"] * (1 - gap), 4)
                else:
                    entry["limit_price"] = round(quote["bid"] * (1 + gap), 4)
            elif rng.random() < 0.05:
                entry["limit_price"] = None  # "absent, null or > 0"
            portfolio.append(entry)
        if rng.random() < 0.1:
            spare = [s for s in self.symbols if s not in chosen]
            if spare:
                portfolio.insert(
                    rng.randrange(len(portfolio) + 1), {"symbol": spare[0], "weight": 0}
                )
        taxpayer: int | str = rng.randint(1, self.taxpayers)
        if rng.random() < 0.2:
            taxpayer = str(taxpayer)  # the same taxpayer as the integer
        return {
            "taxpayer_id": taxpayer,
            "portfolio_order_id": f"{self.id_prefix}-{j}",
            "order_type": side,
            "amount": round(rng.uniform(100, 5_000), 2),
            "priority": rng.randint(1, 3),
            "timestamp": self._timestamp(self._tick_i),
            "portfolio": portfolio,
        }

    def _duplicate(self, original: dict[str, Any]) -> None:
        """A second record with an accepted portfolio_order_id (same key: after the original)."""
        copy = dict(original)
        if self.order_rng.random() < 0.5:
            copy["amount"] = round(copy["amount"] + 1, 2)
        raw = orjson.dumps(copy)
        self._queue_bad(self.orders_topic, copy["portfolio_order_id"], raw, DUPLICATE)

    def _bad_order(self, j: int, accepted: list[dict[str, Any]]) -> None:
        order = self._valid_order(j)
        oid = order["portfolio_order_id"]
        n = j % 17
        if n < len(INVALID_ORDERS):
            raw: bytes | None = INVALID_ORDERS[n]
            self._queue_bad(self.orders_topic, f"{oid}-junk", raw, _reason(raw))
            return
        if n == 4:
            self._queue_bad(self.orders_topic, oid, None, _reason(None))
            return
        if n == 5 and accepted:
            # An invalid record reusing an accepted id: invalid, not a duplicate.
            reused = dict(self.order_rng.choice(accepted), amount=-1)
            raw = orjson.dumps(reused)
            self._queue_bad(self.orders_topic, reused["portfolio_order_id"], raw, _reason(raw))
            return
        bad = dict(order)
        entry0 = dict(order["portfolio"][0])
        mutations: list[dict[str, Any]] = [
            {"amount": 0},
            {"amount": "100.0"},
            {"order_type": "HOLD"},
            {"priority": 1.5},
            {"taxpayer_id": 3.0},
            {"taxpayer_id": ""},
            {"portfolio": []},
            {"portfolio": [dict(entry0, weight=0.5), dict(entry0, weight=0.5)]},
            {"portfolio": [dict(entry0, weight=0.9)]},
            {"portfolio": [dict(entry0, weight=1, limit_price=0)]},
            {"timestamp": 0},
        ]
        bad.update(mutations[(n - 6) % len(mutations)])
        raw = orjson.dumps(bad)
        self._queue_bad(self.orders_topic, oid, raw, _reason(raw))
        if n % 2 == 0:
            # The same id, now valid: accepted (the invalid record did not take the id).
            self._queue_order(order)


def _reason(raw: bytes | None) -> str:
    reason = parse_order(raw)
    assert isinstance(reason, str), raw
    return reason
