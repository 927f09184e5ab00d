"""A worker frozen (SIGSTOP) past its session timeout under the mixed load: the zombie case.

docs/engine.md, "The fence, and the one window it leaves": a worker frozen
longer than its session timeout wakes up with its queues and assignment as
they were; meanwhile the coordinator gave its partitions to another member.
Everything that must not be sent twice (executions, fills, dead letters,
changelog records) is sent only after `Engine.fence` proved membership, and a
zombie's proof has expired, so its fence fails and it stops (it exits, or
leaves its old assignment and rejoins the group).

Worker A runs under the load of `tests.integration.load.MixedLoad`, worker B
joins and they share the partitions; A is frozen at a random moment of its
work, B takes every partition after the session timeout and works alone for
a while, then A is resumed. After the load: every component executed and
filled exactly once, every bad record dead-lettered once (nothing valid),
positions equal the sums of the fills, every valid tick one InfluxDB point
(`tests.integration.test_engine_faults.verify`).
"""

from __future__ import annotations

import os
import random
import re
import signal
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from fintank.config import Settings
from fintank.peek import Record
from fintank.stack.worker import Worker
from tests.integration.conftest import Env
from tests.integration.load import MixedLoad, free_port
from tests.integration.test_engine_faults import (
    symbols,
    verify,
    wait_for,
    wait_for_outputs,
)
from tests.integration.test_rule_engine import read

SESSION_TIMEOUT = 10.0  # fintank.engine.kafka.KafkaSettings.session_timeout

# What a worker's log says when it stops serving an assignment (A's log after waking).
WAKE_LINES = re.compile(
    r"fenced|no longer owns|revoke|rebalanc|assigned \d+ partitions|recovered|commit"
    r"|heartbeat|generation|member|exiting|stopping|crash|error|warning|critical",
    re.IGNORECASE,
)


def input_partitions(s: Settings) -> set[str]:
    """Every input partition of the topology, as /health lists them in "assigned"."""
    topics = (s.topics.ticks, s.topics.components, s.topics.orders, s.topics.fills)
    return {f"{t}:{p}" for t in (*topics, s.topics.positions) for p in range(s.partitions)}


def assigned(worker: Worker) -> set[str] | None:
    """The input partitions ``worker`` has assigned and ready, or None if it is not ready."""
    health = worker.health()
    if not (health and health.get("ready")):
        return None
    return set(health["assigned"])  # type: ignore[arg-type]


@contextmanager
def freezer(worker: Worker) -> Iterator[dict[str, Any]]:
    """``freeze()`` / ``thaw()`` the worker's process; never leaves it stopped.

    On the way out a process still frozen is resumed; if the test failed while
    it was frozen it is also killed (so it cannot act on a half-run test).
    """
    state: dict[str, Any] = {"pid": None, "frozen": False}

    def freeze() -> None:
        pid = worker.pid()
        assert pid is not None, f"{worker.home.name} is not running"
        state["pid"] = pid
        os.kill(pid, signal.SIGSTOP)
        state["frozen"] = True
        state["stopped_at"] = time.time()

    def thaw() -> None:
        os.kill(state["pid"], signal.SIGCONT)
        state["frozen"] = False
        state["resumed_at"] = time.time()

    state.update(freeze=freeze, thaw=thaw)
    failed = True
    try:
        yield state
        failed = False
    finally:
        if state["pid"] is not None:
            with suppress(ProcessLookupError):
                os.kill(state["pid"], signal.SIGCONT)  # harmless if it runs (or is gone)
            if failed:
                worker.kill()


def log_since(path: Path, offset: int, limit: int = 40) -> list[str]:
    """The interesting lines ``path`` got after byte ``offset`` (at most ``limit``)."""
    with open(path, "rb") as f:
        f.seek(offset)
        text = f.read().decode("utf-8", "replace")
    lines = [
        line.strip()
        for line in text.splitlines()
        if WAKE_LINES.search(line) and "late tick" not in line
    ]
    return lines[:limit]


def copies(
    records: list[Record], key: Callable[[dict[str, Any]], Any], window: tuple[float, float]
) -> list[str]:
    """Each record of a duplicated ``key``: where it is, its sender's clock, vs the freeze."""
    stopped, resumed = window
    seen = Counter(key(r.value) for r in records if isinstance(r.value, dict))
    out = []
    for r in records:
        if not isinstance(r.value, dict) or seen[key(r.value)] < 2:
            continue
        ts = float(r.value.get("timestamp", 0))
        when = "before the freeze" if ts < stopped else "frozen" if ts < resumed else "after wake"
        out.append(
            f"{key(r.value)} at {r.partition}/{r.offset}, timestamp {ts:.3f} "
            f"({ts - stopped:+.3f}s from SIGSTOP, {ts - resumed:+.3f}s from SIGCONT: {when})"
        )
    return out


def test_a_worker_frozen_past_its_session_timeout_sends_no_second_execution(
    env: Env, start_worker: Callable[..., Worker]
) -> None:
    s = env.settings
    everything = input_partitions(s)
    port_a = free_port()
    port_b = free_port(avoid=(port_a,))
    a = start_worker("zombie-a", FINTANK_WEB_PORT=str(port_a))
    load = MixedLoad(s, symbols(env), seed=7003, id_prefix=f"po-{env.suffix}", max_duration=100)
    load.start()
    times: dict[str, float] = {}
    with freezer(a) as zombie:
        try:
            wait_for(lambda: load.elapsed >= 4, "the load to run a while", 30, load)
            b = start_worker("zombie-b", FINTANK_WEB_PORT=str(port_b))

            def shared() -> bool:
                mine, theirs = assigned(a), assigned(b)
                return bool(mine and theirs and not mine & theirs and mine | theirs == everything)

            wait_for(shared, "A and B to share the partitions", 60, load)
            health = a.health() or {}
            before = dict(health.get("engine") or {})  # type: ignore[call-overload]
            time.sleep(random.uniform(1.0, 3.0))  # a random moment of A's work

            zombie["freeze"]()
            frozen = load.elapsed
            wait_for(lambda: assigned(b) == everything, "B to take every partition", 45, load)
            times["takeover"] = load.elapsed - frozen
            assert times["takeover"] >= SESSION_TIMEOUT - 1, times  # A was given up, not left
            time.sleep(4)  # B works alone while A sleeps on its old queues

            wake_at = a.log_file.stat().st_size
            zombie["thaw"]()
            woke = load.elapsed

            def a_let_go() -> bool:
                """A exited, or answers again having been through a rebalance since."""
                if a.pid() is None:
                    times["a_exited"] = load.elapsed - woke
                    return True
                now = a.health() or {}
                engine = now.get("engine") or {}
                if engine.get("rebalances", 0) > before.get("rebalances", 0):  # type: ignore[union-attr]
                    times["a_rebalanced"] = load.elapsed - woke
                    return True
                return False

            wait_for(a_let_go, "A to exit or rejoin after waking", 45, load)
            wait_for(lambda: load.elapsed >= woke + 5, "more load", 30, load)
            load.finish()
            wait_for_outputs(env, load, 90, [a, b])
        finally:
            load.stop()

        woke_log = log_since(a.log_file, wake_at)
        after = (a.health() or {}).get("engine")
        print(f"timing (s): {times}; A's pid {zombie['pid']}, up after: {a.pid() is not None}")
        print(f"A's engine stats before the freeze: {before}; at the end: {after}")
        print("A after waking:\n  " + "\n  ".join(woke_log))
        window = (zombie["stopped_at"], zombie["resumed_at"])
        evidence = copies(read(env, s.topics.executions), lambda v: v["component_order_id"], window)
        evidence += copies(read(env, s.topics.fills), lambda v: v["component_order_id"], window)
        evidence += copies(
            read(env, s.topics.deadletters),
            lambda v: (v.get("source_topic"), v.get("source_partition"), v.get("source_offset")),
            window,
        )
        assert not evidence, "\n".join(
            ["sent twice (the zombie's window?):", *evidence, "A after waking:", *woke_log]
        )
        # Positions are read from B: it is up (and routes to A if A rejoined).
        verify(env, load, port_b, [a, b])
