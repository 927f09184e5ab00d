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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from fintank.config import Settings
from fintank.errors import StackError
from fintank.stack import cluster, procs, scrape
from fintank.stack.extras import KafkaExtras
from fintank.stack.topics import ensure_topics, wait_for_brokers

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
    stack is made; ``cache`` (Kafka's jars) defaults to `cache_path`. Kafka is
    ``brokers`` nodes (`fintank.stack.cluster`); None: as many as the cluster
    under the state folder has, else 1. ``kafka_extras`` adds listeners and SCRAM
    users to every node (`fintank.stack.extras`; the secured-Kafka test's broker).
    """

    def __init__(
        self,
        settings: Settings,
        cache: Path | None = None,
        brokers: int | None = None,
        kafka_extras: KafkaExtras | None = None,
    ) -> None:
        self.settings = settings
        self.kafka_extras = KafkaExtras() if kafka_extras is None else kafka_extras
        self.state = state_path(settings)
        self.cache = cache_path() if cache is None else cache.expanduser().absolute()
        s = settings
        self.brokers = brokers or cluster.recorded_brokers(self.state) or 1
        self.nodes = cluster.nodes(self.state, s.kafka_port, self.brokers)
        self.kafka_nodes = tuple(
            Service(
                "kafka" if self.brokers == 1 else f"kafka-{node.node_id}",
                node.address,
                node.pid_file,
                node.log_file,
                lambda port=node.port: procs.port_open(port),  # type: ignore[misc]
            )
            for node in self.nodes
        )
        self.kafka = self.kafka_nodes[0]
        self.influxdb = Service(
            "influxdb",
            f"http://127.0.0.1:{s.influx_port} (InfluxDB 1.x, database {s.influx_database!r})",
            self.state / "influxdb" / "influxd.pid",
            self.state / "influxdb" / "influxd.log",
            lambda: procs.http_ok(f"http://127.0.0.1:{s.influx_port}/ping"),
        )
        self.victoria = Service(
            "victoria-metrics",
            f"http://127.0.0.1:{s.victoria_port} (VictoriaMetrics: InfluxDB v2 write API, "
            "Prometheus queries; scrapes the workers' /metrics)",
            self.state / "victoria" / "victoria.pid",
            self.state / "victoria" / "victoria.log",
            lambda: procs.http_ok(f"http://127.0.0.1:{s.victoria_port}/health"),
        )
        self.services = (*self.kafka_nodes, self.influxdb, self.victoria)

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
        self.check_size()
        self.install(log)
        self.start_kafka(log)
        self.start_influxdb(log)
        self.start_victoria(log)
        asyncio.run(ensure_topics(self.settings, log))
        self.create_database()

    def down(self, log: Callable[[str], None] = print) -> None:
        """Stop the processes this stack started (by pid file), Kafka last."""
        for service in (self.victoria, self.influxdb):
            stopped = procs.stop(service.pid_file)
            log(f"{service.name}: {'stopped' if stopped else 'was not running'}")
        pids = [procs.read_pid(node.pid_file) for node in self.kafka_nodes]
        cluster.terminate([pid for pid in pids if pid is not None])
        for service, pid in zip(self.kafka_nodes, pids, strict=True):
            stopped = procs.stop(service.pid_file) or pid is not None
            log(f"{service.name}: {'stopped' if stopped else 'was not running'}")

    def status(self) -> list[tuple[Service, int | None, bool]]:
        """Each service with its pid (if started by us) and whether it answers."""
        return [(s, procs.read_pid(s.pid_file), s.is_up()) for s in self.services]

    def _start(
        self, service: Service, argv: list[str], timeout: float, log: Callable[[str], None]
    ) -> None:
        self._start_all([(service, argv)], timeout, log)

    def _start_all(
        self,
        services: list[tuple[Service, list[str]]],
        timeout: float,
        log: Callable[[str], None],
    ) -> None:
        """Start each service that is not running, then wait for each to answer: the nodes
        of a Kafka cluster answer only once a quorum of them runs."""
        waiting = []
        for service, argv in services:
            pid = procs.read_pid(service.pid_file)
            if pid is not None and service.is_up():
                log(f"{service.name}: already running (pid {pid}) at {service.address}")
                continue
            if pid is None and service.is_up():
                raise StackError(
                    f"{service.name}: something else already listens at {service.address}; "
                    "stop it or choose other FINTANK_*_PORT values"
                )
            if pid is None:
                procs.spawn(argv, service.pid_file, service.log_file, cwd=service.pid_file.parent)
            waiting.append(service)
        for service in waiting:
            procs.wait_until(
                service.is_up, service.name, timeout, service.pid_file, service.log_file
            )
            log(f"{service.name}: up at {service.address}")

    def start_kafka(self, log: Callable[[str], None]) -> None:
        """Format the nodes that are new (one cluster id for all), start those not running,
        wait until each answers and, for a cluster, until every broker has registered."""
        self.check_size()
        classpath = f"{self.kafka_libs(log)}/*"
        cluster_id = cluster.cluster_id_of(self.nodes) or _cluster_id()
        starts = []
        for node, service in zip(self.nodes, self.kafka_nodes, strict=True):
            node.home.mkdir(parents=True, exist_ok=True)
            node.properties.write_text(
                self.kafka_extras.apply(cluster.server_properties(node, self.nodes, self.settings)),
                encoding="utf-8",
            )
            log4j = node.home / KAFKA_LOG4J
            log4j.write_text(kafka_resource(KAFKA_LOG4J), encoding="utf-8")
            if not (node.data / "meta.properties").exists():
                self._format(classpath, cluster_id, node.properties, self.kafka_extras.format_args)
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
                str(node.properties),
            ]
            starts.append((service, argv))
        cluster.record_brokers(self.state, self.brokers)
        self._start_all(starts, 90, log)
        if self.brokers > 1:
            asyncio.run(wait_for_brokers(cluster.servers(self.nodes), self.brokers, 90))

    def check_size(self) -> None:
        """`StackError` if the state folder holds a Kafka of another size than this stack's."""
        recorded = cluster.recorded_brokers(self.state)
        if recorded is None or recorded == self.brokers:
            return
        home = self.state / "kafka"
        others = cluster.nodes(self.state, self.settings.kafka_port, recorded)
        if any(procs.read_pid(node.pid_file) is not None for node in others):
            raise StackError(
                f"kafka: a {recorded}-broker cluster runs under {home}; "
                f"stop it (fintank down) before starting {self.brokers}"
            )
        raise StackError(
            f"kafka: {home} holds a {recorded}-broker cluster; start it with --brokers "
            f"{recorded}, or remove {home} (its topics are lost) to start {self.brokers}"
        )

    @staticmethod
    def _format(
        classpath: str, cluster_id: str, properties: Path, extra: Sequence[str] = ()
    ) -> None:
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
                str(properties),
                *extra,  # KafkaExtras.format_args: SCRAM users (--add-scram ...)
            ],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            raise StackError(f"formatting Kafka storage failed: {done.stdout}{done.stderr}".strip())

    def start_influxdb(self, log: Callable[[str], None], auth: bool = False) -> None:
        """Start influxd unless it runs. ``auth``: with ``[http] auth-enabled = true`` (every
        request but the first ``CREATE USER ... WITH ALL PRIVILEGES`` then needs a user)."""
        home = self.state / "influxdb"
        home.mkdir(parents=True, exist_ok=True)
        conf = home / "influxdb.conf"
        conf.write_text(
            INFLUXDB_CONF.format(
                home=home,
                port=self.settings.influx_port,
                rpc=self.settings.influx_port + 2,
                auth="true" if auth else "false",
            )
        )
        self._start(self.influxdb, ["influxd", "-config", str(conf)], 60, log)

    def start_victoria(self, log: Callable[[str], None]) -> None:
        home = self.state / "victoria"
        home.mkdir(parents=True, exist_ok=True)
        # It scrapes the workers listed in targets/ (fintank.stack.scrape): the
        # default worker's port is listed here, other workers list themselves.
        config = scrape.write_config(self.state)
        scrape.add_target(self.state, self.settings.web_port)
        argv = [
            "victoria-metrics",
            f"-storageDataPath={home / 'data'}",
            f"-httpListenAddr=127.0.0.1:{self.settings.victoria_port}",
            "-retentionPeriod=100y",
            "-loggerLevel=WARN",
            # Make freshly written points visible to queries at once (default 30s).
            "-search.latencyOffset=0s",
            f"-promscrape.config={config}",
            f"-promscrape.fileSDCheckInterval={scrape.FILE_SD_CHECK}",
        ]
        pid = procs.read_pid(self.victoria.pid_file)
        if pid is not None and self.victoria.is_up() and not self._scrapes(config):
            # Started by a fintank that did not scrape workers yet: its flags are fixed
            # at start, so restart it (its data stays in storageDataPath).
            log(f"victoria-metrics: restarting (pid {pid}) to scrape the workers' /metrics")
            procs.stop(self.victoria.pid_file)
        self._start(self.victoria, argv, 60, log)

    def _scrapes(self, config: Path) -> bool:
        """Whether the running VictoriaMetrics was started with ``config`` as its scrape config."""
        url = f"http://127.0.0.1:{self.settings.victoria_port}/flags"
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                flags = resp.read().decode("utf-8", "replace")
        except OSError:
            return True  # cannot tell: leave it running
        return f'-promscrape.config="{config}"' in flags

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
  auth-enabled = {auth}

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
