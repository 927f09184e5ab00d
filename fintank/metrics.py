"""``GET /metrics``: the worker's counters in the Prometheus text format, read at scrape time.

`FintankCollector` is a prometheus-client collector over what the worker
already keeps: the engine's counters (`fintank.counters.EngineCounters`:
records in and out per topic, dead letters by source topic, batch times,
recoveries) and stats, the consumer's lag per partition (`Engine.lags`), the
persister's counters and write times, and every bolt's ``stats()``. Nothing
is observed through prometheus-client on the hot path: `collect` builds the
metric families from those numbers each time ``/metrics`` is scraped.

Names carry the ``fintank_`` prefix and their unit (``_seconds``,
``_total`` for counters); labels are ``topic``, ``partition`` and ``bolt``.
README.md ("Metrics") lists them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from typing import Protocol

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
    SummaryMetricFamily,
)
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector, CollectorRegistry

from fintank.counters import Histogram
from fintank.engine import Engine
from fintank.sinks.influx import PersisterStats

#: The text exposition format this route serves (what Prometheus and VictoriaMetrics scrape).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

#: bolt name -> its stats() summed over this worker's instances
BoltStats = Callable[[], Mapping[str, Mapping[str, int]]]


class PersisterView(Protocol):
    """What the collector reads of the persister (`fintank.sinks.influx.InfluxPersister`)."""

    stats: PersisterStats

    def __len__(self) -> int: ...


class FintankCollector(Collector):
    """The worker's metrics, built from its counters whenever they are collected."""

    def __init__(self, engine: Engine, persister: PersisterView, bolts: BoltStats) -> None:
        self.engine = engine
        self.persister = persister
        self.bolts = bolts

    def collect(self) -> Iterator[Metric]:
        yield from self._engine()
        yield from self._persister()
        yield from self._bolts()

    def _engine(self) -> Iterator[Metric]:
        engine, counters = self.engine, self.engine.counters
        yield _by_label(
            CounterMetricFamily,
            "fintank_records_in",
            "Records handed to a bolt, per input topic.",
            "topic",
            counters.records_in,
        )
        yield _by_label(
            CounterMetricFamily,
            "fintank_records_out",
            "Records sent, per topic (outputs, dead letters, changelogs).",
            "topic",
            counters.records_out,
        )
        yield _by_label(
            CounterMetricFamily,
            "fintank_deadletters",
            "Dead letters sent, per source topic.",
            "topic",
            counters.deadletters,
        )
        batches = HistogramMetricFamily(
            "fintank_batch_duration_seconds",
            "Time a bolt took to process one fetched batch (one partition's records).",
            labels=["bolt"],
        )
        for bolt, hist in sorted(counters.batch_seconds.items()):
            batches.add_metric([bolt], _buckets(hist), hist.sum)
        yield batches
        lag = GaugeMetricFamily(
            "fintank_consumer_lag_records",
            "Records of an assigned input partition not processed yet (high-water mark at the "
            "last fetch minus the next offset to process).",
            labels=["topic", "partition"],
        )
        for tp, n in sorted(engine.lags().items()):
            lag.add_metric([tp.topic, str(tp.partition)], n)
        yield lag
        yield GaugeMetricFamily(
            "fintank_ready",
            "1 once the worker has partitions and has recovered them, else 0.",
            value=1 if engine.ready.is_set() and engine.assigned else 0,
        )
        yield GaugeMetricFamily(
            "fintank_assigned_partitions",
            "Input partitions assigned to this worker.",
            value=len(engine.assigned),
        )
        yield SummaryMetricFamily(
            "fintank_recovery_seconds",
            "Time from an assignment to its tasks being restored and ready (all of them).",
            count_value=counters.recoveries,
            sum_value=counters.recovery_seconds,
        )
        yield GaugeMetricFamily(
            "fintank_last_recovery_seconds",
            "Time the last recovery took (0 before the first).",
            value=counters.last_recovery_seconds,
        )
        for name, value in sorted(engine.stats.items()):
            yield CounterMetricFamily(
                f"fintank_engine_{name}", f"Engine: {ENGINE_STATS.get(name, name)}.", value=value
            )

    def _persister(self) -> Iterator[Metric]:
        stats = self.persister.stats
        yield GaugeMetricFamily(
            "fintank_persister_buffered_points",
            "InfluxDB points waiting in the persister's buffer.",
            value=len(self.persister),
        )
        for name, value, what in (
            ("written_points", stats.written, "InfluxDB points written"),
            ("batches", stats.batches, "InfluxDB writes that succeeded"),
            ("retries", stats.retries, "InfluxDB writes retried after a transient failure"),
            ("rejected_points", stats.rejected, "InfluxDB points the server refused"),
        ):
            yield CounterMetricFamily(f"fintank_persister_{name}", f"{what}.", value=value)
        hist = stats.write_seconds
        write = HistogramMetricFamily(
            "fintank_persister_write_duration_seconds", "Time of one successful InfluxDB write."
        )
        write.add_metric([], _buckets(hist), hist.sum)
        yield write

    def _bolts(self) -> Iterator[Metric]:
        families: dict[str, GaugeMetricFamily] = {}
        for bolt, stats in sorted(self.bolts().items()):
            for stat, value in sorted(stats.items()):
                name = "fintank_bolt_" + _metric_name(stat)
                if name not in families:
                    families[name] = GaugeMetricFamily(
                        name,
                        f"Bolt stats() {stat!r}, summed over this worker's instances "
                        "(partitions it owns now).",
                        labels=["bolt"],
                    )
                families[name].add_metric([bolt], value)
        yield from families.values()


ENGINE_STATS = {
    "rebalances": "rebalances (revokes) seen",
    "fences": "ownership proofs that needed a round trip",
    "fenced": "sends refused because the partitions had moved on",
    "commits": "offset commits",
    "cycles": "commit points that published state and committed",
}


def _by_label(
    kind: type[CounterMetricFamily], name: str, doc: str, label: str, values: Mapping[str, int]
) -> Metric:
    family = kind(name, doc, labels=[label])
    for key, value in sorted(values.items()):
        family.add_metric([key], value)
    return family


def _buckets(hist: Histogram) -> list[tuple[str, float]]:
    return [("+Inf" if b == float("inf") else repr(b), n) for b, n in hist.cumulative()]


def _metric_name(stat: str) -> str:
    """A stat's name as a metric name part: ``late ticks`` -> ``late_ticks``."""
    return re.sub(r"[^a-zA-Z0-9_]", "_", stat).strip("_").lower() or "stat"


def registry(collector: Collector) -> CollectorRegistry:
    """A registry of its own for ``collector`` (not the process-wide default one)."""
    reg = CollectorRegistry(auto_describe=False)
    reg.register(collector)
    return reg


def exposition(reg: CollectorRegistry) -> bytes:
    """The registry's metrics in the Prometheus text format (`CONTENT_TYPE`)."""
    return generate_latest(reg)
