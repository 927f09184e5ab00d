"""Two ways to deliver line protocol: InfluxDB 1.x ``/write``, and the v2 write API.

A transport sorts every failure into one of three kinds; the persister owns
what happens next (`fintank.sinks.influx`):

* `TransientWriteError`: retrying may succeed by itself (server down or
  frozen, 5xx, 429, timeouts). Retried with backoff; nothing is dropped.
* `RefusedWriteError` (a transient error too): the server refuses *us* or
  *where* we write: 401 (credentials or token), 403 (no write permission),
  404 (no such database or bucket), any other 4xx that is not about content.
  Someone must fix a setting or the server; until then the points are kept
  and retried, and the message says exactly what is wrong, naming the URL,
  the database or bucket, the user and the variable to check, never a secret.
* `RejectedPointsError`: the server refuses the *points* for their content
  (400, 413, 422: a line it cannot parse, a field type conflict, a point
  outside retention). Retrying the same lines cannot help; the persister
  finds the refused lines and dead-letters them, and writes the rest.

Secrets (the v1 password, the v2 token) are sent as headers, never in a
URL, and every message a transport makes is passed through `redact` in
case a server or a library echoes one back.
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any, Protocol

import aiohttp

from fintank.errors import SinkError

#: Statuses that say the points themselves are unacceptable (the persister splits the batch).
CONTENT_STATUSES = frozenset({400, 413, 422})


class TransientWriteError(SinkError):
    """The write failed in a way that retrying may fix."""


class RefusedWriteError(TransientWriteError):
    """The server refused the write for who we are or where we write (401, 403, 404, ...).

    Retried like a transient error, because the fix (a password, a grant, a
    database) happens on the server or in the settings, not in the points.
    """


class RejectedPointsError(SinkError):
    """The server refused points for their content.

    ``reason`` is the server's own message; ``named`` maps lines of the batch
    the server named (InfluxDB 1.x quotes each line it cannot parse) to the
    reason for that line. Lines not named may or may not be at fault: the
    persister writes them again, splitting until each refused line is alone.
    """

    def __init__(self, message: str, reason: str, named: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.named = dict(named or {})


class Transport(Protocol):
    """Anything that can write a batch of line-protocol lines."""

    name: str

    async def write(self, lines: list[str]) -> None: ...

    async def close(self) -> None: ...


def redact(text: str, *secrets: str) -> str:
    """``text`` with every non-empty secret replaced by ``***``."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def basic_auth(username: str, password: str) -> str:
    """The value of an HTTP Basic ``Authorization`` header."""
    pair = f"{username}:{password}".encode()
    return "Basic " + base64.b64encode(pair).decode("ascii")


def server_error(body: str) -> str:
    """The ``error`` of an InfluxDB JSON error body (``{"error": "..."}``), else the body, short."""
    try:
        doc = json.loads(body)
    except ValueError:
        doc = None
    if isinstance(doc, dict):
        for key in ("error", "message"):  # 1.x says "error"; 2.x and VictoriaMetrics "message"
            if isinstance(doc.get(key), str):
                return str(doc[key])
    return body.strip()[:300]


_DROPPED = re.compile(r" dropped=\d+$")


def named_lines(message: str, lines: list[str]) -> dict[str, str]:
    """The lines of ``lines`` that InfluxDB 1.x names in ``message`` as unparsable, with reasons.

    1.x answers ``partial write: unable to parse '<line>': <reason>`` (one per
    bad line, newline-separated) and writes the lines it could parse. A line
    is taken only if it is exactly one of ``lines``; anything else is left to
    the persister's bisection.
    """
    marker = "unable to parse '"
    if marker not in message:
        return {}
    batch = set(lines)
    out: dict[str, str] = {}
    for chunk in message.split(marker)[1:]:
        cut = chunk.find("': ")
        while cut >= 0:
            if chunk[:cut] in batch:
                reason = _DROPPED.sub("", chunk[cut + 3 :].split("\n", 1)[0])
                out[chunk[:cut]] = f"unable to parse: {reason}"
                break
            cut = chunk.find("': ", cut + 1)
    return out


class InfluxV1Transport:
    """InfluxDB 1.x ``POST /write?db=...&precision=ns`` (Debian's influxdb).

    With a ``username``, every write carries HTTP Basic credentials (what an
    InfluxDB with ``auth-enabled = true`` wants; 1.x also takes ``u``/``p``
    query parameters, which end up in URLs and so in logs: not used).
    """

    name = "influxdb-v1"

    def __init__(
        self,
        url: str,
        database: str,
        timeout: float = 10.0,
        username: str = "",
        password: str = "",
    ) -> None:
        self.base = url.rstrip("/")
        self.url = self.base + "/write"
        self.database = database
        self.params = {"db": database, "precision": "ns"}
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self.username = username
        self._headers = {"Authorization": basic_auth(username, password)} if username else {}
        self._password = password
        self._session: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:
        user = f", user {self.username!r}" if self.username else ""
        return f"InfluxV1Transport({self.base!r}, database {self.database!r}{user})"

    async def write(self, lines: list[str]) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self.timeout)
        body = "\n".join(lines).encode("utf-8")
        try:
            async with self._session.post(
                self.url, params=self.params, data=body, headers=self._headers
            ) as resp:
                if resp.status == 204:
                    return
                text = await resp.text()
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise TransientWriteError(
                self._redact(f"{self.name}: {self.base} did not answer: {exc!r}")
            ) from exc
        raise self.failure(resp.status, text, lines)

    def failure(self, status: int, body: str, lines: list[str]) -> SinkError:
        """The error for an answer with ``status`` and ``body`` to a write of ``lines``."""
        err = self._redact(server_error(body))
        where = f'database "{self.database}" at {self.base}'
        if status >= 500 or status in (408, 429):
            return TransientWriteError(f"{self.name}: HTTP {status} from {where}: {err}")
        if status in CONTENT_STATUSES:
            named = named_lines(err, lines)
            return RejectedPointsError(f"{self.name}: HTTP {status}: {err}", err, named)
        if status == 401:
            who = (
                f'user "{self.username}"'
                if self.username
                else "no credentials (FINTANK_INFLUX_USERNAME is empty)"
            )
            message = (
                f"authentication failed writing to {where} with {who} (HTTP 401: {err}); "
                "check FINTANK_INFLUX_USERNAME and FINTANK_INFLUX_PASSWORD, or the user on the server"
            )
        elif status == 403:
            message = (
                f'user "{self.username}" may not write to {where} (HTTP 403: {err}); '
                f'grant it WRITE on "{self.database}", or check FINTANK_INFLUX_USERNAME'
            )
        elif status == 404 and "database not found" in err:
            message = (
                f'database "{self.database}" not found at {self.base} (HTTP 404); create it '
                f'(CREATE DATABASE "{self.database}") or check FINTANK_INFLUX_DATABASE'
            )
        else:
            message = (
                f"HTTP {status} writing to {where}: {err}; "
                "check FINTANK_INFLUX_URL (an InfluxDB 1.x server?)"
            )
        return RefusedWriteError(f"{self.name}: {message}")

    def _redact(self, text: str) -> str:
        return redact(text, self._password)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class InfluxV2Transport:
    """The v2 write API through influxdb-client's async client (VictoriaMetrics, InfluxDB 2.x/3.x).

    The token travels in the ``Authorization`` header; it is kept out of this
    object's repr and out of every message.
    """

    name = "influxdb-v2"

    def __init__(self, url: str, token: str, org: str, bucket: str, timeout: float = 10.0) -> None:
        self.url, self.org, self.bucket = url, org, bucket
        self._token = token
        self.timeout_ms = int(timeout * 1000)
        self._client: Any = None

    def __repr__(self) -> str:
        return f"InfluxV2Transport({self.url!r}, org {self.org!r}, bucket {self.bucket!r})"

    async def write(self, lines: list[str]) -> None:
        from influxdb_client.client.influxdb_client_async import InfluxDBClientAsync
        from influxdb_client.domain.write_precision import WritePrecision
        from influxdb_client.rest import ApiException

        if self._client is None:
            self._client = InfluxDBClientAsync(
                url=self.url, token=self._token, org=self.org, timeout=self.timeout_ms
            )
        try:
            await self._client.write_api().write(
                bucket=self.bucket, org=self.org, record=lines, write_precision=WritePrecision.NS
            )
        except ApiException as exc:
            body = exc.body or exc.reason or ""
            if isinstance(body, bytes):
                body = body.decode("utf-8", "replace")
            raise self.failure(exc.status, str(body), lines) from exc
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise TransientWriteError(
                redact(f"{self.name}: {self.url} did not answer: {exc!r}", self._token)
            ) from exc

    def failure(self, status: int | None, body: str, lines: list[str]) -> SinkError:
        """The error for an answer with ``status`` and ``body`` to a write of ``lines``."""
        err = redact(server_error(body), self._token)
        where = f'bucket "{self.bucket}" of org "{self.org}" at {self.url}'
        if status is None or status >= 500 or status in (408, 429):
            return TransientWriteError(f"{self.name}: HTTP {status} from {where}: {err}")
        if status in CONTENT_STATUSES:
            return RejectedPointsError(f"{self.name}: HTTP {status}: {err}", err)
        if status == 401:
            message = (
                f"the API token was refused writing to {where} (HTTP 401: {err}); "
                "check FINTANK_INFLUX_TOKEN or FINTANK_INFLUX_TOKEN_FILE"
            )
        elif status == 403:
            message = (
                f"the API token may not write to {where} (HTTP 403: {err}); "
                "give it write access, or check FINTANK_INFLUX_TOKEN"
            )
        elif status == 404:
            message = (
                f'bucket "{self.bucket}" or org "{self.org}" not found at {self.url} '
                f"(HTTP 404: {err}); create it, "
                "or check FINTANK_INFLUX_BUCKET and FINTANK_INFLUX_ORG"
            )
        else:
            message = f"HTTP {status} writing to {where}: {err}; check FINTANK_INFLUX_V2_URL"
        return RefusedWriteError(f"{self.name}: {message}")

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None
