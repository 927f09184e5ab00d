"""Log output: ``FINTANK_LOG_FORMAT=json`` makes the worker log one JSON object per line.

faust's worker configures logging itself when it starts (mode's
``setup_logging``, with a coloured text handler named ``default``).
`logging_config` is handed to the faust app (``logging_config``), and mode
merges it over its own: the ``default`` handler then writes through
`JsonFormatter`, so every record, fintank's, faust's and aiokafka's alike,
becomes one line a log shipper can parse.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from fintank.codec import dumps


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time (ISO-8601, UTC), level, logger, message, and, when
    there is one, the exception with its traceback as one string (newlines escaped)."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            doc["exc_info"] = self.formatException(record.exc_info)
        if record.stack_info:
            doc["stack_info"] = self.formatStack(record.stack_info)
        return dumps(doc).decode("utf-8")


def logging_config(log_format: str) -> dict[str, Any] | None:
    """The faust app's ``logging_config`` for ``log_format`` (None: faust's own text logs)."""
    if log_format != "json":
        return None
    return {
        "version": 1,
        "merge": True,  # mode keeps its own config and lays this over it
        "formatters": {"json": {"()": JsonFormatter}},
        # Replaces mode's coloured stream handler of the same name (stderr, as it was).
        "handlers": {"default": {"class": "logging.StreamHandler", "formatter": "json"}},
    }
