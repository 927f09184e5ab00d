"""The engine under a steady mixed load, through a crash and through a hand-over.

A background producer (`tests.integration.load.MixedLoad`) sends ticks over
eight symbols, portfolio orders with market and resting limit components,
invalid ticks and orders, and duplicate portfolio_order_ids, while:

1. the only worker is SIGKILLed mid-stream and restarted;
2. a second worker joins, both serve, then the first leaves cleanly (SIGTERM).

Afterwards: every component of every valid order has exactly one execution
and one fill (at a price of a tick the load sent, within its limit) and
nothing else executed; every invalid record and every duplicate is
dead-lettered exactly once, with its reason and payload, and nothing valid is;
``GET /positions/{id}`` equals the sum of the taxpayer's fills; every valid
tick is one point of ``bid_ask`` in InfluxDB.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from fintank.codec import payload_text
from fintank.peek import Record
from fintank.sinks.query import influxql
from fintank.stack.worker import Worker
from fintank.trading.orders import DUPLICATE
from fintank.trading.records import taxpayer_key
from tests.integration.conftest import Env
from tests.integration.load import MixedLoad, free_port
from tests.integration.test_routing import get, partition_of
from tests.integration.test_rule_engine import expected_components, expected_positions, read

TOLERANCE = 1e-6  # sums of 6-decimal floats, added in another order


def symbols(env: Env) -> list[str]:
    return [f"{name}{env.suffix}" for name in ("FA", "FB", "FC", "FD", "FE", "FF", "FG", "FH")]


def wait_for(
    check: Callable[[], bool], what: str | Callable[[], str], timeout: float, load: MixedLoad
) -> None:
    """Poll ``check`` (every half second) until it holds; fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not check():
        load.check()
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {timeout}s waiting for {what() if callable(what) else what}"
            )
        time.sleep(0.5)


def component_ids(records: Iterable[Record]) -> set[str]:
    return {r.value["component_order_id"] for r in records}


def sources(records: Iterable[Record]) -> set[tuple[Any, Any, Any]]:
    return {
        (d.get("source_topic"), d.get("source_partition"), d.get("source_offset"))
        for d in (r.value for r in records)
        if isinstance(d, dict)
    }


def wait_for_outputs(env: Env, load: MixedLoad, timeout: float, workers: list[Worker]) -> None:
    """Until every expected execution, fill and dead letter is on Kafka (sweeps keep going)."""
    t = env.settings.topics
    components = expected_components([o for _, o in load.orders])
    bad = {b.sent.source for b in load.bad}
    state: dict[str, int] = {}

    def complete() -> bool:
        executions = component_ids(read(env, t.executions))
        fills = component_ids(read(env, t.fills))
        letters = sources(read(env, t.deadletters))
        state.update(
            executions=len(components - executions),
            fills=len(components - fills),
            deadletters=len(bad - letters),
        )
        return not any(state.values())

    deadline = time.monotonic() + timeout
    while not complete():
        load.check()
        assert time.monotonic() < deadline, (
            f"after {timeout}s still missing: {state} (of {len(components)} components, "
            f"{len(bad)} dead letters); worker logs: {[str(w.log_file) for w in workers]}"
        )
        time.sleep(1)


# ---------------------------------------------------------------- checks
def exactly_once_problems(
    load: MixedLoad, executions: list[Record], fills: list[Record]
) -> list[str]:
    """Every component once in executions and fills, consistent with its order and a tick."""
    problems: list[str] = []
    orders = [o for _, o in load.orders]
    components = expected_components(orders)
    for name, records in (("executions", executions), ("fills", fills)):
        seen = Counter(r.value["component_order_id"] for r in records)
        twice = {
            c: [(r.partition, r.offset) for r in records if r.value["component_order_id"] == c]
            for c, n in seen.items()
            if n > 1
        }
        if twice:
            problems.append(f"{name}: {len(twice)} components twice (partition, offset): {twice}")
        if missing := sorted(components - seen.keys()):
            problems.append(f"{name}: {len(missing)} components missing: {missing[:20]}")
        if extra := sorted(seen.keys() - components):
            problems.append(f"{name}: {len(extra)} unexpected components: {extra[:20]}")

    entries = {
        f"{o['portfolio_order_id']}/{i}": (o, entry)
        for o in orders
        for i, entry in enumerate(o["portfolio"])
    }
    ticks = {(t["symbol"], t["timestamp"]): t for _, t in load.ticks}
    by_component = {}
    for r in executions:
        e = r.value
        cid = e["component_order_id"]
        by_component[cid] = e
        if cid not in entries:
            continue
        order, entry = entries[cid]
        want = {
            "taxpayer_id": order["taxpayer_id"],  # echoed as given (7 or "7")
            "portfolio_order_id": order["portfolio_order_id"],
            "order_type": order["order_type"],
            "symbol": entry["symbol"],
            "requested_amount": round(order["amount"] * entry["weight"], 6),
        }
        got = {k: e[k] for k in want}
        if got != want or type(e["taxpayer_id"]) is not type(order["taxpayer_id"]):
            problems.append(f"execution {cid}: {got}, expected {want}")
        if r.key != entry["symbol"]:
            problems.append(f"execution {cid}: key {r.key!r}")
        tick = ticks.get((entry["symbol"], e["quote_timestamp"]))
        if tick is None:
            problems.append(f"execution {cid}: no valid tick at {e['quote_timestamp']}")
            continue
        buy = order["order_type"] == "BUY"
        price = tick["ask"] if buy else tick["bid"]
        limit = entry.get("limit_price")
        if e["requested_price"] != price:
            problems.append(f"execution {cid}: price {e['requested_price']}, the tick's {price}")
        elif limit is not None and (price > limit if buy else price < limit):
            problems.append(f"execution {cid}: {order['order_type']} at {price}, limit {limit}")
        if e["requested_shares"] != round(e["requested_amount"] / e["requested_price"], 6):
            problems.append(f"execution {cid}: requested_shares {e['requested_shares']}")
    for r in fills:
        f = r.value
        e = by_component.get(f["component_order_id"])
        if e is None:
            continue
        sign = 1 if e["order_type"] == "BUY" else -1
        want = {
            "execution_id": e["execution_id"],
            "filled_amount": e["requested_amount"],
            "filled_shares": e["requested_shares"],
            "filled_price": e["requested_price"],
            "delta_shares_position": sign * e["requested_shares"],
            "delta_cash_position": -sign * e["requested_amount"],
        }
        got = {k: f[k] for k in want}
        if got != want:
            problems.append(f"fill {f['component_order_id']}: {got}, expected {want}")
    return problems


def deadletter_problems(env: Env, load: MixedLoad, letters: list[Record]) -> list[str]:
    """Each bad record dead-lettered once, with its reason and payload; nothing else."""
    t = env.settings.topics
    problems: list[str] = []
    expected = {b.sent.source: b for b in load.bad}
    assert len(expected) == len(load.bad)
    valid = {s.source: "valid tick" for s, _ in load.ticks}
    valid.update({s.source: "valid order" for s, _ in load.orders})
    at: dict[tuple[Any, Any, Any], list[tuple[int, int]]] = {}
    for r in letters:
        d = r.value
        source = (d.get("source_topic"), d.get("source_partition"), d.get("source_offset"))
        at.setdefault(source, []).append((r.partition, r.offset))
        bad = expected.get(source)
        if bad is None:
            what = valid.get(source, "nothing the load sent")
            problems.append(f"dead letter at {r.partition}/{r.offset} for {source} ({what}): {d}")
            continue
        if r.key != source[0]:
            problems.append(f"dead letter for {source}: key {r.key!r}")
        if d.get("reason") != bad.reason or d.get("payload") != payload_text(bad.sent.value):
            problems.append(
                f"dead letter for {source}: reason {d.get('reason')!r} payload "
                f"{d.get('payload')!r}, expected {bad.reason!r} {payload_text(bad.sent.value)!r}"
            )
    if twice := {s: where for s, where in at.items() if len(where) > 1}:
        problems.append(f"dead-lettered more than once (letter partition, offset): {twice}")
    if missing := sorted(expected.keys() - at.keys()):
        problems.append(f"{len(missing)} bad records not dead-lettered: {missing[:20]}")
    if not problems:  # the same, counted per reason and payload
        want = Counter((b.sent.topic, b.reason, payload_text(b.sent.value)) for b in load.bad)
        got = Counter(
            (r.value["source_topic"], r.value["reason"], r.value["payload"]) for r in letters
        )
        assert got == want
    # The load really sent each kind of bad record.
    kinds = Counter("duplicate" if b.reason == DUPLICATE else b.sent.topic for b in load.bad)
    assert kinds["duplicate"] and kinds[t.orders] and kinds[t.ticks], kinds
    return problems


def position_problems(port: int, fills: list[Record], taxpayers: set[str]) -> dict[str, Any]:
    """Taxpayer -> why ``GET /positions/{id}`` on ``port`` is not the sum of their fills."""
    cash, shares = expected_positions(fills)
    bad: dict[str, Any] = {}
    for taxpayer in sorted(taxpayers, key=int):
        status, _, body = get(port, f"/positions/{taxpayer}")
        if status != 200 or not isinstance(body, dict):
            bad[taxpayer] = (status, body)
            continue
        held = body.get("positions") or {}
        wrong: dict[str, tuple[Any, ...]] = {
            symbol: (held.get(symbol, 0.0), shares[taxpayer].get(symbol, 0.0))
            for symbol in held.keys() | shares[taxpayer].keys()  # symbols at 0 may be left out
            if abs(held.get(symbol, 0.0) - shares[taxpayer].get(symbol, 0.0)) > TOLERANCE
        }
        if (
            str(body.get("taxpayer_id")) != taxpayer
            or abs(body["cash"] - cash[taxpayer]) > TOLERANCE
        ):
            wrong["cash"] = (body.get("taxpayer_id"), body["cash"], cash[taxpayer])
        if wrong:
            bad[taxpayer] = wrong
    return bad


def bid_ask_counts(env: Env) -> dict[str, int]:
    s = env.settings
    series = influxql(
        s.influx_url, s.influx_database, 'SELECT count("bid") FROM "bid_ask" GROUP BY "symbol"'
    )
    return {x["tags"]["symbol"]: int(x["values"][0][1]) for x in series}


def influx_points_per_component(env: Env, measurement: str, field: str) -> dict[str, int]:
    s = env.settings
    series = influxql(
        s.influx_url,
        s.influx_database,
        f'SELECT count("{field}") FROM "{measurement}" GROUP BY "component_order_id"',
    )
    return {x["tags"]["component_order_id"]: int(x["values"][0][1]) for x in series}


def influx_once(env: Env, load: MixedLoad) -> None:
    """Each component is one point of ``executions`` and one of ``fills`` in InfluxDB: at
    least once across the fault (written again at recovery), never twice (same tags and
    time: a repeat overwrites)."""
    components = expected_components([o for _, o in load.orders])
    for measurement, field in (("executions", "requested_amount"), ("fills", "filled_amount")):
        deadline = time.monotonic() + 90
        while (got := influx_points_per_component(env, measurement, field)).keys() != components:
            assert time.monotonic() < deadline, (
                f"{measurement} in InfluxDB: {len(components - got.keys())} components "
                f"missing, {len(got.keys() - components)} unexpected"
            )
            time.sleep(1)
        twice = {c: n for c, n in got.items() if n != 1}
        assert not twice, f"{measurement} in InfluxDB: components with more than one point {twice}"


def candles_in_influx(env: Env) -> None:
    """Every candle on the ``candles`` topic (repeats included: at least once) is one point
    of InfluxDB's ``candles`` measurement, per symbol and interval, and there is no other."""
    s = env.settings
    on_kafka = Counter(
        (c["symbol"], c["interval"])
        for c in {
            (r.value["symbol"], r.value["interval"], r.value["start"]): r.value
            for r in read(env, s.topics.candles)
        }.values()
    )

    def in_influx() -> Counter[tuple[str, str]]:
        series = influxql(
            s.influx_url,
            s.influx_database,
            'SELECT count("open") FROM "candles" GROUP BY "symbol", "interval"',
        )
        return Counter(
            {(x["tags"]["symbol"], x["tags"]["interval"]): int(x["values"][0][1]) for x in series}
        )

    deadline = time.monotonic() + 60
    while (got := in_influx()) != on_kafka:
        assert time.monotonic() < deadline, f"candles in InfluxDB {got}, on Kafka {on_kafka}"
        time.sleep(1)


def verify(env: Env, load: MixedLoad, port: int, workers: list[Worker]) -> None:
    """All the checks of the module docstring, against the worker on ``port``."""
    t = env.settings.topics
    logs = ", ".join(str(w.log_file) for w in workers)
    time.sleep(5)  # anything late (a duplicate) has had time to arrive
    executions, fills = read(env, t.executions), read(env, t.fills)
    letters = read(env, t.deadletters)
    # The inputs hold exactly what the load sent (no producer retry duplicated a record).
    ticks_in, orders_in = read(env, t.ticks), read(env, t.orders)
    sent = Counter(b.sent.topic for b in load.bad)
    assert len(ticks_in) == len(load.ticks) + sent[t.ticks], "the ticks topic is not what was sent"
    assert len(orders_in) == len(load.orders) + sent[t.orders], (
        "the orders topic is not what was sent"
    )

    problems = exactly_once_problems(load, executions, fills)
    problems += deadletter_problems(env, load, letters)
    assert not problems, "\n".join([f"worker logs: {logs}", *problems])

    taxpayers = {str(o["taxpayer_id"]) for _, o in load.orders}
    deadline = time.monotonic() + 90
    while bad := position_problems(port, fills, taxpayers):
        assert time.monotonic() < deadline, f"positions on :{port} are not the fills' sums: {bad}"
        time.sleep(1)

    want = Counter(tick["symbol"] for _, tick in load.ticks)
    deadline = time.monotonic() + 120
    while (got := bid_ask_counts(env)) != want:
        assert time.monotonic() < deadline, f"bid_ask points per symbol {got}, expected {want}"
        time.sleep(1)

    influx_once(env, load)
    candles_in_influx(env)

    # Nothing more was executed or filled while we checked.
    assert len(read(env, t.executions)) == len(executions)
    assert len(read(env, t.fills)) == len(fills)
    limits = sum(1 for _, o in load.orders for e in o["portfolio"] if e.get("limit_price"))
    kinds = Counter("duplicate" if b.reason == DUPLICATE else b.sent.topic for b in load.bad)
    swept = sum(
        1 for r in executions if (r.value["symbol"], r.value["quote_timestamp"]) in load.sweep_ticks
    )
    print(
        f"load: {len(load.ticks)} valid ticks, {len(load.orders)} orders, "
        f"{len(executions)} components ({limits} limits, {swept} executed on the "
        f"{load.sweeps} sweep rounds), "
        f"dead letters {dict(kinds)}, {len(taxpayers)} taxpayers"
    )


# ---------------------------------------------------------------- tests
def test_mixed_load_with_sigkill_and_restart(env: Env, start_worker: Callable[..., Any]) -> None:
    port = str(free_port())
    first = start_worker("faults", FINTANK_WEB_PORT=port)
    load = MixedLoad(env.settings, symbols(env), seed=7001, id_prefix=f"po-{env.suffix}")
    load.start()
    try:
        # Mid-stream: the worker is executing the load's orders.
        fills = env.settings.topics.fills
        wait_for(lambda: load.elapsed >= 8 and len(read(env, fills)) >= 20, "fills", 120, load)
        assert first.kill()
        time.sleep(2)
        second = start_worker("faults", FINTANK_WEB_PORT=port)  # same app id and state
        restarted = load.elapsed
        wait_for(lambda: load.elapsed >= max(24, restarted + 6), "more load", 60, load)
        load.finish()
        assert len(load.orders) > 100 and len(load.ticks) > 5000, (
            len(load.orders),
            len(load.ticks),
        )
        wait_for_outputs(env, load, 240, [first, second])
    finally:
        load.stop()
    verify(env, load, int(port), [first, second])


def test_second_worker_joins_under_load_then_first_leaves(
    env: Env, start_worker: Callable[..., Any]
) -> None:
    s = env.settings
    port_a = free_port()
    port_b = free_port(avoid=(port_a,))
    a = start_worker("joins-a", FINTANK_WEB_PORT=str(port_a))
    load = MixedLoad(s, symbols(env), seed=7002, id_prefix=f"po-{env.suffix}")
    load.start()
    try:
        wait_for(lambda: load.elapsed >= 5, "the load to run a while", 60, load)
        b = start_worker("joins-b", FINTANK_WEB_PORT=str(port_b))

        # Both serve: ready, and each answers /positions for taxpayers the other one owns.
        ports = (port_a, port_b)
        routed: dict[int, set[str]] = {port: set() for port in ports}

        def both_serve() -> bool:
            health = {port: get(port, "/health")[2] for port in ports}
            if not all(isinstance(h, dict) and h.get("ready") for h in health.values()):
                return False
            owns = {
                port: {
                    int(tp.rsplit(":", 1)[1])
                    for tp in h["assigned"]
                    if tp.rsplit(":", 1)[0] == s.topics.positions
                }
                for port, h in health.items()
            }
            taxpayers = {str(o["taxpayer_id"]) for _, o in list(load.orders)}
            for port, other in zip(ports, reversed(ports), strict=True):
                for taxpayer in taxpayers:
                    if partition_of(taxpayer_key(taxpayer), s.partitions) not in owns[other]:
                        continue
                    status, _, body = get(port, f"/positions/{taxpayer}")
                    if (
                        status == 200
                        and isinstance(body, dict)
                        and str(body["taxpayer_id"]) == taxpayer
                    ):
                        routed[port].add(taxpayer)
            return all(routed.values())

        wait_for(both_serve, lambda: f"both workers to serve; routed: {routed}", 120, load)
        time.sleep(5)  # both keep working under the load a little longer

        assert a.stop()  # SIGTERM: a clean leave, while the load goes on
        everything = {
            f"{topic}:{p}"
            for topic in (s.topics.ticks, s.topics.components, s.topics.orders)
            + (s.topics.fills, s.topics.positions)
            for p in range(s.partitions)
        }

        def b_owns_all() -> bool:
            health = b.health()
            return bool(health and health.get("ready") and set(health["assigned"]) == everything)

        wait_for(b_owns_all, "worker b to take every partition", 120, load)
        left = load.elapsed
        wait_for(lambda: load.elapsed >= max(25, left + 5), "more load", 60, load)
        load.finish()
        wait_for_outputs(env, load, 240, [a, b])
    finally:
        load.stop()
    assert not a.is_up()
    verify(env, load, port_b, [a, b])
