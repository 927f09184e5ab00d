"""Extra configuration for the local Kafka: more listeners (TLS, SASL) and SCRAM users.

`fintank.stack.Stack` writes each node's ``server.properties`` and formats its
storage itself; `KafkaExtras` adds to both, so a secured broker (a SASL_SSL
listener next to the PLAINTEXT one, SCRAM users created at format time) starts
through the same code as the plain one. tests/integration/test_secured_kafka.py
uses it; `fintank up` passes none.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class KafkaExtras:
    """``properties`` set in ``server.properties`` (a key already there is replaced in
    place), ``format_args`` added to the storage format command (``--add-scram ...``)."""

    properties: Mapping[str, str] = field(default_factory=dict)
    format_args: tuple[str, ...] = ()

    def apply(self, text: str) -> str:
        """``text`` (a properties file) with ``properties`` set."""
        todo = dict(self.properties)
        lines = []
        for line in text.splitlines():
            key = line.partition("=")[0].strip()
            if not line.lstrip().startswith("#") and key in todo:
                line = f"{key}={todo.pop(key)}"
            lines.append(line)
        if todo:
            lines.append("# Added for this stack (fintank.stack.extras.KafkaExtras).")
            lines += [f"{key}={value}" for key, value in todo.items()]
        return "\n".join(lines) + "\n"
