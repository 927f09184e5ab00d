"""Three workers on three hosts route `/positions` and `/candles` to each other.

Each worker runs in its own network namespace (its own interfaces, addresses and
loopback: a separate host as far as networking goes), joined to this one by a veth
pair on a bridge the test makes, with addresses private to the test. A worker
listens on every interface (``FINTANK_WEB_BIND=0.0.0.0``) and is advertised at its
own address (``FINTANK_WEB_HOST``), all on the same port, as on real hosts. Kafka
(a broker of the test's own, fintank's stack code) advertises the bridge address;
InfluxDB is the test stack's, reached through a small forwarder on the bridge.

Every symbol's candles and every taxpayer's position is asked of every worker and
answered the same by all three, though each owns only some of the partitions.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from fintank.config import Settings
from fintank.engine.kafka import KafkaSettings
from fintank.peek import read_topic
from fintank.stack import Stack, procs
from fintank.stack.extras import KafkaExtras
from tests.integration.conftest import TEST_STACK_ENV
from tests.integration.load import free_port

FINTANK = Path(sys.executable).with_name("fintank")
HOSTS = 3
PORT = 6066  # the same web port on every host
SYMBOLS = ["VTI", "IVE", "IWS", "AAA", "BBB", "CCC", "DDD", "EEE"]


def sh(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True, text=True, timeout=30)


@dataclass
class Network:
    """A bridge here and one namespace per host, each with its address on the bridge."""

    bridge: str
    gateway: str
    namespaces: list[str]
    addresses: list[str]


@pytest.fixture
def network() -> Iterator[Network]:
    assert os.geteuid() == 0 and shutil.which("ip"), "needs root and iproute2 (ip netns)"
    tag = uuid.uuid4().hex[:6]
    used = subprocess.run(["ip", "-4", "addr"], capture_output=True, text=True).stdout
    subnet = next(
        f"10.231.{n}" for n in random.sample(range(10, 250), 240) if f"10.231.{n}." not in used
    )
    net = Network(
        f"ftb{tag}",
        f"{subnet}.1",
        [f"fintank-{tag}-{i}" for i in range(HOSTS)],
        [f"{subnet}.{11 + i}" for i in range(HOSTS)],
    )
    try:
        sh("ip", "link", "add", net.bridge, "type", "bridge")
        sh("ip", "addr", "add", f"{net.gateway}/24", "dev", net.bridge)
        sh("ip", "link", "set", net.bridge, "up")
        for i, (ns, address) in enumerate(zip(net.namespaces, net.addresses, strict=True)):
            outside, inside = f"ftv{tag}{i}", f"ftp{tag}{i}"
            sh("ip", "netns", "add", ns)
            sh("ip", "link", "add", outside, "type", "veth", "peer", "name", inside)
            sh("ip", "link", "set", outside, "master", net.bridge)
            sh("ip", "link", "set", outside, "up")
            sh("ip", "link", "set", inside, "netns", ns)
            run = ["ip", "netns", "exec", ns, "ip"]
            sh(*run, "link", "set", "lo", "up")
            sh(*run, "addr", "add", f"{address}/24", "dev", inside)
            sh(*run, "link", "set", inside, "up")
            sh(*run, "route", "add", "default", "via", net.gateway)
        yield net
    finally:
        for ns in net.namespaces:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)
        subprocess.run(["ip", "link", "del", net.bridge], capture_output=True, timeout=30)


class Forwarder:
    """Accepts on ``listen`` and pipes each connection to ``target`` (both host, port)."""

    def __init__(self, listen: tuple[str, int], target: tuple[str, int]) -> None:
        self.listen, self.target = listen, target
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        assert self.ready.wait(10), "the forwarder did not start"

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)

        async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                while data := await reader.read(65536):
                    writer.write(data)
                    await writer.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                writer.close()

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

        async def main() -> None:
            await asyncio.start_server(serve, *self.listen)
            self.ready.set()

        self.loop.run_until_complete(main())
        self.loop.run_forever()

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)


@dataclass
class Hosts:
    network: Network
    env: dict[str, str]  # for fintank's commands here
    workers: list[subprocess.Popen[bytes]]

    def get(self, host: int, path: str) -> tuple[int, Any]:
        """Status and JSON body of ``GET path`` on host ``host`` (0 and the error if none)."""
        url = f"http://{self.network.addresses[host]}:{PORT}{path}"
        try:
            with urllib.request.urlopen(url, timeout=30) as reply:
                return reply.status, json.loads(reply.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")
        except (urllib.error.URLError, OSError) as exc:
            return 0, repr(exc)


def wait_for(check: Any, what: str, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while not (result := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.5)
    return result


@pytest.fixture
def hosts(stack: Stack, network: Network, tmp_path: Path) -> Iterator[Hosts]:
    suffix = uuid.uuid4().hex[:8]
    kafka_port = free_port()
    while procs.port_open(kafka_port + 1):  # its controller listens one above
        kafka_port = free_port()
    broker = f"{network.gateway}:{kafka_port}"
    own = Settings.from_env(
        {
            "FINTANK_STATE_DIR": str(tmp_path / "kafka-state"),
            "FINTANK_KAFKA_PORT": str(kafka_port),
            "FINTANK_BROKER": f"kafka://127.0.0.1:{kafka_port}",
        }
    )
    kafka = Stack(
        own,
        kafka_extras=KafkaExtras(
            {
                "listeners": f"PLAINTEXT://0.0.0.0:{kafka_port},"
                f"CONTROLLER://127.0.0.1:{kafka_port + 1}",
                "advertised.listeners": f"PLAINTEXT://{broker}",
            }
        ),
    )
    influx_port = free_port()
    influx = TEST_STACK_ENV["FINTANK_INFLUX_URL"].rsplit(":", 1)
    forwarder = Forwarder((network.gateway, influx_port), ("127.0.0.1", int(influx[1])))
    env = {
        "FINTANK_BROKER": f"kafka://{broker}",
        "FINTANK_APP_ID": f"fintank-hosts-{suffix}",
        "FINTANK_PARTITIONS": "6",
        "FINTANK_INFLUX_URL": f"http://{network.gateway}:{influx_port}",
        "FINTANK_INFLUX_DATABASE": f"test_hosts_{suffix}",
        "FINTANK_FLUSH_INTERVAL": "0.2",
    }
    workers: list[subprocess.Popen[bytes]] = []
    try:
        kafka.start_kafka(log=lambda _: None)
        here = {**{k: v for k, v in os.environ.items() if not k.startswith("FINTANK_")}, **env}
        subprocess.run([str(FINTANK), "topics", "create"], env=here, check=True, timeout=120)
        direct = {
            **env,
            "FINTANK_INFLUX_URL": TEST_STACK_ENV["FINTANK_INFLUX_URL"],
            "FINTANK_INFLUX_PORT": TEST_STACK_ENV["FINTANK_INFLUX_PORT"],
        }
        Stack(Settings.from_env(direct)).create_database()
        for i, (ns, address) in enumerate(zip(network.namespaces, network.addresses, strict=True)):
            host_env = {
                **here,
                "FINTANK_STATE_DIR": str(tmp_path / f"host-{i}"),
                "FINTANK_WEB_BIND": "0.0.0.0",
                "FINTANK_WEB_HOST": address,
                "FINTANK_WEB_PORT": str(PORT),
            }
            log = (tmp_path / f"worker-{i}.log").open("wb")
            argv = ["ip", "netns", "exec", ns, sys.executable, "-m", "fintank.cli", "worker"]
            workers.append(
                subprocess.Popen(argv, env=host_env, stdout=log, stderr=subprocess.STDOUT)
            )
        yield Hosts(network, here, workers)
    finally:
        for w in workers:
            w.terminate()
        for w in workers:
            try:
                w.wait(timeout=40)
            except subprocess.TimeoutExpired:
                w.kill()
        procs.stop(kafka.kafka.pid_file)
        forwarder.close()


def test_every_worker_answers_for_every_symbol_and_taxpayer(hosts: Hosts) -> None:
    # Arrange: three ready workers sharing the partitions, then ticks and orders.
    def ready() -> list[list[str]] | None:
        healths = [hosts.get(i, "/health") for i in range(HOSTS)]
        if not all(status == 200 and body.get("ready") for status, body in healths):
            return None
        assigned = [sorted(body["assigned"]) for _, body in healths]
        ticks = [p for a in assigned for p in a if p.startswith("ticks")]
        return assigned if len(ticks) == 6 and all(assigned) else None

    assigned = wait_for(ready, "three ready workers sharing the partitions", 180)

    def seed(*args: str) -> None:
        subprocess.run(
            [str(FINTANK), "seed", *args],
            env=hosts.env,
            check=True,
            timeout=120,
            capture_output=True,
        )

    symbols = ["--rate", "0", "--symbols", ",".join(SYMBOLS)]
    seed("ticks", "--count", "400", *symbols)
    seed("orders", "--count", "30", *symbols, "--taxpayers", "12", "--limit-share", "0")
    seed("ticks", "--count", "80", *symbols, "--seed", "2")

    kafka = KafkaSettings.from_settings(Settings.from_env(hosts.env))
    fills = wait_for(
        lambda: [r.value for r in asyncio.run(read_topic(kafka, "fills", timeout=20))] or None,
        "fills",
        120,
    )
    time.sleep(3)
    taxpayers = sorted({str(f["taxpayer_id"]) for f in fills})

    # Act and assert: every host answers every key, the same as the others.
    for symbol in SYMBOLS:
        answers = [hosts.get(i, f"/candles/{symbol}") for i in range(HOSTS)]
        assert all(status == 200 for status, _ in answers), (symbol, answers)
        assert answers[0] == answers[1] == answers[2], symbol
    for taxpayer in taxpayers:
        answers = [hosts.get(i, f"/positions/{taxpayer}") for i in range(HOSTS)]
        assert all(status == 200 for status, _ in answers), (taxpayer, answers)
        assert answers[0] == answers[1] == answers[2], taxpayer
    # No host owns everything: the answers above were routed between hosts.
    assert all(len(a) < sum(len(b) for b in assigned) for a in assigned)
