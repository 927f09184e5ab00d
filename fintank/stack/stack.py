"""The three local servers and how to start, check and stop them.

Installing them (Maven, apt-get) is `fintank.stack.provision`'s job, imported
only when something is missing, so using a stack that is installed never loads
the provisioning code.

Where things live, independent of where fintank is installed:

* state (data, logs, pid files): ``settings.state_dir`` (``FINTANK_STATE_DIR``,
  default ``.state``), relative to the current directory unless absolute;
* Kafka's jars: the cache folder, ``FINTANK_CACHE_DIR`` (default
  ``$XDG_CACHE_HOME/fintank``, else ``~/.cache/fintank``);
* Kafka's Maven pom and log4j2 config: package data in ``fintank/stack/kafka/``,
  read with `importlib.resources`.
"""

from __future__ import annotations

import asyncio
import base64
import os
import subprocess
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from fintank.config import Settings
from fintank.errors import StackError
from fintank.stack import procs
from fintank.stack.topics import ensure_topics

KAFKA_POM = "pom.xml"
KAFKA_LOG4J = "log4j2.properties"
CACHE_ENV = "FINTANK_CACHE_DIR"


def kafka_resource(name: str) -> str:
    """The text of a file fintank ships for the local Kafka (`KAFKA_POM`, `KAFKA_LOG4J`)."""
    return (resources.files("fintank.stack") / "kafka" / name).read_text(encoding="utf-8")


def state_path(settings: Settings) -> Path:
    """``settings.state_dir`` as an absolute path; a relative one is under the current directory."""
    return Path(settings.state_dir).expanduser().absolute()


def cache_path(environ: Mapping[str, str] | None = None) -> Path:
    """Where downloaded things (Kafka's jars, Maven's repository) are kept across runs.

    ``FINTANK_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/fintank``, else ``~/.cache/fintank``.
    """
    env = os.environ if environ is None else environ
    if env.get(CACHE_ENV):
        return Path(env[CACHE_ENV]).expanduser().absolute()
    xdg = env.get("XDG_CACHE_HOME", "")
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".cache"
    return base / "fintank"


def kafka_libs_ready(libs: Path) -> bool:
    """True if ``libs`` holds the jars of the pom this fintank ships (resolved completely)."""
    marker = libs / ".complete"
    return marker.is_file() and marker.read_text(encoding="utf-8") == kafka_resource(KAFKA_POM)


@dataclass(frozen=True, slots=True)
class Service:
    """One server of the stack: where it listens and how to tell it is up."""

    name: str
    address: str
    pid_file: Path
    log_file: Path
    is_up: Callable[[], bool]


class Stack:
    """Kafka + InfluxDB 1.x + VictoriaMetrics under ``settings.state_dir``.

    A relative ``state_dir`` is resolved against the current directory when the
    stack is made; ``cache`` (Kafka's jars) defaults to `cache_path`.
    """

    def __init__(self, settings: Settings, cache: Path | None = None) -> None:
        self.settings = settings
        self.state = state_path(settings)
        self.cache = cache_path() if cache is None else cache.expanduser().absolute()
        s = settings
        self.kafka = Service(
            "kafka",
            f"127.0.0.1:{s.kafka_port} (broker), 127.0.0.1:{s.kafka_port + 1} (KRaft controller)",
            self.state / "kafka" / "kafka.pid",
            self.state / "kafka" / "kafka.log",
            lambda: procs.port_open(s.kafka_port),
        )
        self.influxdb = Service(
            "influxdb",
            f"http://127.0.0.1:{s.influx_port} (InfluxDB 1.x, database {s.influx_database!r})",
            self.state / "influxdb" / "influxd.pid",
            self.state / "influxdb" / "influxd.log",
            lambda: procs.http_ok(f"http://127.0.0.1:{s.influx_port}/ping"),
        )
        self.victoria = Service(
            "victoria-metrics",
            f"http://127.0.0.1:{s.victoria_port} (VictoriaMetrics, InfluxDB v2 write API)",
            self.state / "victoria" / "victoria.pid",
            self.state / "victoria" / "victoria.log",
            lambda: procs.http_ok(f"http://127.0.0.1:{s.victoria_port}/health"),
        )
        self.services = (self.kafka, self.influxdb, self.victoria)

    # ----------------------------------------------------------------- install
    def install(self, log: Callable[[str], None] = print) -> None:
        """Fetch Kafka's jars and apt-install the time-series servers if they are missing."""
        from fintank.stack import provision

        provision.install(self.cache, log)

    def kafka_libs(self, log: Callable[[str], None] = print) -> Path:
        """The folder of Kafka's jars, resolved by Maven from Maven Central on first use."""
        libs = self.cache / "kafka-libs"
        if kafka_libs_ready(libs):
            return libs
        from fintank.stack import provision

        return provision.resolve_kafka_libs(self.cache, log)

    # ------------------------------------------------------------------ up/down
    def up(self, log: Callable[[str], None] = print) -> None:
        """Install what is missing, start what is not running, wait for each to answer. Idempotent."""
        self.install(log)
        self.start_kafka(log)
        self.start_influxdb(log)
        self.start_victoria(log)
        asyncio.run(ensure_topics(self.settings, log))
        self.create_database()

    def down(self, log: Callable[[str], None] = print) -> None:
        """Stop the processes this stack started (by pid file), Kafka last."""
        for service in (self.victoria, self.influxdb, self.kafka):
            stopped = procs.stop(service.pid_file)
            log(f"{service.name}: {'stopped' if stopped else 'was not running'}")

    def status(self) -> list[tuple[Service, int | None, bool]]:
        """Each service with its pid (if started by us) and whether it answers."""
        return [(s, procs.read_pid(s.pid_file), s.is_up()) for s in self.services]

    def _start(
        self, service: Service, argv: list[str], timeout: float, log: Callable[[str], None]
    ) -> None:
        pid = procs.read_pid(service.pid_file)
        if pid is not None and service.is_up():
            log(f"{service.name}: already running (pid {pid}) at {service.address}")
            return
        if pid is None and service.is_up():
            raise StackError(
                f"{service.name}: something else already listens at {service.address}; "
                "stop it or choose other FINTANK_*_PORT values"
            )
        if pid is None:
            procs.spawn(argv, service.pid_file, service.log_file, cwd=service.pid_file.parent)
        procs.wait_until(service.is_up, service.name, timeout, service.pid_file, service.log_file)
        log(f"{service.name}: up at {service.address}")

    def start_kafka(self, log: Callable[[str], None]) -> None:
        home = self.state / "kafka"
        data = home / "data"
        home.mkdir(parents=True, exist_ok=True)
        port = self.settings.kafka_port
        props = home / "server.properties"
        props.write_text(
            KAFKA_PROPERTIES.format(
                port=port, controller=port + 1, data=data, partitions=self.settings.partitions
            )
        )
        log4j = home / KAFKA_LOG4J
        log4j.write_text(kafka_resource(KAFKA_LOG4J), encoding="utf-8")
        classpath = f"{self.kafka_libs(log)}/*"
        if not (data / "meta.properties").exists():
            cluster_id = _cluster_id()
            done = subprocess.run(
                [
                    "java",
                    "-cp",
                    classpath,
                    "kafka.tools.StorageTool",
                    "format",
                    "-t",
                    cluster_id,
                    "-c",
                    str(props),
                ],
                capture_output=True,
                text=True,
            )
            if done.returncode != 0:
                raise StackError(
                    f"formatting Kafka storage failed: {done.stdout}{done.stderr}".strip()
                )
        argv = [
            "java",
            "-Xms256m",
            "-Xmx1g",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={log4j}",
            "-cp",
            classpath,
            "kafka.Kafka",
            str(props),
        ]
        self._start(self.kafka, argv, 90, log)

    def start_influxdb(self, log: Callable[[str], None]) -> None:
        home = self.state / "influxdb"
        home.mkdir(parents=True, exist_ok=True)
        conf = home / "influxdb.conf"
        conf.write_text(
            INFLUXDB_CONF.format(
                home=home, port=self.settings.influx_port, rpc=self.settings.influx_port + 2
            )
        )
        self._start(self.influxdb, ["influxd", "-config", str(conf)], 60, log)

    def start_victoria(self, log: Callable[[str], None]) -> None:
        home = self.state / "victoria"
        home.mkdir(parents=True, exist_ok=True)
        argv = [
            "victoria-metrics",
            f"-storageDataPath={home / 'data'}",
            f"-httpListenAddr=127.0.0.1:{self.settings.victoria_port}",
            "-retentionPeriod=100y",
            "-loggerLevel=WARN",
            # Make freshly written points visible to queries at once (default 30s).
            "-search.latencyOffset=0s",
        ]
        self._start(self.victoria, argv, 60, log)

    def create_database(self) -> None:
        query = urllib.parse.urlencode({"q": f'CREATE DATABASE "{self.settings.influx_database}"'})
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.settings.influx_port}/query",
            data=query.encode(),
            method="POST",
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            if resp.status != 200:
                raise StackError(f"InfluxDB refused CREATE DATABASE: HTTP {resp.status}")


KAFKA_PROPERTIES = """\
# Written by fintank's `invoke up`; edit fintank/stack/stack.py instead.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:{controller}
listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller}
advertised.listeners=PLAINTEXT://127.0.0.1:{port}
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs={data}
num.partitions={partitions}
num.network.threads=2
num.io.threads=4
offsets.topic.replication.factor=1
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
# fintank creates every topic explicitly (invoke up, faust's declare); a typo must fail.
auto.create.topics.enable=false
"""

INFLUXDB_CONF = """\
# Written by fintank's `invoke up`; edit fintank/stack/stack.py instead.
reporting-enabled = false
bind-address = "127.0.0.1:{rpc}"

[meta]
  dir = "{home}/meta"

[data]
  dir = "{home}/data"
  wal-dir = "{home}/wal"
  query-log-enabled = false

[http]
  bind-address = "127.0.0.1:{port}"
  log-enabled = false

[monitor]
  store-enabled = false
"""


def _cluster_id() -> str:
    """A KRaft cluster id (URL-safe base64 of a UUID) that does not start with ``-``.

    Kafka's StorageTool parses ``-t -abc...`` as an option, not a value.
    """
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cluster_id.startswith("-"):
            return cluster_id
