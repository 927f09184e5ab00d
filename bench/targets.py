"""The benchmark's targets, each judged from what one `invoke bench` run measured.

Throughput targets are about the ``fintank-v1`` row (the worker writing to
InfluxDB 1.x); a target whose inputs were not measured in the run (a variant
left out, the latency part skipped) is reported as "not measured", never as met.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Protocol

FINTANK = "fintank-v1"
VS_QUIX = 1.0  # fintank end to end / bare-parse Quix (quix-json)
VS_SAMEJOB = 2.0  # "well ahead" of the same-job Quix peer: at least this ratio
STARTUP_S = 0.3  # assignment to first confirmed write
STEADY_VS_RAW = 0.5  # fintank's 2nd-half rate / raw aiokafka's 2nd-half rate
PEAK_RSS_MIB = 300.0


class Row(Protocol):
    """What `bench.run.Outcome` offers (kept structural so this module stands alone)."""

    @property
    def median(self) -> float: ...

    @property
    def steady(self) -> float: ...

    @property
    def startup(self) -> float | None: ...

    @property
    def peak_rss_mib(self) -> float: ...

    @property
    def rates(self) -> list[float]: ...


@dataclass(frozen=True)
class Target:
    name: str
    want: str
    value: str
    met: bool | None  # None: not measured in this run

    @property
    def verdict(self) -> str:
        return "not measured" if self.met is None else ("met" if self.met else "NOT MET")

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "verdict": self.verdict}


def _ratio(name: str, want: str, a: float, b: float, floor: float, detail: str) -> Target:
    if not (a and b):
        return Target(name, want, "-", None)
    ratio = a / b
    return Target(name, want, f"{ratio:.2f}x ({detail})", ratio >= floor)


def throughput_targets(outcomes: Mapping[str, Row]) -> list[Target]:
    f = outcomes.get(FINTANK)
    fin = f.median if f and f.rates else 0.0

    def rate(name: str, steady: bool = False) -> float:
        o = outcomes.get(name)
        if not o or not o.rates:
            return 0.0
        return o.steady if steady else o.median

    quix, same = rate("quix-json"), rate("quix-samejob")
    fin_steady, raw_steady = rate(FINTANK, True), rate("raw-aiokafka", True)
    raw = rate("raw-aiokafka")
    steady_detail = f"{fin_steady:,.0f} vs {raw_steady:,.0f} ticks/s; see the 2nd half* note"
    if raw:
        steady_detail += f"; {fin_steady / raw:.2f}x raw's median"
    targets = [
        _ratio(
            "fintank end to end vs bare-parse Quix (quix-json)",
            f">= {VS_QUIX:.2f}x",
            fin,
            quix,
            VS_QUIX,
            f"{fin:,.0f} vs {quix:,.0f} ticks/s, medians",
        ),
        _ratio(
            "fintank vs the same-job Quix peer (quix-samejob)",
            f">= {VS_SAMEJOB:.2f}x (well ahead)",
            fin,
            same,
            VS_SAMEJOB,
            f"{fin:,.0f} vs {same:,.0f} ticks/s, medians",
        ),
        _ratio(
            "steady state: fintank 2nd half vs raw aiokafka 2nd half",
            f">= {STEADY_VS_RAW:.2f}x",
            fin_steady,
            raw_steady,
            STEADY_VS_RAW,
            steady_detail,
        ),
    ]
    startup = f.startup if f else None
    targets.append(
        Target(
            "start-up: assignment to first confirmed write (fintank-v1, median)",
            f"<= {STARTUP_S:.2f} s",
            "-" if startup is None else f"{startup:.2f} s (+-0.05 s: /health polled every 50 ms)",
            None if startup is None else startup <= STARTUP_S,
        )
    )
    rss = f.peak_rss_mib if f and f.rates else 0.0
    targets.append(
        Target(
            "peak RSS of the fintank-v1 worker (max over rounds)",
            f"<= {PEAK_RSS_MIB:.0f} MiB",
            f"{rss:.0f} MiB" if rss else "-",
            rss <= PEAK_RSS_MIB if rss else None,
        )
    )
    return targets


def latency_targets(result: Mapping[str, Any] | None) -> list[Target]:
    names = {
        "tick_seen": "latency: tick -> execution seen",
        "order_seen_market": "latency: order -> execution seen (market, quoted symbol)",
    }
    want = "p99 <= 10 ms, max <= 100 ms, none > 1 s"
    if result is None:
        out = [Target(label, want, "-", None) for label in names.values()]
        return [*out, Target("every order got exactly one execution", "yes", "-", None)]
    out = []
    for key, label in names.items():
        s = result["latency"][key]
        value = (
            f"n={s['count']} p99 {s['p99_ms']:.1f} ms, max {s['max_ms']:.1f} ms, "
            f"{s['over_1s']} > 1 s"
        )
        out.append(Target(label, want, value, bool(s["met"])))
    o = result["orders"]
    out.append(
        Target(
            "every order got exactly one execution",
            "yes",
            f"{o['orders']} orders, {o['missing']} missing, {o['duplicated']} duplicated",
            bool(result["exactly_once"]),
        )
    )
    return out


def report(targets: list[Target]) -> list[str]:
    width = max(len(t.name) for t in targets)
    lines = ["Targets:"]
    for t in targets:
        lines.append(f"  {t.name:{width}}  {t.verdict:12}  want {t.want}; got {t.value}")
    return lines
