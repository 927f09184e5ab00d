"""Read back what the persister wrote (demo output, tests, dashboard checks)."""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from typing import Any

from fintank.errors import SinkError
from fintank.sinks.transports import basic_auth


def influxql(
    url: str,
    database: str,
    query: str,
    epoch: str | None = None,
    *,
    username: str = "",
    password: str = "",
) -> list[dict[str, Any]]:
    """Run InfluxQL on InfluxDB 1.x; the ``series`` of the first statement (``[]`` if none).

    With a ``username``, as that user (HTTP Basic, for an InfluxDB with auth enabled).
    """
    params = {"db": database, "q": query}
    if epoch:
        params["epoch"] = epoch
    req = urllib.request.Request(
        url.rstrip("/") + "/query", data=urllib.parse.urlencode(params).encode(), method="POST"
    )
    if username:
        req.add_header("Authorization", basic_auth(username, password))
    with urllib.request.urlopen(req, timeout=30) as resp:
        body = json.loads(resp.read())
    result = body["results"][0]
    if "error" in result:
        raise SinkError(f"InfluxQL error for {query!r}: {result['error']}")
    return list(result.get("series", []))


def influx_count(
    url: str,
    database: str,
    measurement: str,
    field: str,
    where: str = "",
    *,
    username: str = "",
    password: str = "",
) -> int:
    """How many points of ``measurement`` have ``field`` (optionally filtered by an InfluxQL WHERE)."""
    clause = f" WHERE {where}" if where else ""
    query = f'SELECT count("{field}") FROM "{measurement}"{clause}'
    series = influxql(url, database, query, username=username, password=password)
    return int(series[0]["values"][0][1]) if series else 0


def victoria_samples(url: str, match: str) -> list[dict[str, Any]]:
    """VictoriaMetrics' raw samples for a series selector (``/api/v1/export``), one dict per series."""
    query = urllib.parse.urlencode({"match[]": match})
    with urllib.request.urlopen(f"{url.rstrip('/')}/api/v1/export?{query}", timeout=30) as resp:
        return [json.loads(line) for line in resp.read().splitlines() if line.strip()]


def victoria_count(url: str, match: str) -> int:
    """How many raw samples match a series selector, e.g. ``bid_ask_bid{symbol="VTI"}``."""
    return sum(len(series["values"]) for series in victoria_samples(url, match))
