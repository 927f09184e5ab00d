"""The trading path through random batches, deliveries, commits, crashes and restarts.

The real topology (`fintank.bolts`: ``Orders``, ``Market``, ``FillsByTaxpayer``,
``Positions``) runs on the real `fintank.engine.Engine` over the in-memory
broker of `tests.support.broker`, which lets the test choose every step:
ticks (3 symbols, a few prices, timestamps mostly increasing, with ties and
stale ones) and portfolio orders (market and limit, BUY and SELL) arrive in
random batches; workers fetch, sends are delivered one by one, commit points
run, workers join, leave, crash (SIGKILL: per partition a prefix of their
undelivered sends lands, the rest is lost) or freeze past their session
timeout and wake up as zombies. Then everything drains, two last quotes per
symbol arrive (one crossing every BUY limit, one every SELL limit), and
everything drains again. Two scripted runs pin the crashes that matter most.

What must hold (CONTRACT.md rules 1-6, fills and positions):

* Mid-run, after every step: no component has two executions or two fills.
* At the end: every component has exactly one execution and one fill, and
  a restart from the changelogs emits nothing more.
* Each execution obeys rules 2-5 against a reference model: the component
  *arrived* at the engine when the symbol's ticks up to some offset had been
  applied (known within bounds: the test records every batch the Market
  processors were handed, and what was committed when each one started);
  the execution must be at the first quote that crosses the component from
  that point on in the symbol's tick order (rule 2: newest timestamp, later
  arrival wins ties; rule 5: limits), at its ask (BUY) or bid (SELL). So an
  execution never uses a tick applied before the component arrived (a
  redelivered one included), a stale tick, or a quote outside the limit.
* Each fill is the full fill of its execution, with the contract's deltas.
* Each account equals the sum of its taxpayer's fills (42 and "42" are one).
"""

from __future__ import annotations

import asyncio
import math
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from fintank import bolts as fintank_bolts
from fintank.analytics.engine import AnalyticsConfig
from fintank.codec import loads
from fintank.config import Topics
from fintank.engine import Group, checkpoint
from fintank.engine.kafka import TopicPartition, partition_for
from fintank.engine.task import Batch, Context
from fintank.records import Tick
from fintank.runtime import groups as topology_groups
from fintank.topology import Topology
from fintank.trading.records import (
    ComponentOrder,
    Execution,
    Fill,
    execution_from_json,
    fill_from_json,
    taxpayer_key,
)
from tests.support.broker import FakeBroker
from tests.support.engine import NoneLands, Worker, Workers
from tests.support.ticks import T0, tick_json
from tests.support.trading import order_json

TOPICS = Topics()
APP = "trading"
PARTITIONS = 2  # VTI and IWS hash to partition 0, IVE to partition 1
SYMBOLS = ("VTI", "IVE", "IWS")
TAXPAYERS: tuple[int | str, ...] = (1, 2, "2", "x")
MAX_FAULTS = 3  # crashes and freezes per run
MAX_WORKERS = 3  # live at once

# Few distinct values, so ties, stale ticks and exact limit hits happen often.
BIDS = (98.0, 99.0, 99.5, 100.0, 101.0)
SPREADS = (0.0, 0.5, 1.0)
STEPS = (-1.0, 0.0, 0.0, 1.0, 1.0, 2.0)  # timestamp moves: mostly up, ties, some stale
LIMITS = (None, None, 98.0, 99.5, 100.0, 100.5, 102.0)
AMOUNTS = (100.0, 250.5, 1000.0, 37.25)
WEIGHTS = {1: ((1.0,),), 2: ((0.5, 0.5), (0.25, 0.75)), 3: ((0.25, 0.25, 0.5), (0.2, 0.3, 0.5))}

ACTIONS = (
    *("ticks", "ticks", "ticks", "orders", "orders"),
    *("poll", "poll", "poll", "poll", "run", "deliver", "deliver", "deliver"),
    *("commit", "commit", "write", "time", "clock"),
    *("crash", "crash mid-commit", "crash mid-commit", "freeze", "join", "leave"),
)


def market_partition(symbol: str) -> int:
    return partition_for(symbol.encode("utf-8"), PARTITIONS)


# --- what the Market processors were handed -----------------------------------------


@dataclass
class Arrivals:
    """Per component, where the symbol's ticks stood when a Market processor first met it.

    A window ``(lo, hi)`` of ticks-partition positions: the book the component
    met had applied the symbol's ticks below some position in it. ``lo``: what
    this processor applied itself, or what its restored book says it applied
    (``SymbolBook.offset``; the changelog is never behind the committed
    offsets). ``hi``: the furthest any processor of the partition ever got (a
    restored book may be ahead of the committed offsets, never ahead of what
    was processed). A component the processor already holds (resting in its
    book, or executed per its ledger) is a repeat, not an arrival.
    """

    ticks_end: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    windows: dict[str, list[tuple[int, int]]] = field(default_factory=lambda: defaultdict(list))


class Recorded:
    """The real `Market` processor, with what it is handed written down first."""

    def __init__(self, market: Any, ctx: Context, arrivals: Arrivals, broker: FakeBroker) -> None:
        self.market = market
        self.partition = ctx.partition
        self.arrivals = arrivals
        self.broker = broker
        self.applied = 0  # ticks positions below this are in this processor's books
        self.restored: dict[str, int] = {}  # symbol -> first position its restored book lacks

    async def recover(self, replayed: Mapping[str, Sequence[Any]]) -> None:
        tp = TopicPartition(TOPICS.ticks, self.partition)
        self.applied = self.broker.committed.get(tp, 0)
        ends = self.arrivals.ticks_end
        ends[self.partition] = max(ends[self.partition], self.applied)
        books = self.market.bolt.books
        self.restored = {key: books.get(key).offset + 1 for key in books.all_keys()}
        await self.market.recover(replayed)

    async def on_batch(self, batch: Batch) -> None:
        ends = self.arrivals.ticks_end
        if batch.topic == TOPICS.ticks:
            ends[self.partition] = max(ends[self.partition], batch.end)
            await self.market.on_batch(batch)
            self.applied = max(self.applied, batch.end)
            return
        for record in batch.records:
            comp = loads(record.value)
            cid, symbol = comp["component_order_id"], comp["symbol"]
            book = self.market.bolt.books.get(symbol)
            resting = book is not None and any(c.component_order_id == cid for c in book.resting)
            if resting or cid in self.market.bolt.ledger.executions:
                continue
            lo = max(self.applied, self.restored.get(symbol, 0))
            self.arrivals.windows[cid].append((lo, max(lo, ends[self.partition])))
        await self.market.on_batch(batch)

    async def on_clock(self, now: float) -> None:
        await self.market.on_clock(now)


# --- workers on the fake broker -------------------------------------------------------


def fintank_topology() -> Topology:
    """The built-in topology's bolts and streams (as topologies/fintank.py declares them)."""
    topology = Topology("fintank")
    for f in fields(Topics):
        topology.stream(f.name, getattr(TOPICS, f.name))
    topology.bolt(fintank_bolts.Market, analytics=AnalyticsConfig())
    topology.bolt(fintank_bolts.Orders)
    topology.bolt(fintank_bolts.FillsByTaxpayer)
    topology.bolt(fintank_bolts.Positions)
    return topology


class Cluster(Workers):
    """Workers running the fintank topology (`fintank.runtime.groups`), their Market
    processors `Recorded`; counts the faults it injects."""

    def __init__(self) -> None:
        super().__init__(
            APP,
            (TOPICS.ticks, TOPICS.orders),
            {f.name: getattr(TOPICS, f.name) for f in fields(Topics)},
            PARTITIONS,
            max_queued=8,
            steps=400,
            rng=NoneLands(),
        )
        self.arrivals = Arrivals()
        self.faults = 0
        self.fault_kinds: set[str] = set()

    def new_worker(self) -> Worker:
        return self.add_worker(self._groups)

    def _groups(self, worker: Worker) -> list[Group]:
        groups = []
        for group in topology_groups(fintank_topology()):
            group = replace(group, clock=None)  # no wall-clock timers: the test runs the loop
            if group.name == "market":
                group = self._recorded(group)
            groups.append(group)
        return groups

    def _recorded(self, group: Group) -> Group:
        make = group.processor

        def processor(ctx: Context) -> Any:
            return Recorded(make(ctx), ctx, self.arrivals, self.broker)

        return replace(group, processor=processor)

    def fault(self, kind: str) -> None:
        self.faults += 1
        self.fault_kinds.add(kind)

    def crash(self, w: Worker, seed: int | None = None, kind: str = "crash") -> None:
        self.fault(kind)
        super().crash(w, seed)

    def clock(self, w: Worker, now: float) -> None:
        """The wall clock of each task of ``w`` ticks, as `Task.run` calls it: between two
        batches, and only once the task has caught up with its inputs (then the Market
        forgets old ledger entries: nothing redelivered is left for them to judge)."""

        async def tick() -> None:
            for task in list(w.engine.tasks.values()):
                if not task.ready.is_set() or task.closing or task.failed:
                    continue
                if await w.engine.caught_up(task):
                    async with task.lock:
                        if task.closing:
                            continue
                        try:
                            await task.processor.on_clock(now)
                        except Exception as exc:  # noqa: BLE001 - as Task.run's runner reports it
                            task.failed = True  # (a zombie's fence refuses: it stops its tasks)
                            w.engine.on_task_error(exc)
                            continue
                        task.changed = True

        self.run(tick())
        self.settle(10)

    def crash_mid_commit(self, w: Worker, seed: int, publishes: int) -> None:
        """SIGKILL at a commit point: outputs delivered, state on its way to the changelogs
        (per partition a prefix of it lands), offsets not committed.

        Commit points run, with the worker's outputs delivered and its lines
        written, until the ``publishes + 1``-th one sends changelog records; the
        crash comes then (or once there is nothing left to publish).
        """
        producer = w.clients.producer_
        cycle: asyncio.Task[Any] | None = None
        for _ in range(30):
            if cycle is None or cycle.done():
                cycle = self.start_cycle(w)
            else:
                self.settle(10)
            mine = [s for s in self.broker.pending if s.producer is producer]
            if any(s.tp.topic.endswith("-changelog") for s in mine):
                if publishes == 0:
                    break
                publishes -= 1
            quiet = all(t.inflight is None and not t.pending for t in w.engine.tasks.values())
            if cycle.done() and not mine and quiet:
                break  # nothing left to publish
            for send in mine:
                self.broker.deliver(send)
            self.write_lines(w)
        self.crash(w, seed, "crash mid-commit")

    def freeze(self, w: Worker) -> None:
        self.fault("freeze")
        super().freeze(w)

    # ------------------------------------------------------------------ what landed
    def values(self, topic: str) -> list[Any]:
        """The decoded values on ``topic``, partition by partition, in offset order."""
        return [loads(r.value or b"null") for r in self.broker.records(topic)]

    def executions(self) -> list[Execution]:
        return [execution_from_json(v) for v in self.values(TOPICS.executions)]

    def fills(self) -> list[Fill]:
        return [fill_from_json(v) for v in self.values(TOPICS.fills)]

    def accounts(self) -> dict[str, Any]:
        """Every taxpayer key -> Account, from the positions processors of the members."""
        out = {}
        for w in self.members():
            for task in w.engine.tasks.values():
                if task.group.name == "positions":
                    store = task.context.table(fintank_bolts.ACCOUNTS.name)
                    out.update({key: store.get(key) for key in store.all_keys()})
        return out


# --- the inputs and the reference model ----------------------------------------------


@dataclass
class Inputs:
    """What the test produced: ticks by (partition, offset), and the components of its orders."""

    ticks: dict[int, list[Tick]] = field(default_factory=lambda: defaultdict(list))
    last: dict[str, float] = field(default_factory=dict)  # symbol -> newest timestamp produced
    components: dict[str, ComponentOrder] = field(default_factory=dict)
    taxpayers: set[str] = field(default_factory=set)  # keys of taxpayers with an order

    def add_tick(self, broker: FakeBroker, symbol: str, bid: float, ask: float, ts: float) -> None:
        rec = broker.produce(
            TOPICS.ticks, symbol, tick_json(symbol=symbol, bid=bid, ask=ask, timestamp=ts)
        )
        log = self.ticks[rec.partition]
        assert rec.offset == len(log)
        log.append(Tick(symbol, "NYSE", bid, ask, ts))
        self.last[symbol] = max(ts, self.last.get(symbol, ts))

    def add_order(
        self,
        broker: FakeBroker,
        entries: Sequence[tuple[str, float, float | None]],
        side: str = "BUY",
        amount: float = 1000.0,
        taxpayer: int | str = 1,
    ) -> None:
        """A portfolio order of ``entries`` (symbol, weight, limit price) on ``orders``."""
        po_id = f"po-{len(broker.records(TOPICS.orders))}"
        portfolio = [
            {"symbol": symbol, "weight": weight, "limit_price": limit}
            for symbol, weight, limit in entries
        ]
        raw = order_json(
            taxpayer_id=taxpayer,
            portfolio_order_id=po_id,
            order_type=side,
            amount=amount,
            portfolio=portfolio,
        )
        broker.produce(TOPICS.orders, po_id, raw)
        self.taxpayers.add(taxpayer_key(taxpayer))
        for index, (symbol, weight, limit) in enumerate(entries):
            cid = f"{po_id}/{index}"  # rule 1: deterministic, the entry's index
            self.components[cid] = ComponentOrder(
                taxpayer, po_id, cid, side, symbol, round(amount * weight, 6), 1, limit, T0 + 0.5
            )


def crosses(comp: ComponentOrder, quote: Tick) -> bool:
    """Rule 5, restated: BUY when ask <= limit, SELL when bid >= limit; market always."""
    if comp.limit_price is None:
        return True
    if comp.order_type == "BUY":
        return quote.ask <= comp.limit_price
    return quote.bid >= comp.limit_price


def first_crossing(comp: ComponentOrder, log: Sequence[Tick], arrived: int) -> Tick | None:
    """The quote ``comp`` executes on if it arrives once ``log[:arrived]`` was applied.

    Rule 2: the quote is the tick with the greatest timestamp so far, a later
    arrival winning ties. Rules 4-5: the quote at arrival if it crosses, else
    each later quote in arrival order.
    """
    quote: Tick | None = None
    for t in log[:arrived]:
        if t.symbol == comp.symbol and (quote is None or t.timestamp >= quote.timestamp):
            quote = t
    if quote is not None and crosses(comp, quote):
        return quote
    for t in log[arrived:]:
        if t.symbol == comp.symbol and (quote is None or t.timestamp >= quote.timestamp):
            quote = t
            if crosses(comp, t):
                return t
    return None


def valid_quotes(
    comp: ComponentOrder, log: Sequence[Tick], windows: Sequence[tuple[int, int]]
) -> set[Tick]:
    """Every quote ``comp`` may have executed on, over every arrival the test recorded."""
    return {
        q
        for lo, hi in windows
        for arrived in range(lo, hi + 1)
        if (q := first_crossing(comp, log, arrived)) is not None
    }


# --- the checks ------------------------------------------------------------------------


def check_at_most_once(cluster: Cluster) -> None:
    """No component has two executions or two fills; each is keyed by its symbol."""
    cluster.check_no_violation()
    for topic in (TOPICS.executions, TOPICS.fills):
        records = cluster.broker.records(topic)
        values = cluster.values(topic)
        counts = Counter(v["component_order_id"] for v in values)
        twice = sorted(cid for cid, n in counts.items() if n > 1)
        assert not twice, f"{topic} twice: {twice}"
        for r, v in zip(records, values, strict=True):
            assert r.key == v["symbol"].encode(), f"{topic}: {v} keyed {r.key!r}"
            assert r.partition == market_partition(v["symbol"])


def check_executions(cluster: Cluster, inputs: Inputs) -> None:
    executions = cluster.executions()
    assert sorted(e.component_order_id for e in executions) == sorted(inputs.components)
    for e in executions:
        comp = inputs.components[e.component_order_id]
        cid = comp.component_order_id
        windows = cluster.arrivals.windows[cid]
        assert windows, f"{cid} executed but never handed to a Market processor"
        log = inputs.ticks[market_partition(comp.symbol)]
        quotes = valid_quotes(comp, log, windows)
        price = e.requested_price
        used = [
            q
            for q in quotes
            if q.timestamp == e.quote_timestamp
            and price == (q.ask if comp.order_type == "BUY" else q.bid)
        ]
        assert used, (
            f"{cid} ({comp.order_type} limit {comp.limit_price}) executed at {price} "
            f"(quote of {e.quote_timestamp - T0:+}); valid: "
            f"{sorted((q.timestamp - T0, q.bid, q.ask) for q in quotes)}"
        )
        assert e == Execution(
            comp.taxpayer_id,
            comp.portfolio_order_id,
            cid,
            f"{cid}/m",
            f"{cid}/x",
            comp.order_type,
            comp.symbol,
            comp.amount,
            round(comp.amount / price, 6),
            price,
            e.quote_timestamp,
            e.timestamp,
        )
        assert type(e.taxpayer_id) is type(comp.taxpayer_id)  # echoed as given


def check_fills(cluster: Cluster) -> None:
    executions = {e.component_order_id: e for e in cluster.executions()}
    fills = cluster.fills()
    assert sorted(f.component_order_id for f in fills) == sorted(executions)
    for f in fills:
        e = executions[f.component_order_id]
        sign = 1 if e.order_type == "BUY" else -1
        assert f == Fill(
            e.taxpayer_id,
            e.portfolio_order_id,
            e.component_order_id,
            e.market_order_id,
            e.execution_id,
            f"{e.component_order_id}/f",
            e.order_type,
            e.symbol,
            e.requested_amount,
            e.requested_shares,
            e.requested_price,
            sign * e.requested_shares,
            -sign * e.requested_amount,
            f.timestamp,
        )


def check_positions(cluster: Cluster, inputs: Inputs) -> None:
    by_taxpayer: dict[str, list[Fill]] = defaultdict(list)
    for f in cluster.fills():
        by_taxpayer[taxpayer_key(f.taxpayer_id)].append(f)
    accounts = cluster.accounts()
    assert set(accounts) == inputs.taxpayers
    for key, account in accounts.items():
        fills = by_taxpayer[key]
        cash = round(math.fsum(f.delta_cash_position for f in fills), 6) + 0.0
        shares = {
            symbol: n
            for symbol in SYMBOLS
            if (
                n := round(
                    math.fsum(f.delta_shares_position for f in fills if f.symbol == symbol), 6
                )
            )
        }
        held = (account.position.cash, dict(account.position.shares))
        assert held == (cash, shares), f"taxpayer {key!r}: {held} from {len(fills)} fills"
        # Every fill came with its source (fills partition, offset): no set of ids grows.
        assert account.fill_ids == frozenset(), f"taxpayer {key!r}"
        assert len(account.sources) <= PARTITIONS, f"taxpayer {key!r}"


# --- the property ----------------------------------------------------------------------


def produce_ticks(cluster: Cluster, inputs: Inputs, data: st.DataObject) -> None:
    draw = data.draw
    for _ in range(draw(st.integers(1, 4), label="ticks")):
        symbol = draw(st.sampled_from(SYMBOLS))
        bid = draw(st.sampled_from(BIDS))
        ask = bid + draw(st.sampled_from(SPREADS))
        ts = inputs.last.get(symbol, T0) + draw(st.sampled_from(STEPS))
        inputs.add_tick(cluster.broker, symbol, bid, ask, ts)


def pick(data: st.DataObject, workers: Sequence[Worker]) -> Worker:
    """One of ``workers``, drawn by name (so a failing example reads as steps)."""
    name = data.draw(st.sampled_from([w.name for w in workers]), label="worker")
    return next(w for w in workers if w.name == name)


def produce_orders(cluster: Cluster, inputs: Inputs, data: st.DataObject) -> None:
    draw = data.draw
    for _ in range(draw(st.integers(1, 2), label="orders")):
        symbols = draw(st.lists(st.sampled_from(SYMBOLS), min_size=1, max_size=3, unique=True))
        weights = draw(st.sampled_from(WEIGHTS[len(symbols)]))
        limits = [draw(st.sampled_from(LIMITS)) for _ in symbols]
        inputs.add_order(
            cluster.broker,
            list(zip(symbols, weights, limits, strict=True)),
            draw(st.sampled_from(("BUY", "SELL"))),
            draw(st.sampled_from(AMOUNTS)),
            draw(st.sampled_from(TAXPAYERS)),
        )


def step(cluster: Cluster, inputs: Inputs, data: st.DataObject) -> None:
    """One step of the world, drawn: new inputs, work, deliveries, commits or faults."""
    action = data.draw(st.sampled_from(ACTIONS), label="action")
    draw = data.draw
    live, members = cluster.live(), cluster.members()
    faults_left = members and cluster.faults < MAX_FAULTS
    if action == "ticks":
        produce_ticks(cluster, inputs, data)
    elif action == "orders":
        produce_orders(cluster, inputs, data)
    elif action == "poll" and live:
        cluster.poll(pick(data, live), draw(st.integers(1, 4), label="records"))
    elif action == "run":
        cluster.settle()
    elif action == "deliver":
        for index in draw(st.lists(st.integers(0, 7), min_size=1, max_size=6), label="sends"):
            sends = cluster.broker.deliverable()
            if not sends:
                break
            cluster.deliver(sends[index % len(sends)])
    elif action == "commit" and live:
        cluster.start_cycle(pick(data, live))
    elif action == "write" and live:
        cluster.write_lines(pick(data, live))
    elif action == "time":
        seconds = draw(st.sampled_from([0.5, 1.0, 2.0, 4.0]), label="seconds")
        cluster.advance(seconds)
    elif action == "clock" and live:
        cluster.clock(pick(data, live), T0 + 3600)
    elif action == "crash" and faults_left:
        cluster.crash(pick(data, members), draw(st.integers(0, 2**16), label="seed"))
    elif action == "crash mid-commit" and faults_left:
        w = pick(data, members)
        publishes = draw(st.integers(0, 2), label="publishes")
        cluster.crash_mid_commit(w, draw(st.integers(0, 2**16), label="seed"), publishes)
    elif action == "freeze" and faults_left:
        cluster.freeze(pick(data, members))
    elif action == "join" and len(live) < MAX_WORKERS:
        cluster.new_worker()
        cluster.rebalance()
    elif action == "leave" and len(members) >= 2:
        cluster.leave(pick(data, members))


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.data())
def test_each_component_executes_once_at_a_valid_quote_and_positions_sum_the_fills(
    data: st.DataObject,
) -> None:
    """Exactly once, at a quote the contract allows, whatever crashes and redeliveries.

    Checked after every step (at most once), at the end (exactly once, prices,
    fills, positions), and again after every worker restarted from the changelogs.
    """
    # Arrange
    cluster = Cluster()
    inputs = Inputs()
    try:
        for _ in range(data.draw(st.integers(1, 2), label="workers")):
            cluster.new_worker()
        cluster.rebalance()

        # Act: random steps, never two executions or fills of one component.
        for _ in range(data.draw(st.integers(1, 40), label="steps")):
            step(cluster, inputs, data)
            check_at_most_once(cluster)
        cluster.drain()
        check_at_most_once(cluster)
        # A last quote per symbol that crosses every limit: BUY, then SELL.
        for symbol in SYMBOLS:
            top = max([T0, *inputs.last.values()])
            inputs.add_tick(cluster.broker, symbol, 0.5, 1.0, top + 10)
            inputs.add_tick(cluster.broker, symbol, 1000.0, 1000.0, top + 11)
        cluster.drain()

        # Assert
        event(f"faults: {cluster.faults}")
        for kind in sorted(cluster.fault_kinds):
            event(f"fault: {kind}")
        event(f"components: {'some' if inputs.components else 'none'}")
        check_at_most_once(cluster)
        check_executions(cluster, inputs)
        check_fills(cluster)
        check_positions(cluster, inputs)

        # A restart of every worker from the changelogs emits nothing more.
        before = (len(cluster.executions()), len(cluster.fills()))
        for w in cluster.members():
            cluster.kill(w)
        cluster.rebalance()
        cluster.drain()
        check_at_most_once(cluster)
        assert (len(cluster.executions()), len(cluster.fills())) == before
        check_positions(cluster, inputs)
    finally:
        cluster.close()


@pytest.mark.parametrize("symbol", SYMBOLS)
def test_the_symbols_spread_over_both_partitions(symbol: str) -> None:
    """The run above needs two symbols on one partition and one on the other."""
    assert market_partition(symbol) == {"VTI": 0, "IWS": 0, "IVE": 1}[symbol]


def test_ticks_redelivered_after_their_book_was_published_do_not_meet_a_later_component() -> None:
    """The crash the books' ``offset`` is for, step by step, through the real engine.

    T1 and T2 share a timestamp, so T2 (later arrival) is the quote; a limit BUY
    at 100 arrives after both and rests (T2's ask is 105). A crash at the commit
    point lands the book (quote T2, the component resting) on the changelog but
    commits no offset, so T1 and T2 come again: T1's ask of 99 must not execute it.
    """
    # Arrange
    cluster = Cluster()
    inputs = Inputs()
    try:
        worker = cluster.new_worker()
        cluster.rebalance()
        inputs.add_tick(cluster.broker, "VTI", 98.5, 99.0, T0)
        inputs.add_tick(cluster.broker, "VTI", 104.5, 105.0, T0)
        cluster.poll(worker, 4)
        inputs.add_order(cluster.broker, [("VTI", 1.0, 100.0)])
        for _ in range(2):  # the order, then its component
            cluster.poll(worker, 4)
            cluster.broker.deliver_all()
            cluster.write_lines(worker)
        books = f"{APP}-books-changelog"
        for _ in range(10):  # commit points, until the market's state is on its way
            cluster.start_cycle(worker)
            if any(s.tp.topic == books for s in cluster.broker.pending):
                break
            cluster.broker.deliver_all()
            cluster.write_lines(worker)
        for send in [s for s in cluster.broker.pending if s.tp.topic == books]:
            cluster.broker.deliver(send)
        assert cluster.arrivals.windows["po-0/0"] == [(2, 2)]
        assert not cluster.broker.committed.get(TopicPartition(TOPICS.ticks, 0))

        # Act: SIGKILL before the offsets are committed; a new worker takes over.
        cluster.kill(worker)
        cluster.rebalance()
        cluster.drain()

        # Assert
        assert cluster.executions() == []
        inputs.add_tick(cluster.broker, "VTI", 99.5, 100.0, T0 + 1)
        cluster.drain()
        check_executions(cluster, inputs)
        check_fills(cluster)
        check_positions(cluster, inputs)
        assert cluster.executions()[0].quote_timestamp == T0 + 1
    finally:
        cluster.close()


def test_a_fill_sent_while_recovering_lands_before_the_partition_moves_on() -> None:
    """A revoke that cancels `Market.recover` must not let its in-flight fill be sent twice.

    A crash loses a fill whose execution landed; the next owner's recovery sends
    it and waits for its delivery. A rebalance comes before it is delivered: the
    partition's next owner rebuilds its ledger from the fills topic, so the
    revoke must let the fill land first (the engine flushes its producer), or
    the next owner sends it again.
    """
    # Arrange: an execution on the topic, its fill lost in a crash.
    cluster = Cluster()
    inputs = Inputs()
    try:
        first = cluster.new_worker()
        cluster.rebalance()
        inputs.add_tick(cluster.broker, "VTI", 99.5, 100.0, T0)
        inputs.add_order(cluster.broker, [("VTI", 1.0, None)])
        for _ in range(2):  # the order, then its component (it executes at once)
            cluster.poll(first, 4)
            cluster.broker.deliver_all()
        cluster.settle()
        executions = [s for s in cluster.broker.pending if s.tp.topic == TOPICS.executions]
        assert not executions and len(cluster.executions()) == 1
        assert [s.tp.topic for s in cluster.broker.pending].count(TOPICS.fills) == 1
        cluster.kill(first)  # nothing more lands: the fill is lost
        second = cluster.new_worker()
        rebalance = cluster.loop.create_task(cluster.broker.rebalance([second.consumer]))
        cluster.settle()  # recovering: the missing fill is sent, not delivered yet
        assert rebalance.done()
        assert [s.tp.topic for s in cluster.broker.pending].count(TOPICS.fills) == 1

        # Act: a third worker joins before the fill is delivered.
        cluster.new_worker()
        cluster.rebalance()
        cluster.drain()

        # Assert
        check_at_most_once(cluster)
        check_executions(cluster, inputs)
        check_fills(cluster)
        check_positions(cluster, inputs)
    finally:
        cluster.close()


def test_an_order_redelivered_after_its_component_executed_and_was_forgotten_makes_nothing() -> (
    None
):
    """Bounded recovery, step by step: the Market committed past an execution (its
    recovery no longer replays it) and its ledger forgot it (caught up, two clock
    ticks), while the Orders partition stayed uncommitted. The order comes again
    after a crash and its component is sent again: its source, noted in the book,
    marks it a repeat. Without the note it would execute twice."""
    cluster = Cluster()
    inputs = Inputs()
    try:
        worker = cluster.new_worker()
        cluster.rebalance()
        inputs.add_tick(cluster.broker, "VTI", 99.5, 100.0, T0)
        inputs.add_order(cluster.broker, [("VTI", 1.0, None)])
        cluster.poll(worker, 4)  # the tick and the order
        assert any(s.tp.topic == TOPICS.positions for s in cluster.broker.pending)
        for send in [s for s in cluster.broker.pending if s.tp.topic != TOPICS.positions]:
            cluster.deliver(send)  # the component lands; the order's positions event does not
        cluster.poll(worker, 4)  # the component: it executes at once
        for i in range(8):  # executions, fills and lines land; the market commits, twice
            if i in (3, 5):
                inputs.add_tick(cluster.broker, "VTI", 99.5, 100.0, T0 + i)
                cluster.poll(worker, 4)
            for send in [s for s in cluster.broker.deliverable() if s.tp.topic != TOPICS.positions]:
                cluster.deliver(send)
            cluster.write_lines(worker)
            cluster.start_cycle(worker)
            cluster.settle()
        assert len(cluster.executions()) == 1
        meta = cluster.broker.metadata[TopicPartition(TOPICS.components, 0)]
        assert checkpoint.decode(meta)[TopicPartition(TOPICS.executions, 0)] == 1  # past it
        assert cluster.broker.committed.get(TopicPartition(TOPICS.components, 0), 0) == 1
        assert not cluster.broker.committed.get(TopicPartition(TOPICS.orders, 0))
        assert not cluster.broker.committed.get(TopicPartition(TOPICS.orders, 1))
        for _ in range(3):
            cluster.clock(worker, T0 + 60)
        market = next(t for t in worker.engine.tasks.values() if t.group.name == "market")
        assert market.processor.market.bolt.ledger.executions == {}

        cluster.kill(worker)  # the positions event is lost; the order comes again
        cluster.new_worker()
        cluster.rebalance()
        cluster.drain()

        assert len(cluster.executions()) == 1 and len(cluster.fills()) == 1
        check_positions(cluster, inputs)
    finally:
        cluster.close()
