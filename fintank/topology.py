"""A topology: the streams, the bolts that read and write them, and the worker's HTTP routes.

    topology = Topology("spreads")
    topology.stream("ticks")                     # a topic, by name (the topic may differ)
    topology.stream("spreads")
    topology.bolt(Spread)                        # reads ticks, emits spreads (see fintank.bolt)
    app = topology.app(Settings.from_env(os.environ))   # faust -A module:app worker

A topology is declarations only. `check` says what does not fit together
(a bolt reading a stream nobody declared, a declared stream nothing uses);
the runtime (`fintank.runtime`) turns it into a faust worker running
fintank's engine, and checks at start-up that the inputs each bolt reads
together are co-partitioned.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fintank.bolt import Bolt, bolt_name
from fintank.errors import FintankError

if TYPE_CHECKING:
    import faust

    from fintank.config import Settings

__all__ = ["DEADLETTERS", "Request", "Response", "Route", "Stream", "Topology", "TopologyError"]

#: The stream dead letters go to: those of bolts (`Out.deadletters`), and records a stream
#: cannot decode (written by the runtime).
DEADLETTERS = "deadletters"


class TopologyError(FintankError):
    """A topology does not fit together; the message names what and where."""


@dataclass(frozen=True, slots=True)
class Stream:
    """A Kafka topic as the topology names it.

    ``decode`` turns a record's bytes into the value a bolt gets in
    ``batch.values()`` (None: raw bytes); a record it cannot decode is
    dead-lettered with the reason and never reaches the bolt.
    ``key`` names what the records are keyed by (say ``"symbol"``): the
    grouping. Inputs a bolt reads together meet by partition, so they must
    share it; `Topology.problems` checks that where keys are declared.
    """

    name: str
    topic: str
    decode: Callable[[bytes], Any] | None = None
    key: str | None = None


@dataclass(frozen=True, slots=True)
class Request:
    """An HTTP request as a route handler sees it: path parameters and query."""

    params: Mapping[str, str]
    query: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class Response:
    """An HTTP answer: a status and a body (JSON-encoded by fintank's codec unless bytes)."""

    status: int
    body: Any
    content_type: str = "application/json"


@dataclass(frozen=True, slots=True)
class Route:
    """``GET path``, answered in one of three ways.

    * ``owner`` (a bolt class) and ``key``: the key (from the request) picks a
      partition of that bolt; the worker owning it answers with
      ``handler(bolt, request)``; any other worker asks that one.
    * ``gather`` (a bolt class): every worker answers with
      ``handler(its instances of that bolt, request)`` and the worker asked
      returns ``merge(all answers, request)``.
    * neither: ``handler(request)`` on the worker asked.

    ``check(request)`` runs first on the worker asked: a `Response` it returns
    (say a 400 for a bad query) is the answer.
    """

    path: str
    handler: Callable[..., Any]
    owner: type[Bolt] | None = None
    key: Callable[[Request], str] | None = None
    gather: type[Bolt] | None = None
    merge: Callable[[list[Any], Request], Response] | None = None
    check: Callable[[Request], Response | None] | None = None


@dataclass(frozen=True, slots=True)
class BoltSpec:
    cls: type[Bolt]
    name: str
    params: Mapping[str, Any]


@dataclass
class Topology:
    """Streams, bolts and routes; `app` builds the worker."""

    name: str
    streams: dict[str, Stream] = field(default_factory=dict)
    bolts: list[BoltSpec] = field(default_factory=list)
    routes: list[Route] = field(default_factory=list)
    services: list[Callable[[Any], Any]] = field(default_factory=list)

    def stream(
        self,
        name: str,
        topic: str | None = None,
        decode: Callable[[bytes], Any] | None = None,
        key: str | None = None,
    ) -> Stream:
        """Declare the stream ``name`` on Kafka topic ``topic`` (default: the same name),
        keyed by ``key`` (see `Stream`)."""
        if name in self.streams:
            raise TopologyError(f"stream {name!r} is declared twice")
        stream = Stream(name, topic or name, decode, key)
        self.streams[name] = stream
        return stream

    def bolt(self, cls: type[Bolt], name: str | None = None, **params: Any) -> None:
        """Run ``cls`` (one instance per partition: ``cls(state, **params)``)."""
        spec = BoltSpec(cls, name or bolt_name(cls), params)
        if any(b.name == spec.name for b in self.bolts):
            raise TopologyError(f"bolt {spec.name!r} is declared twice")
        if not cls.inputs:
            raise TopologyError(f"bolt {spec.name!r} reads nothing (declare its inputs)")
        self.bolts.append(spec)

    def route(self, path: str, handler: Callable[..., Any], **how: Any) -> None:
        """Serve ``GET path`` (see `Route` for ``owner``/``key``, ``gather``/``merge``, ``check``)."""
        self.routes.append(Route(path, handler, **how))

    def service(self, factory: Callable[[Any], Any]) -> None:
        """Run ``factory(settings)`` (a mode.Service) with the worker, e.g. a feed for a page."""
        self.services.append(factory)

    # ------------------------------------------------------------ checks
    def spec(self, cls: type[Bolt]) -> BoltSpec:
        for spec in self.bolts:
            if spec.cls is cls:
                return spec
        raise TopologyError(f"{cls.__name__} is not a bolt of topology {self.name!r}")

    def readers(self, stream: str) -> list[str]:
        return [b.name for b in self.bolts if stream in b.cls.inputs]

    def writers(self, stream: str) -> list[str]:
        names = [b.name for b in self.bolts if stream in b.cls.outputs]
        if stream == DEADLETTERS and any(s.decode for s in self.streams.values()):
            names.append("the runtime (records a stream cannot decode)")
        return names

    def inputs(self) -> list[str]:
        """Streams read and written by no bolt: what the outside world feeds in."""
        return sorted(s for s in self.streams if self.readers(s) and not self.writers(s))

    def outputs(self) -> list[str]:
        """Streams written and read by no bolt: what the topology hands to the outside world."""
        return sorted(s for s in self.streams if self.writers(s) and not self.readers(s))

    def problems(self) -> list[str]:
        """Everything that does not fit together, one sentence each (empty: it fits)."""
        out = []
        for b in self.bolts:
            for kind, names in (
                ("reads", b.cls.inputs),
                ("writes", b.cls.outputs),
                ("replays", b.cls.replay),
            ):
                for n in names:
                    if n not in self.streams:
                        out.append(f"bolt {b.name!r} {kind} {n!r}, which is not a declared stream")
            for n in b.cls.replay:
                if n not in b.cls.outputs:
                    out.append(f"bolt {b.name!r} replays {n!r} but does not write it")
            met = dict.fromkeys((*b.cls.inputs, *b.cls.replay))  # met by partition number
            keys = {n: self.streams[n].key for n in met if n in self.streams}
            if len({k for k in keys.values() if k is not None}) > 1:
                shown = ", ".join(f"{n} (key={k})" for n, k in keys.items())
                out.append(
                    f"bolt {b.name!r} meets {shown} by partition number: they must share one key"
                )
        decoding = sorted(n for n, st in self.streams.items() if st.decode is not None)
        if decoding and DEADLETTERS not in self.streams:
            out.append(
                f"streams {decoding} decode (what does not decode is dead-lettered) "
                f"but no {DEADLETTERS!r} stream is declared"
            )
        for name in self.streams:
            if not self.readers(name) and not self.writers(name):
                out.append(f"stream {name!r} is declared but no bolt reads or writes it")
        for route in self.routes:
            if (route.owner is None) != (route.key is None):
                out.append(f"route {route.path!r}: give both owner and key, or neither")
            if (route.gather is None) != (route.merge is None):
                out.append(f"route {route.path!r}: give both gather and merge, or neither")
            for cls in (route.owner, route.gather):
                if cls is not None and not any(b.cls is cls for b in self.bolts):
                    out.append(f"route {route.path!r} names {cls.__name__}, not a bolt here")
        return out

    def check(self) -> None:
        """Raise `TopologyError` listing every problem (see `problems`)."""
        problems = self.problems()
        if problems:
            raise TopologyError(f"topology {self.name!r}: " + "; ".join(problems))

    # ------------------------------------------------------------ running
    def app(self, settings: Settings | None = None) -> faust.App:
        """The faust app running this topology on fintank's engine (``faust -A ... worker``)."""
        from fintank.runtime import build

        app: faust.App = build(self, settings).app
        return app


def topic_names(topology: Topology, names: Sequence[str]) -> list[str]:
    """The Kafka topics of the streams ``names``."""
    return [topology.streams[n].topic for n in names]
