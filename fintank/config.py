"""Settings: read once at the process edge from ``FINTANK_*`` variables, then passed down.

Library code never reads ``os.environ``; `Settings.from_env` is called by
`tasks.py`, the topology module and the test fixtures, and everything else is
handed the frozen object.
"""

from __future__ import annotations

import math
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, get_type_hints
from urllib.parse import urlparse

from fintank.errors import ConfigError
from fintank.limits import DEFAULT_MAX_FUTURE

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
    "broker": "Kafka bootstrap servers: kafka://host:port, several comma-separated (kafka://h1:9092,h2:9092; kafka:// optional)",
    "app_id": "application id: consumer group, changelog topic prefix (default: the topology's name)",
    "partitions": "partitions of each data topic created by `fintank up` / `topics create`",
    "replication_factor": "replicas of each topic and changelog fintank creates (`fintank up --brokers 3` without it: 3)",
    "min_insync_replicas": "min.insync.replicas of each topic and changelog fintank creates: an acks=all write needs this many replicas (`fintank up --brokers 3` without it: 2)",
    "influx_transport": "where the persister writes: v1 (InfluxDB 1.x /write) or v2 (v2 write API)",
    "influx_url": "v1 transport: InfluxDB 1.x base URL",
    "influx_database": "v1 transport: database (created by `fintank up`)",
    "influx_v2_url": "v2 transport: URL of a server speaking the v2 write API",
    "influx_username": "v1 transport: user name, for an InfluxDB with authentication (empty: none)",
    "influx_password": "v1 transport: that user's password (never printed or logged)",
    "influx_token": "v2 transport: API token, required with v2: fintank has no default (never printed or logged)",
    "influx_token_file": "v2 transport: a file holding the API token (one line; not with FINTANK_INFLUX_TOKEN)",
    "influx_org": "v2 transport: organisation",
    "influx_bucket": "v2 transport: bucket",
    "batch_size": "persister: points per write",
    "flush_interval": "persister: seconds before a partial batch is written",
    "max_buffer": "persister: points held at most before the worker waits (backpressure)",
    "max_queued": "engine: records fetched for one task and not yet processed before its partitions are paused (backpressure to Kafka)",
    "commit_interval": "engine: seconds between commit points (state published, offsets committed)",
    "web_port": "port of the worker's HTTP server",
    "web_bind": "address the worker's HTTP server listens on (0.0.0.0: every interface)",
    "web_host": "host other workers reach this one at (its advertised URL); default: the bind address, or this host's address when binding every interface",
    "faust_web_views": "serve faust's own web views too (/router, /table, /graph, /stats): 1 or 0",
    "log_format": "worker logs: text (faust's) or json (one JSON object per line)",
    "state_dir": "where `fintank up` and workers keep data, logs and pid files (relative: to the current directory)",
    "kafka_port": "local stack: Kafka broker port on 127.0.0.1 (controller: +1); with `fintank up --brokers N`, node i's are +10*(i-1)",
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
    "max_resting": "trading: components that may rest in one symbol's book; one more that would rest is dead-lettered",
    "order_id_retention": "orders: seconds an accepted portfolio_order_id is remembered (a re-use after that is accepted as new)",
    "max_future": "input: seconds a tick's or order's timestamp may lie after the worker's clock before it is dead-lettered (inf: no limit)",
    "kafka_security_protocol": "Kafka: PLAINTEXT, SSL (TLS), SASL_PLAINTEXT or SASL_SSL (SASL over TLS); every client fintank makes uses it",
    "kafka_sasl_mechanism": "Kafka SASL: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (required with SASL_*)",
    "kafka_sasl_username": "Kafka SASL: user name (required with SASL_*)",
    "kafka_sasl_password": "Kafka SASL: password (or FINTANK_KAFKA_SASL_PASSWORD_FILE; never printed or logged)",
    "kafka_sasl_password_file": "Kafka SASL: a file holding the password (one line; not with FINTANK_KAFKA_SASL_PASSWORD)",
    "kafka_ssl_cafile": "Kafka TLS: PEM file of the CA(s) that signed the brokers' certificates (default: the system's)",
    "kafka_ssl_certfile": "Kafka TLS: PEM client certificate, for brokers that require one (mutual TLS)",
    "kafka_ssl_keyfile": "Kafka TLS: PEM private key of the client certificate (unencrypted; if not in the certfile)",
    "kafka_ssl_check_hostname": "Kafka TLS: check that a broker's certificate names its host: 1 or 0 (the CA is always checked)",
}


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything configurable in fintank. Each field is ``FINTANK_<FIELD>`` in the environment."""

    broker: str = "kafka://127.0.0.1:9092"
    app_id: str = ""
    partitions: int = 4
    replication_factor: int = 1
    min_insync_replicas: int = 1
    influx_transport: str = "v1"
    influx_url: str = "http://127.0.0.1:8086"
    influx_database: str = "fintank"
    influx_v2_url: str = "http://127.0.0.1:8428"
    influx_username: str = ""
    influx_password: str = field(default="", repr=False)  # a secret: never in a repr
    influx_token: str = field(default="", repr=False)  # a secret: never in a repr
    influx_token_file: str = ""
    influx_org: str = "fintank"
    influx_bucket: str = "fintank"
    batch_size: int = 5000
    flush_interval: float = 0.5
    max_buffer: int = 200_000
    max_queued: int = 100_000
    commit_interval: float = 0.5
    web_port: int = 6066
    web_bind: str = "127.0.0.1"
    web_host: str = ""
    faust_web_views: bool = False
    log_format: str = "text"
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
    max_future: float = DEFAULT_MAX_FUTURE
    order_id_retention: float = 86_400.0
    max_resting: int = 10_000
    # Kafka TLS and SASL (checked by `fintank.kafka_security`; built into clients by
    # `fintank.engine.kafka`, the one place every client is made).
    kafka_security_protocol: str = "PLAINTEXT"
    kafka_sasl_mechanism: str = ""
    kafka_sasl_username: str = ""
    kafka_sasl_password: str = field(default="", repr=False)  # a secret: never in a repr
    kafka_sasl_password_file: str = ""
    kafka_ssl_cafile: str = ""
    kafka_ssl_certfile: str = ""
    kafka_ssl_keyfile: str = ""
    kafka_ssl_check_hostname: bool = True
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
        if f"{PREFIX}APP_ID" in env and not env[f"{PREFIX}APP_ID"].strip():
            raise ConfigError(
                f"{PREFIX}APP_ID is set but empty (unset it to use the topology's name)"
            )
        from fintank import kafka_security  # here: it imports this module

        values.update(kafka_security.from_env(env, values))
        from fintank import influx_auth  # here: it imports this module

        values.update(influx_auth.from_env(env))
        settings = cls(topics=Topics(**topic_values), **values)
        settings.validate()
        return settings

    def validate(self) -> None:
        """Check values that parse but make no sense; raise `ConfigError` naming the variable."""
        servers(self.broker)  # raises naming FINTANK_BROKER
        from fintank import kafka_security  # here: it imports this module

        kafka_security.check(self)
        if self.app_id:
            problem = _bad_name(self.app_id, 200)
            if problem:
                raise ConfigError(f"{PREFIX}APP_ID {self.app_id!r} {problem}")
        _check_topics(self.topics)
        for name in (
            "partitions",
            "replication_factor",
            "min_insync_replicas",
            "batch_size",
            "max_buffer",
        ):
            if getattr(self, name) < 1:
                raise ConfigError(f"{PREFIX}{name.upper()} must be >= 1, got {getattr(self, name)}")
        if self.min_insync_replicas > self.replication_factor:
            raise ConfigError(
                f"{PREFIX}MIN_INSYNC_REPLICAS ({self.min_insync_replicas}) must be <= "
                f"{PREFIX}REPLICATION_FACTOR ({self.replication_factor})"
            )
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
        from fintank import influx_auth

        influx_auth.check(self)
        if self.max_queued < 1:
            raise ConfigError(f"{PREFIX}MAX_QUEUED must be >= 1, got {self.max_queued}")
        if self.log_format not in ("text", "json"):
            raise ConfigError(f"{PREFIX}LOG_FORMAT must be text or json, got {self.log_format!r}")
        for name in ("influx_url", "influx_v2_url"):
            if urlparse(getattr(self, name)).scheme not in ("http", "https"):
                raise ConfigError(f"{PREFIX}{name.upper()} must be an http(s) URL")
        self._validate_analytics()
        if self.max_resting < 1:
            raise ConfigError(f"{PREFIX}MAX_RESTING must be >= 1, got {self.max_resting}")
        if not 3600 <= self.order_id_retention < float("inf"):
            raise ConfigError(
                f"{PREFIX}ORDER_ID_RETENTION must be >= 3600 seconds (and finite), "
                f"got {self.order_id_retention}"
            )
        if not self.max_future > 0:
            raise ConfigError(
                f"{PREFIX}MAX_FUTURE must be > 0 seconds (inf: no limit), got {self.max_future}"
            )
        if not self.web_bind.strip() or any(c in self.web_bind for c in " /"):
            raise ConfigError(f"{PREFIX}WEB_BIND must be an address, got {self.web_bind!r}")
        if any(c in self.web_host for c in " /:"):
            raise ConfigError(
                f"{PREFIX}WEB_HOST must be a host name or address, got {self.web_host!r}"
            )
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
        """The brokers as every Kafka client fintank makes wants them: ``host:port[,host:port]``."""
        return ",".join(servers(self.broker))

    @property
    def broker_urls(self) -> list[str]:
        """The brokers as faust wants them: ``kafka://host:port`` each."""
        return [f"kafka://{server}" for server in servers(self.broker)]


def servers(broker: str) -> list[str]:
    """``FINTANK_BROKER`` as ``host:port`` strings; `ConfigError` naming it if one is bad.

    Comma-separated, each ``host:port`` with an optional ``kafka://`` (the first
    one's scheme, if given, counts for all: ``kafka://h1:9092,h2:9092``).
    """
    out = []
    for item in broker.split(","):
        text = item.strip()
        problem = ""
        bare = text.removeprefix("kafka://")
        if not text:
            problem = "an empty entry"
        elif "://" in bare:
            problem = f"{text!r} is not kafka://"
        else:
            url = urlparse("kafka://" + bare)
            try:
                port = url.port
            except ValueError:
                port = -1
            if not url.hostname or url.path or url.query:
                problem = f"{text!r} is not host:port"
            elif port is None:
                problem = f"{text!r} has no port"
            elif not 0 < port < 65536:
                problem = f"{text!r} has a bad port (1..65535)"
        if problem:
            raise ConfigError(
                f"{PREFIX}BROKER must look like kafka://host:port (several: comma-separated), "
                f"got {broker!r}: {problem}"
            )
        out.append(bare)
    return out


# Legal in a Kafka topic (and so in a changelog name made from the app id).
_LEGAL = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")


def _bad_name(name: str, longest: int) -> str:
    """Why ``name`` cannot be part of a Kafka topic name ("" if it can)."""
    odd = sorted(set(name) - _LEGAL)
    if odd:
        return f"has characters Kafka does not allow in a topic name: {''.join(odd)!r}"
    if len(name) > longest:
        return f"is longer than {longest} characters"
    if name in (".", ".."):
        return "is not a topic name"
    return ""


def _check_topics(topics: Topics) -> None:
    """Each topic name legal, and no two the same (Kafka also confuses '.' with '_')."""
    seen: dict[str, tuple[str, str]] = {}
    for f in fields(Topics):
        var, name = f"{PREFIX}TOPIC_{f.name.upper()}", getattr(topics, f.name)
        problem = _bad_name(name, 249)
        if problem:
            raise ConfigError(f"{var} {name!r} {problem}")
        other = seen.get(name.replace(".", "_"))
        if other is not None and other[1] == name:
            raise ConfigError(f"{other[0]} and {var} both name topic {name!r}")
        if other is not None:
            raise ConfigError(
                f"{other[0]} ({other[1]!r}) and {var} ({name!r}) name topics that collide "
                "in Kafka, which treats '.' and '_' alike"
            )
        seen[name.replace(".", "_")] = (var, name)


def _parse(name: str, raw: str, kind: Any) -> Any:
    var = PREFIX + name.upper()
    try:
        if kind is int:
            return int(raw)
        if kind is float:
            return float(raw)
        if kind is bool:
            value = _BOOLEANS.get(raw.strip().lower())
            if value is None:
                raise ValueError(raw)
            return value
    except ValueError:
        what = {int: "an integer", bool: "1 or 0 (true/false, yes/no, on/off)"}.get(
            kind, "a number"
        )
        raise ConfigError(f"{var} must be {what}, got {raw!r}") from None
    return raw


_BOOLEANS = {
    **dict.fromkeys(("1", "true", "yes", "on"), True),
    **dict.fromkeys(("0", "false", "no", "off"), False),
}


def advertised_host(settings: Settings) -> str:
    """The host other workers route requests to (the app's canonical URL): ``web_host``, or
    the bind address, or, when binding every interface, this host's own address."""
    if settings.web_host:
        return settings.web_host
    if settings.web_bind in ("0.0.0.0", "::"):
        return socket.gethostbyname(socket.gethostname())
    return settings.web_bind
