"""Two ways to deliver line protocol: InfluxDB 1.x ``/write``, and the v2 write API.

A transport raises `TransientWriteError` when retrying may succeed (server
down, 5xx, timeouts) and `SinkError` when it cannot (the server rejected the
data); the persister owns the retry policy.
"""

from __future__ import annotations

from typing import Any, Protocol

import aiohttp

from fintank.errors import SinkError


class TransientWriteError(SinkError):
    """The write failed in a way that retrying may fix."""


class Transport(Protocol):
    """Anything that can write a batch of line-protocol lines."""

    name: str

    async def write(self, lines: list[str]) -> None: ...

    async def close(self) -> None: ...


class InfluxV1Transport:
    """InfluxDB 1.x ``POST /write?db=...&precision=ns`` (Debian's influxdb)."""

    name = "influxdb-v1"

    def __init__(self, url: str, database: str, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/") + "/write"
        self.params = {"db": database, "precision": "ns"}
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    async def write(self, lines: list[str]) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self.timeout)
        body = "\n".join(lines).encode("utf-8")
        try:
            async with self._session.post(self.url, params=self.params, data=body) as resp:
                if resp.status == 204:
                    return
                text = (await resp.text())[:300]
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise TransientWriteError(f"{self.name}: {exc!r}") from exc
        if resp.status >= 500 or resp.status == 429:
            raise TransientWriteError(f"{self.name}: HTTP {resp.status}: {text}")
        raise SinkError(f"{self.name}: HTTP {resp.status}: {text}")

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class InfluxV2Transport:
    """The v2 write API through influxdb-client's async client (VictoriaMetrics, InfluxDB 2.x/3.x)."""

    name = "influxdb-v2"

    def __init__(self, url: str, token: str, org: str, bucket: str, timeout: float = 10.0) -> None:
        self.url, self.token, self.org, self.bucket = url, token, org, bucket
        self.timeout_ms = int(timeout * 1000)
        self._client: Any = None

    async def write(self, lines: list[str]) -> None:
        from influxdb_client.client.influxdb_client_async import InfluxDBClientAsync
        from influxdb_client.domain.write_precision import WritePrecision
        from influxdb_client.rest import ApiException

        if self._client is None:
            self._client = InfluxDBClientAsync(
                url=self.url, token=self.token, org=self.org, timeout=self.timeout_ms
            )
        try:
            await self._client.write_api().write(
                bucket=self.bucket, org=self.org, record=lines, write_precision=WritePrecision.NS
            )
        except ApiException as exc:
            if exc.status is None or exc.status >= 500 or exc.status == 429:
                raise TransientWriteError(f"{self.name}: HTTP {exc.status}: {exc.reason}") from exc
            raise SinkError(f"{self.name}: HTTP {exc.status}: {str(exc.body)[:300]}") from exc
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise TransientWriteError(f"{self.name}: {exc!r}") from exc

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None
