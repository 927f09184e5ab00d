"""The alert bolt: valid ticks -> "hot mover" alerts (CONTRACT.md `alerts`).

On a tick at event time t with mid m, over the symbol's ticks seen so far with
timestamps in (t - window_s, t] (the tick itself included, out-of-order ticks
seen earlier included): UP when (m - min) / min >= threshold, DOWN when
(max - m) / max >= threshold. A symbol and direction alerts again only at
t >= t0 + window_s, t0 being the timestamp of its last alert.

Retention (what "seen so far" costs). Ticks arrive in any timestamp order, and
a tick arbitrarily far in the past would need every tick ever seen near its
timestamp: exactness for all ticks means unbounded memory. So each symbol
keeps the ticks with timestamp > (newest - max_lateness_s) - window_s, newest
being the greatest timestamp seen, and:

- a tick with t >= newest - max_lateness_s (every in-order tick, and any tick
  at most ``max_lateness_s`` behind the newest) is evaluated exactly: its
  window (t - window_s, t] lies inside what is kept (and rounding is monotonic,
  so the float bounds keep that true to the last ULP);
- a tick further behind ("too late") is still remembered for the windows of
  later ticks, but does not alert itself: its own window reaches into ticks
  already dropped, and a partial answer would be neither the contract's nor
  stable. Ticks that late are rare in practice; pass ``max_lateness_s=math.inf``
  for the contract's letter at the price of unbounded memory.

The default ``max_lateness_s`` is one window (300 s): a symbol keeps at most
two windows of ticks. Those are held sorted by timestamp in blocks of a few
hundred, each with its min and max mid, so a window's min and max cost two
partial blocks plus one min/max over the block summaries: tens of microseconds
for windows of hundreds of thousands of ticks, in order or not.

The hot path is the in-order tick, whose window ends at the newest timestamp.
For it the state also keeps two monotonic queues over the ticks that can still
matter for such windows: ``lo_*`` the ticks with no later tick of smaller or
equal mid (mids increasing front to back), ``hi_*`` likewise for the max. The
window's min and max are their first live entries: O(1) amortised per tick.
An out-of-order tick is inserted into both queues at its timestamp (dropping
the entries it dominates) and answered from the blocks.

`AlertState` is mutable (copying two windows of ticks per tick would cost more
than the rest); `on_tick` updates it in place and returns it. It holds only
lists of numbers, so orjson serialises it and `AlertState.from_dict` rebuilds it.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fintank.analytics.records import Alert
from fintank.records import Tick

UP = "UP"
DOWN = "DOWN"

# A block is split in two halves once it holds more than 2 * _LOAD ticks.
_LOAD = 512


@dataclass(slots=True)
class AlertState:
    """One symbol's alert state (mutable, see the module docs).

    ``times`` / ``mids``: the kept ticks' timestamps and mids, in blocks sorted by
    timestamp (within and across blocks); ``lows`` / ``highs``: each block's min
    and max mid. ``newest``: the greatest timestamp seen (0 before any tick).
    ``last_up`` / ``last_down``: timestamp of the last alert in that direction.
    ``lo_t`` / ``lo_m`` and ``hi_t`` / ``hi_m``: the min and max queues (see the
    module docs), live from index ``lo_head`` / ``hi_head`` on.
    """

    newest: float = 0.0
    last_up: float | None = None
    last_down: float | None = None
    times: list[list[float]] = field(default_factory=list)
    mids: list[list[float]] = field(default_factory=list)
    lows: list[float] = field(default_factory=list)
    highs: list[float] = field(default_factory=list)
    lo_t: list[float] = field(default_factory=list)
    lo_m: list[float] = field(default_factory=list)
    lo_head: int = 0
    hi_t: list[float] = field(default_factory=list)
    hi_m: list[float] = field(default_factory=list)
    hi_head: int = 0

    @classmethod
    def from_dict(cls, obj: Mapping[str, Any]) -> AlertState:
        """Rebuild a state from its JSON object (as stored by orjson in a table)."""
        return cls(**obj)

    def kept(self) -> int:
        """How many ticks the state holds (a gauge for memory)."""
        return sum(len(block) for block in self.times)


def on_tick(
    state: AlertState | None,
    tick: Tick,
    window_s: float = 300.0,
    threshold: float = 0.05,
    max_lateness_s: float | None = None,
    evaluate: bool = True,
) -> tuple[AlertState, list[Alert]]:
    """Fold one valid tick into its symbol's state (in place): (state, alerts it triggers).

    ``max_lateness_s`` (default: ``window_s``) bounds how far behind the newest
    timestamp a tick may be and still alert; see the module docs. With
    ``evaluate=False`` the tick is only remembered for later windows (a tick
    that already had its turn before a restart).
    """
    if state is None:
        state = AlertState()
    lateness = window_s if max_lateness_s is None else max_lateness_s
    t = tick.timestamp
    m = (tick.bid + tick.ask) / 2
    in_order = t >= state.newest
    if in_order:
        state.newest = t
    horizon = state.newest - lateness
    cutoff = horizon - window_s  # nothing at or before this is in any window still evaluated
    if t <= cutoff:
        return state, []
    _insert(state, t, m)
    _prune(state, cutoff)
    if in_order:
        low, high = _queue_push(state, t, m, t - window_s)
    elif t > state.newest - window_s:  # in the window of later in-order ticks
        _queue_insert(state, t, m)
    if t < horizon or not evaluate:
        return state, []  # too late to alert (its window reaches past what is kept), or replayed
    if not in_order:
        low, high = _min_max(state, t - window_s, t)

    return state, _judge(state, tick.symbol, t, m, low, high, window_s, threshold)


def on_ticks(
    state: AlertState | None,
    ticks: Sequence[Tick],
    window_s: float = 300.0,
    threshold: float = 0.05,
    max_lateness_s: float | None = None,
) -> tuple[AlertState, list[Alert]]:
    """`on_tick` over many ticks of ONE symbol, in arrival order: the same alerts, faster.

    The hot path: an in-order tick is appended to the newest block and the
    queues inline; any other tick goes through `on_tick`.
    """
    if state is None:
        state = AlertState()
    lateness = window_s if max_lateness_s is None else max_lateness_s
    alerts: list[Alert] = []
    times, mids, lows, highs = state.times, state.mids, state.lows, state.highs
    for tick in ticks:
        t = tick.timestamp
        if t < state.newest or not times:
            alerts += on_tick(state, tick, window_s, threshold, max_lateness_s)[1]
            continue
        m = (tick.bid + tick.ask) / 2
        state.newest = t
        i = len(times) - 1
        times[i].append(t)
        mids[i].append(m)
        if m < lows[i]:
            lows[i] = m
        if m > highs[i]:
            highs[i] = m
        if len(times[i]) > 2 * _LOAD:
            _split(state, i)
        cutoff = t - lateness - window_s
        if times[0][-1] <= cutoff:
            _prune(state, cutoff)
        low, high = _queue_push(state, t, m, t - window_s)
        if (m - low) / low >= threshold or (high - m) / high >= threshold:
            alerts += _judge(state, tick.symbol, t, m, low, high, window_s, threshold)
    return state, alerts


def _judge(
    state: AlertState,
    symbol: str,
    t: float,
    m: float,
    low: float,
    high: float,
    window_s: float,
    threshold: float,
) -> list[Alert]:
    """The alerts of a tick at ``t`` with mid ``m`` whose window spans ``low``..``high``."""
    alerts: list[Alert] = []
    if (m - low) / low >= threshold and (state.last_up is None or t >= state.last_up + window_s):
        alerts.append(Alert(symbol, UP, (m - low) / low * 100.0, window_s, low, m, t))
        state.last_up = t
    if (high - m) / high >= threshold and (
        state.last_down is None or t >= state.last_down + window_s
    ):
        alerts.append(Alert(symbol, DOWN, (high - m) / high * 100.0, window_s, high, m, t))
        state.last_down = t
    return alerts


def _queue_push(state: AlertState, t: float, m: float, after: float) -> tuple[float, float]:
    """Append the newest tick to both queues, expire entries at or before ``after``: (min, max)."""
    lo_t, lo_m = state.lo_t, state.lo_m
    head = state.lo_head
    while len(lo_m) > head and lo_m[-1] >= m:
        lo_t.pop()
        lo_m.pop()
    lo_t.append(t)
    lo_m.append(m)
    while lo_t[head] <= after:
        head += 1
    if head > 1024 and head * 2 > len(lo_t):  # compact now and then
        del lo_t[:head], lo_m[:head]
        head = 0
    state.lo_head = head

    hi_t, hi_m = state.hi_t, state.hi_m
    head = state.hi_head
    while len(hi_m) > head and hi_m[-1] <= m:
        hi_t.pop()
        hi_m.pop()
    hi_t.append(t)
    hi_m.append(m)
    while hi_t[head] <= after:
        head += 1
    if head > 1024 and head * 2 > len(hi_t):
        del hi_t[:head], hi_m[:head]
        head = 0
    state.hi_head = head
    return lo_m[state.lo_head], hi_m[state.hi_head]


def _queue_insert(state: AlertState, t: float, m: float) -> None:
    """Insert an out-of-order tick into both queues at its timestamp (after equal ones)."""
    lo_t, lo_m, head = state.lo_t, state.lo_m, state.lo_head
    pos = bisect_right(lo_t, t, head)
    if pos == len(lo_m) or lo_m[pos] > m:  # else a later tick is as low: never the min
        start = bisect_left(lo_m, m, head, pos)  # earlier entries it makes useless
        lo_t[start:pos] = [t]
        lo_m[start:pos] = [m]
    hi_t, hi_m, head = state.hi_t, state.hi_m, state.hi_head
    pos = bisect_right(hi_t, t, head)
    if pos == len(hi_m) or hi_m[pos] < m:
        # Mids decrease front to back: the useless earlier entries are those <= m.
        start = pos
        while start > head and hi_m[start - 1] <= m:
            start -= 1
        hi_t[start:pos] = [t]
        hi_m[start:pos] = [m]


def _head(block: list[float]) -> float:
    return block[0]


def _insert(state: AlertState, ts: float, mid: float) -> None:
    times, mids = state.times, state.mids
    if not times:
        times.append([ts])
        mids.append([mid])
        state.lows.append(mid)
        state.highs.append(mid)
        return
    if ts >= times[-1][-1]:  # in order: the common case
        i = len(times) - 1
        times[i].append(ts)
        mids[i].append(mid)
    else:
        i = max(bisect_right(times, ts, key=_head) - 1, 0)
        pos = bisect_right(times[i], ts)
        times[i].insert(pos, ts)
        mids[i].insert(pos, mid)
    if mid < state.lows[i]:
        state.lows[i] = mid
    if mid > state.highs[i]:
        state.highs[i] = mid
    if len(times[i]) > 2 * _LOAD:
        _split(state, i)


def _split(state: AlertState, i: int) -> None:
    times, mids = state.times, state.mids
    half = len(times[i]) // 2
    times.insert(i + 1, times[i][half:])
    mids.insert(i + 1, mids[i][half:])
    del times[i][half:]
    del mids[i][half:]
    state.lows[i : i + 1] = [min(mids[i]), min(mids[i + 1])]
    state.highs[i : i + 1] = [max(mids[i]), max(mids[i + 1])]


def _prune(state: AlertState, cutoff: float) -> None:
    """Drop whole blocks whose ticks are all at or before ``cutoff``.

    The first kept block may still hold such ticks; they are harmless, as every
    window evaluated from now on starts after ``cutoff``.
    """
    times = state.times
    drop = 0
    while drop < len(times) - 1 and times[drop][-1] <= cutoff:
        drop += 1
    if drop:
        del times[:drop]
        del state.mids[:drop]
        del state.lows[:drop]
        del state.highs[:drop]


def _min_max(state: AlertState, after: float, upto: float) -> tuple[float, float]:
    """Min and max mid of the kept ticks with ``after < timestamp <= upto`` (at least one).

    Whole blocks in the range answer from their summaries; only the partial
    blocks at either end are scanned (for an in-order tick the last block is
    whole, so only the oldest one is).
    """
    times, mids = state.times, state.mids
    a = max(bisect_right(times, after, key=_head) - 1, 0)
    b = bisect_right(times, upto, key=_head) - 1
    start = bisect_right(times[a], after)
    end = bisect_right(times[b], upto)
    whole_end = end == len(times[b])
    if a == b:
        if start == 0 and whole_end:
            return state.lows[a], state.highs[a]
        part = mids[a][start:end]
        return min(part), max(part)
    first_whole = a + 1 if start else a
    last_whole = b + 1 if whole_end else b  # exclusive
    low, high = math.inf, -math.inf
    if first_whole < last_whole:
        low = min(state.lows[first_whole:last_whole])
        high = max(state.highs[first_whole:last_whole])
    if start and start < len(times[a]):
        part = mids[a][start:]
        low, high = min(low, min(part)), max(high, max(part))
    if not whole_end:
        part = mids[b][:end]
        low, high = min(low, min(part)), max(high, max(part))
    return low, high
