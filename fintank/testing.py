"""Drive a bolt in a unit test, without a broker: what the runtime does around it, minus Kafka.

    from fintank.testing import Harness

    h = Harness(Spread)                      # one instance, partition 0, empty tables
    out = h.feed("ticks", [b'{"symbol": "AAPL", ...}'], now=10.0)
    assert out.emits[0].output == "spreads"
    h = h.restarted()                        # a new instance on the tables' changelog

`feed` decodes the records as the topology's stream would (give ``decode``),
dead-letters what does not decode, and calls ``process``; `tick` and
`recover` call the bolt's other entry points. `restarted` is what a crash
and a restore do to the tables: every value written goes through the codec
(JSON) and comes back through ``Table.from_json``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fintank.bolt import Batch, Bolt, Out, State, bolt_name, decoded
from fintank.codec import dumps
from fintank.engine.store import PartitionStore
from fintank.topology import TopologyError

__all__ = ["Harness", "Record"]


@dataclass(frozen=True, slots=True)
class Record:
    """A consumer record as a bolt sees it (the fields of aiokafka's ``ConsumerRecord`` it uses)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: Any
    timestamp: int = 0


class Harness:
    """One partition of one bolt, its tables, and the next offset of each input."""

    def __init__(
        self,
        cls: type[Bolt],
        partition: int = 0,
        decode: Mapping[str, Callable[[bytes], Any]] | None = None,
        **params: Any,
    ) -> None:
        self.cls = cls
        self.partition = partition
        self.params = params
        self.decode = dict(decode or {})
        self.stores = {t.name: PartitionStore(t, partition) for t in cls.tables}
        self.bolt = cls(State(partition, self.stores), **params)
        self.offsets: dict[str, int] = {}

    def batch(self, stream: str, values: Sequence[Any], keys: Sequence[str] | None = None) -> Batch:
        """The next ``values`` of input ``stream`` (offsets follow the previous batch's)."""
        if stream not in self.cls.inputs:
            raise ValueError(f"{self.cls.__name__} does not read {stream!r}")
        first = self.offsets.get(stream, 0)
        self.offsets[stream] = first + len(values)
        raw_keys = [None if keys is None else keys[i].encode() for i in range(len(values))]
        records = [
            Record(stream, self.partition, first + i, k, v)
            for i, (k, v) in enumerate(zip(raw_keys, values, strict=True))
        ]
        return Batch(stream, self.partition, records)

    def feed(
        self, stream: str, values: Sequence[Any], now: float, keys: Sequence[str] | None = None
    ) -> Out:
        """What the bolt answers to ``values`` arriving on ``stream`` (decoded, as the runtime
        would; records that do not decode come back as dead letters, first)."""
        batch = self.batch(stream, values, keys)
        failed: list[Any] = []
        decode = self.decode.get(stream)
        if decode is not None:
            batch, failed = decoded(batch, decode, now)
        out = self.bolt.process(batch, now) if batch.records else Out()
        out.deadletters[:0] = failed
        out.deadletters.sort(key=lambda pair: pair[0])
        return self.checked(out)

    def tick(self, now: float) -> Out:
        return self.checked(self.bolt.tick(now))

    def recover(self, replayed: Mapping[str, Sequence[Any]], now: float) -> Out:
        return self.checked(self.bolt.recover(replayed, now))

    def checked(self, out: Out) -> Out:
        """``out``, after the runtime's check that it emits only to declared outputs."""
        for emit in out.emits:
            if emit.output not in self.cls.outputs:
                raise TopologyError(
                    f"bolt {bolt_name(self.cls)!r} emitted to {emit.output!r}, "
                    "not one of its outputs"
                )
        return out

    def table(self, name: str) -> dict[str, Any]:
        """Every key of table ``name`` with its value."""
        store = self.stores[name]
        return {key: store.get(key) for key in store.all_keys()}

    def restarted(self) -> Harness:
        """A new instance of the bolt whose tables hold what a restore from the changelog gives."""
        fresh = Harness(self.cls, self.partition, self.decode, **self.params)
        for name, store in self.stores.items():
            for key in store.all_keys():
                value = store.data[key]
                fresh.stores[name].restore(key.encode(), dumps(value))
        fresh.offsets = dict(self.offsets)
        return fresh
