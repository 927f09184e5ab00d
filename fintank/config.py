"""Settings: read once at the process edge from ``FINTANK_*`` variables, then passed down.

Library code never reads ``os.environ``; `Settings.from_env` is called by
`tasks.py`, the topology module and the test fixtures, and everything else is
handed the frozen object.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, get_type_hints
from urllib.parse import urlparse

from fintank.errors import ConfigError

PREFIX = "FINTANK_"


@dataclass(frozen=True, slots=True)
class Topics:
    """Kafka topic names (CONTRACT.md: names are defaults, each overridable)."""

    ticks: str = "ticks"
    orders: str = "orders"
    executions: str = "executions"
    fills: str = "fills"
    candles: str = "candles"
    indicators: str = "indicators"
    signals: str = "signals"
    alerts: str = "alerts"
    deadletters: str = "deadletters"
    # Internal: component orders re-keyed by symbol, co-partitioned with ticks.
    components: str = "fintank-components"
    # Internal: fills and accepted taxpayers re-keyed by taxpayer, for positions.
    positions: str = "fintank-positions"


# Every setting: (environment variable suffix, description). The README's
# configuration table is generated from this list by `invoke config`.
DOCS: dict[str, str] = {
    "broker": "Kafka bootstrap server, kafka://host:port",
    "app_id": "application id: consumer group, changelog topic prefix (default: the topology's name)",
    "partitions": "partitions of each data topic created by `fintank up` / `topics create`",
    "influx_transport": "where the persister writes: v1 (InfluxDB 1.x /write) or v2 (v2 write API)",
    "influx_url": "v1 transport: InfluxDB 1.x base URL",
    "influx_database": "v1 transport: database (created by `fintank up`)",
    "influx_v2_url": "v2 transport: URL of a server speaking the v2 write API",
    "influx_token": "v2 transport: API token",
    "influx_org": "v2 transport: organisation",
    "influx_bucket": "v2 transport: bucket",
    "batch_size": "persister: points per write",
    "flush_interval": "persister: seconds before a partial batch is written",
    "max_buffer": "persister: points held at most before the worker waits (backpressure)",
    "commit_interval": "engine: seconds between commit points (state published, offsets committed)",
    "web_port": "port of the worker's HTTP server",
    "state_dir": "where `fintank up` and workers keep data, logs and pid files (relative: to the current directory)",
    "kafka_port": "local stack: Kafka broker port on 127.0.0.1 (controller: +1)",
    "influx_port": "local stack: InfluxDB 1.x HTTP port on 127.0.0.1 (RPC: +2)",
    "victoria_port": "local stack: VictoriaMetrics HTTP port on 127.0.0.1",
    "candle_grace": "candles: seconds past a window's end before the wall clock closes it",
    "sma_period": "indicators: SMA period (closes)",
    "ema_period": "indicators: EMA period (closes)",
    "rsi_period": "indicators: RSI period (closes)",
    "rsi_low": "signals: BUY when the RSI crosses below this",
    "rsi_high": "signals: SELL when the RSI crosses above this",
    "alert_window": "alerts: trailing event-time window in seconds",
    "alert_threshold_pct": "alerts: move within the window that makes a symbol hot, in percent",
}


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything configurable in fintank. Each field is ``FINTANK_<FIELD>`` in the environment."""

    broker: str = "kafka://127.0.0.1:9092"
    app_id: str = ""
    partitions: int = 4
    influx_transport: str = "v1"
    influx_url: str = "http://127.0.0.1:8086"
    influx_database: str = "fintank"
    influx_v2_url: str = "http://127.0.0.1:8428"
    influx_token: str = "fintank-dev-token"
    influx_org: str = "fintank"
    influx_bucket: str = "fintank"
    batch_size: int = 5000
    flush_interval: float = 0.5
    max_buffer: int = 200_000
    commit_interval: float = 0.5
    web_port: int = 6066
    state_dir: str = ".state"
    kafka_port: int = 9092
    influx_port: int = 8086
    victoria_port: int = 8428
    candle_grace: float = 2.0
    sma_period: int = 20
    ema_period: int = 20
    rsi_period: int = 14
    rsi_low: float = 30.0
    rsi_high: float = 70.0
    alert_window: float = 300.0
    alert_threshold_pct: float = 5.0
    topics: Topics = field(default_factory=Topics)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        """Build settings from ``FINTANK_*`` variables; raise `ConfigError` (one line) on a bad value."""
        hints = get_type_hints(cls)
        values: dict[str, Any] = {}
        for f in fields(cls):
            if f.name == "topics":
                continue
            raw = env.get(PREFIX + f.name.upper())
            if raw is not None:
                values[f.name] = _parse(f.name, raw, hints[f.name])
        topic_values = {
            t.name: env[f"{PREFIX}TOPIC_{t.name.upper()}"]
            for t in fields(Topics)
            if f"{PREFIX}TOPIC_{t.name.upper()}" in env
        }
        for name, value in topic_values.items():
            if not value.strip():
                raise ConfigError(f"{PREFIX}TOPIC_{name.upper()} must not be empty")
        settings = cls(topics=Topics(**topic_values), **values)
        settings.validate()
        return settings

    def validate(self) -> None:
        """Check values that parse but make no sense; raise `ConfigError` naming the variable."""
        url = urlparse(self.broker)
        if url.scheme != "kafka" or not url.hostname or not url.port:
            raise ConfigError(
                f"{PREFIX}BROKER must look like kafka://host:port, got {self.broker!r}"
            )
        for name in ("partitions", "batch_size", "max_buffer"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{PREFIX}{name.upper()} must be >= 1, got {getattr(self, name)}")
        if self.max_buffer < self.batch_size:
            raise ConfigError(
                f"{PREFIX}MAX_BUFFER ({self.max_buffer}) must be >= "
                f"{PREFIX}BATCH_SIZE ({self.batch_size})"
            )
        if not (0 < self.commit_interval <= 60):
            raise ConfigError(
                f"{PREFIX}COMMIT_INTERVAL must be > 0 and <= 60 seconds, got {self.commit_interval}"
            )
        if not (self.flush_interval > 0 and math.isfinite(self.flush_interval)):
            raise ConfigError(
                f"{PREFIX}FLUSH_INTERVAL must be > 0 seconds, got {self.flush_interval}"
            )
        if self.influx_transport not in ("v1", "v2"):
            raise ConfigError(
                f"{PREFIX}INFLUX_TRANSPORT must be v1 or v2, got {self.influx_transport!r}"
            )
        for name in ("influx_url", "influx_v2_url"):
            if urlparse(getattr(self, name)).scheme not in ("http", "https"):
                raise ConfigError(f"{PREFIX}{name.upper()} must be an http(s) URL")
        self._validate_analytics()
        for name in ("web_port", "kafka_port", "influx_port", "victoria_port"):
            port = getattr(self, name)
            if not 0 < port < 65536:
                raise ConfigError(f"{PREFIX}{name.upper()} must be a port 1..65535, got {port}")

    def _validate_analytics(self) -> None:
        for name in ("sma_period", "ema_period", "rsi_period"):
            value = getattr(self, name)
            if not 2 <= value <= 100_000:
                raise ConfigError(f"{PREFIX}{name.upper()} must be 2..100000, got {value}")
        if not (0 <= self.candle_grace < math.inf):
            raise ConfigError(f"{PREFIX}CANDLE_GRACE must be >= 0 seconds, got {self.candle_grace}")
        if not (0 <= self.rsi_low < self.rsi_high <= 100):
            raise ConfigError(
                f"{PREFIX}RSI_LOW ({self.rsi_low}) and {PREFIX}RSI_HIGH ({self.rsi_high}) "
                "must satisfy 0 <= low < high <= 100"
            )
        if not (0 < self.alert_window < math.inf):
            raise ConfigError(f"{PREFIX}ALERT_WINDOW must be > 0 seconds, got {self.alert_window}")
        if not (0 < self.alert_threshold_pct < math.inf):
            raise ConfigError(
                f"{PREFIX}ALERT_THRESHOLD_PCT must be > 0, got {self.alert_threshold_pct}"
            )

    @property
    def bootstrap(self) -> str:
        """The broker as aiokafka wants it: host:port."""
        url = urlparse(self.broker)
        return f"{url.hostname}:{url.port}"


def _parse(name: str, raw: str, kind: Any) -> Any:
    var = PREFIX + name.upper()
    try:
        if kind is int:
            return int(raw)
        if kind is float:
            return float(raw)
    except ValueError:
        raise ConfigError(
            f"{var} must be a{'n integer' if kind is int else ' number'}, got {raw!r}"
        ) from None
    return raw
