"""The local stack: real Kafka (KRaft), InfluxDB 1.x and VictoriaMetrics on loopback.

No Docker here: Kafka runs from Maven Central jars with the machine's Java,
the time-series servers from Debian's packages. `up`/`down`/`status` are used
by `tasks.py` and by the integration-test fixtures alike. Installing them is
`fintank.stack.provision` (imported lazily, never by this package's import).
"""

from fintank.stack.stack import Service, Stack

__all__ = ["Service", "Stack", "procs"]
