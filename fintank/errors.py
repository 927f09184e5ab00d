"""The one root of fintank's exceptions.

Exceptions are for bugs and broken servers. Bad *input* is never an exception
in fintank: it becomes a dead letter with a reason (see `fintank.records`).
"""


class FintankError(Exception):
    """Root of every exception fintank raises on purpose."""


class ConfigError(FintankError):
    """A setting has a bad value; the message is one line naming it."""


class StackError(FintankError):
    """The local stack (Kafka, InfluxDB, VictoriaMetrics) could not be prepared or started."""


class SinkError(FintankError):
    """A time-series server refused a write in a way retrying cannot fix."""
