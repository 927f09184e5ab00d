"""The schedule of a paced sender: when each record is due, how late it went, when to alarm.

Pure: no clock of its own and no I/O. The caller passes the time in (``now_ns``,
from `time.perf_counter_ns` in `fintank.producer`, a fake clock in tests), and
`pace` gets its clock, its sleep and its send handed to it.

Slot ``i`` of a run at ``rate`` records per second is due at
``start_ns + i * 1e9 / rate`` (whole ns, computed exactly from the start, never
by adding a period to the previous send): a slow cycle delays the slots it
overlaps and no other (no cumulative drift), and slots that fell behind are
sent at once (catch-up) with their lag recorded. A slot is *missed* when it goes out more
than ``slack_ns`` after it was due (default: one period, and at least 1 ms,
because the event loop's timers and the machine's scheduler do not promise
better). ``overload_after`` missed slots in a row (100) open an overload
episode, reported once; the first slot on time again closes it.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Literal, TypeVar

NS_PER_S = 1_000_000_000
NS_PER_MS = 1_000_000
OVERLOAD_AFTER = 100
MIN_SLACK_NS = NS_PER_MS

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Alarm:
    """A change of state: an overload episode opened, or it ended (the sender caught up)."""

    kind: Literal["overload", "recovered"]
    slot: int  # the slot whose send changed the state
    lag_ns: int  # that slot's lag
    missed: int  # consecutive missed slots (for "recovered": how many the episode had)


class Lags:
    """Schedule lags in a histogram of whole microseconds.

    Percentiles are exact to 1 µs (the maximum to 1 ns), and memory grows with
    the number of distinct microsecond values seen, not with the run's length,
    so an hour at 10,000 records/s costs about what a second does.
    """

    def __init__(self) -> None:
        self.counts: dict[int, int] = {}
        self.n = 0
        self.max_ns = 0

    def add(self, lag_ns: int) -> None:
        us = lag_ns // 1000
        self.counts[us] = self.counts.get(us, 0) + 1
        self.n += 1
        if lag_ns > self.max_ns:
            self.max_ns = lag_ns

    def percentile_ns(self, q: float) -> int:
        """The nearest-rank ``q`` quantile (0 < q <= 1), rounded down to the microsecond."""
        if self.n == 0:
            return 0
        rank = max(1, math.ceil(q * self.n))
        seen = 0
        for us in sorted(self.counts):
            seen += self.counts[us]
            if seen >= rank:
                return us * 1000
        return self.max_ns  # unreachable: the counts sum to n


def slots_within(rate: float, duration_s: float) -> int:
    """How many slots of a run at ``rate`` (> 0) are due within its first ``duration_s`` seconds."""
    num, den = _fraction(rate)
    end = round(duration_s * NS_PER_S)
    # Slot i is due at floor(i * 1e9 * den / num) < end, i.e. i * 1e9 * den < end * num.
    return max(0, -(-end * num // (NS_PER_S * den)))


def _fraction(rate: float) -> tuple[int, int]:
    """``rate`` as the decimal it was written as (0.1 is 1/10, not the binary float's
    0.1000000000000000055...), numerator and denominator."""
    return Fraction(repr(rate)).as_integer_ratio()


class Pacer:
    """The schedule of one run: which slot is next, when it is due, how late the sent ones were.

    ``duration_ns`` (optional) closes the run: at a rate, to the slots due within
    it; at rate 0 (as fast as possible, no schedule, no lag), at that time.
    """

    def __init__(
        self,
        rate: float,
        start_ns: int,
        *,
        slack_ns: int | None = None,
        overload_after: int = OVERLOAD_AFTER,
        duration_ns: int | None = None,
    ) -> None:
        if not (rate >= 0 and math.isfinite(rate)):
            raise ValueError(f"rate must be a finite number >= 0, got {rate!r}")
        if overload_after < 1:
            raise ValueError("overload_after must be >= 1")
        self.rate = rate
        self.start_ns = start_ns
        self.period_ns = NS_PER_S / rate if rate > 0 else 0.0
        # The rate as an exact fraction num / den: due times are whole-ns floors of
        # i * 1e9 * den / num in integers, exact for any i (a float would drift by
        # a nanosecond here and there, and past 2**53 ns by more).
        num, den = _fraction(rate if rate > 0 else 1.0)
        self._ns_num, self._ns_den = NS_PER_S * den, num
        self.slack_ns = max(round(self.period_ns), MIN_SLACK_NS) if slack_ns is None else slack_ns
        self.overload_after = overload_after
        self.end_ns = None if duration_ns is None else start_ns + duration_ns
        self.next = 0  # the slot to send next
        self._next_due = start_ns  # its due time (computed once per slot)
        self.lags = Lags()
        self.last_lag_ns = 0
        self.streak = 0  # missed slots in a row, up to the last one sent
        self.overloaded = False  # in an overload episode
        self.missed = 0  # missed slots in all
        self.episodes = 0  # overload episodes opened
        self.first_ns: int | None = None  # when the first and the last slot were sent
        self.last_ns: int | None = None

    def due_ns(self, slot: int) -> int:
        """When ``slot`` is due (rate 0: at the start; nothing waits for it)."""
        if self.rate == 0:
            return self.start_ns
        return self.start_ns + slot * self._ns_num // self._ns_den

    def wait_ns(self, now_ns: int) -> int:
        """How long to wait from ``now_ns`` until the next slot is due (0: send it now)."""
        if self.rate == 0:
            return 0
        return max(0, self._next_due - now_ns)

    def open(self, now_ns: int) -> bool:
        """Whether the next slot belongs to the run (always, without a duration)."""
        if self.end_ns is None:
            return True
        if self.rate == 0:
            return now_ns < self.end_ns
        return self._next_due < self.end_ns

    def sent(self, now_ns: int) -> Alarm | None:
        """The next slot went out at ``now_ns``: record its lag, move on; the alarm it raises, if any.

        Sending a slot before it is due is a bug of the caller (`ValueError`).
        """
        slot, due = self.next, self._next_due
        self.next += 1
        if self.first_ns is None:
            self.first_ns = now_ns
        self.last_ns = now_ns
        if self.rate == 0:
            return None
        self._next_due = self.due_ns(self.next)
        lag = now_ns - due
        if lag < 0:
            raise ValueError(f"slot {slot} sent {-lag} ns before it was due")
        self.last_lag_ns = lag
        self.lags.add(lag)
        if lag > self.slack_ns:
            self.missed += 1
            self.streak += 1
            if self.streak == self.overload_after and not self.overloaded:
                self.overloaded = True
                self.episodes += 1
                return Alarm("overload", slot, lag, self.streak)
            return None
        streak, self.streak = self.streak, 0
        if self.overloaded:
            self.overloaded = False
            return Alarm("recovered", slot, lag, streak)
        return None

    def unpaced(self, sent: int, first_ns: int, last_ns: int) -> None:
        """A run at rate 0 without a duration sent ``sent`` records between these times
        without reporting each (so that as fast as possible reads no clock per record)."""
        self.next = sent
        if sent:
            self.first_ns, self.last_ns = first_ns, last_ns

    def summary(self) -> Summary:
        """What the run achieved so far."""
        sent, first, last = self.next, self.first_ns, self.last_ns
        seconds = 0.0 if first is None or last is None else (last - first) / NS_PER_S
        lag = None
        if self.rate > 0 and self.lags.n:
            lag = (
                self.lags.percentile_ns(0.50) / NS_PER_MS,
                self.lags.percentile_ns(0.99) / NS_PER_MS,
                self.lags.max_ns / NS_PER_MS,
            )
        return Summary(sent, self.rate, seconds, lag, self.missed, self.episodes)


@dataclass(frozen=True, slots=True)
class Summary:
    """A paced run's figures: how many records, how fast, how late against the schedule."""

    sent: int
    target_rate: float  # 0: as fast as possible
    seconds: float  # from the first send to the last
    lag_ms: tuple[float, float, float] | None  # p50, p99, max; None without a schedule
    missed: int  # slots sent more than the slack late
    overloads: int  # overload episodes

    @property
    def achieved_rate(self) -> float:
        """Records per second between the first send and the last (0 for fewer than two)."""
        if self.sent < 2 or self.seconds <= 0:
            return 0.0
        return (self.sent - 1) / self.seconds

    def as_dict(self) -> dict[str, Any]:
        """The figures as JSON-ready values (``lag_ms`` is null at rate 0: there is no schedule)."""
        lag = None
        if self.lag_ms is not None:
            lag = dict(zip(("p50", "p99", "max"), (round(v, 3) for v in self.lag_ms), strict=True))
        return {
            "sent": self.sent,
            "target_rate": self.target_rate,
            "achieved_rate": round(self.achieved_rate, 1),
            "seconds": round(self.seconds, 3),
            "lag_ms": lag,
            "missed": self.missed,
            "overloads": self.overloads,
        }

    def line(self) -> str:
        """One line for a person: the achieved rate and the lag percentiles."""
        target = f"target {self.target_rate:,g}/s" if self.target_rate else "as fast as possible"
        head = f"rate {self.achieved_rate:,.1f}/s ({target}) over {self.seconds:.3f} s"
        if self.lag_ms is None:
            return f"{head}; no schedule, no lag"
        p50, p99, top = self.lag_ms
        return (
            f"{head}; schedule lag p50 {p50:.3f} ms, p99 {p99:.3f} ms, max {top:.3f} ms; "
            f"{self.missed} missed, {self.overloads} overloads"
        )


async def pace(
    pacer: Pacer,
    records: Iterable[T],
    send: Callable[[T], Awaitable[Any]],
    *,
    clock: Callable[[], int],
    sleep: Callable[[int], Awaitable[None]],
    alarm: Callable[[Alarm], None] = lambda _: None,
    progress: Callable[[int], None] = lambda _: None,
    then: Iterable[T] = (),
) -> int:
    """Send ``records`` on ``pacer``'s schedule while its run is open, then ``then``; returns
    how many were sent.

    For each slot: ``sleep(ns)`` until it is due (again if it woke early), read
    ``clock()``, ``send(record)``, ``progress(count)``, and ``alarm(...)`` when an
    overload episode opens or ends. At rate 0 with neither a duration nor a
    schedule to keep, the clock is not read per record, so as fast as possible
    costs what a bare loop does.
    """
    if pacer.rate == 0 and pacer.end_ns is None:
        sent = 0
        started = clock()
        for record in itertools.chain(records, then):
            await send(record)
            sent += 1
            progress(sent)
        pacer.unpaced(sent, started, clock())
        return sent
    sent = 0
    for record in itertools.chain(_while_open(pacer, records, clock), then):
        while (wait := pacer.wait_ns(now := clock())) > 0:
            await sleep(wait)  # and read the clock again: a sleep may end early
        await send(record)
        sent += 1
        raised = pacer.sent(now)
        if raised is not None:
            alarm(raised)
        progress(sent)
    return sent


def _while_open(pacer: Pacer, records: Iterable[T], clock: Callable[[], int]) -> Iterable[T]:
    """``records`` while the pacer's run is open (checked before each is taken)."""
    if pacer.end_ns is None:
        return records
    return _until_closed(pacer, iter(records), clock)


def _until_closed(pacer: Pacer, records: Iterator[T], clock: Callable[[], int]) -> Iterator[T]:
    while pacer.open(clock()):
        try:
            yield next(records)
        except StopIteration:
            return
