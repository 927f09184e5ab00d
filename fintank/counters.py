"""The counters the hot path bumps for ``GET /metrics``: plain ints, read at scrape time.

The engine and the persister only add to these (a dict or list slot per
batch, per write, per record sent); `fintank.metrics` turns them into the
Prometheus text format when something scrapes ``/metrics``, so a worker
nobody scrapes pays for no more than the increments.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

#: Upper bounds (seconds) of the batch processing time buckets: a batch of one
#: tick takes well under a millisecond, one of 5,000 tens of milliseconds.
BATCH_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
#: Upper bounds (seconds) of the InfluxDB write time buckets.
WRITE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Histogram:
    """Observations counted into fixed buckets (Prometheus' ``le``: value <= bound), plus a sum."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: Iterable[float]) -> None:
        self.bounds = tuple(sorted(bounds))
        self.counts = [0] * (len(self.bounds) + 1)  # the last one: above every bound (+Inf)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value

    @property
    def count(self) -> int:
        return sum(self.counts)

    def cumulative(self) -> list[tuple[float, int]]:
        """(upper bound, observations <= it) per bucket, the last bound ``inf``."""
        out = []
        total = 0
        for bound, n in zip((*self.bounds, float("inf")), self.counts, strict=True):
            total += n
            out.append((bound, total))
        return out


@dataclass(slots=True)
class EngineCounters:
    """What the engine counts, since the worker started (never reset by a rebalance)."""

    #: input topic -> records handed to a processor
    records_in: defaultdict[str, int] = field(default_factory=lambda: defaultdict(int))
    #: topic -> records handed to the producer (outputs, dead letters, changelogs)
    records_out: defaultdict[str, int] = field(default_factory=lambda: defaultdict(int))
    #: source topic -> dead letters sent
    deadletters: defaultdict[str, int] = field(default_factory=lambda: defaultdict(int))
    #: group (bolt) -> seconds per batch in its processor
    batch_seconds: dict[str, Histogram] = field(default_factory=dict)
    recoveries: int = 0
    recovery_seconds: float = 0.0  # all recoveries together
    last_recovery_seconds: float = 0.0

    def batch_histogram(self, group: str) -> Histogram:
        """The batch time histogram of ``group`` (made on first use)."""
        hist = self.batch_seconds.get(group)
        if hist is None:
            hist = self.batch_seconds[group] = Histogram(BATCH_BUCKETS)
        return hist

    def recovered(self, seconds: float) -> None:
        self.recoveries += 1
        self.recovery_seconds += seconds
        self.last_recovery_seconds = seconds
