"""fintank over a secured Kafka: SASL (SCRAM-SHA-512, SCRAM-SHA-256, PLAIN) over TLS.

The test makes its own CA and broker certificate (`tests.support.tls`, openssl) and
starts its own single KRaft broker with fintank's stack code (`Stack` with
`KafkaExtras`) on free ports: a SASL_SSL listener for every client, SCRAM users
created at format time, a PLAIN user in the listener's JAAS config. The PLAINTEXT
listener the stack always has stays for the broker's own use on loopback: fintank
is only ever given the SASL_SSL port, and the broker advertises that listener's
address to clients that connected through it, so no fintank client can fall back
to plaintext (`test_the_sasl_ssl_port_refuses_a_plaintext_client` checks that the
port does not speak it).

Through that listener: `fintank topics create` / `topics list`, `fintank seed ticks`
and `seed orders`, a worker of the built-in topology (its group consumer, producer,
changelogs, the recovery readers after a SIGKILL and restart, the `/recent` feed)
and `fintank tail`. InfluxDB is the shared test stack's, with this test's database.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

from fintank.config import Settings
from fintank.engine.kafka import KafkaSettings
from fintank.peek import Record, read_topic
from fintank.sinks.query import influx_count
from fintank.stack import Stack, procs
from fintank.stack.extras import KafkaExtras
from fintank.stack.worker import Worker
from tests.integration.conftest import TEST_STACK_ENV
from tests.support.tls import KEYSTORE_PASSWORD, Pki, make_pki

FINTANK = Path(sys.executable).with_name("fintank")
SCRAM_512_PASSWORD = "scram-512-" + uuid.uuid4().hex
SCRAM_256_PASSWORD = "scram-256-" + uuid.uuid4().hex
PLAIN_PASSWORD = "plain-" + uuid.uuid4().hex
SECRETS = (SCRAM_512_PASSWORD, SCRAM_256_PASSWORD, PLAIN_PASSWORD)
SYMBOLS = "SEC1,SEC2,SEC3"


def free_port(pair: bool = False) -> int:
    """A free port on 127.0.0.1 (``pair``: the next one free too, for a KRaft controller)."""
    for _ in range(100):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if not pair or (port < 65535 and not procs.port_open(port + 1)):
            return port
    raise RuntimeError("no free port")


def broker_extras(pki: Pki, plain_port: int, sasl_port: int) -> KafkaExtras:
    """A SASL_SSL listener on ``sasl_port`` next to the stack's PLAINTEXT one."""
    tls = "listener.name.sasl_ssl."
    scram = "org.apache.kafka.common.security.scram.ScramLoginModule required;"
    plain = (
        "org.apache.kafka.common.security.plain.PlainLoginModule required "
        f'user_plainuser="{PLAIN_PASSWORD}";'
    )
    return KafkaExtras(
        {
            "listeners": f"PLAINTEXT://127.0.0.1:{plain_port},"
            f"CONTROLLER://127.0.0.1:{plain_port + 1},SASL_SSL://127.0.0.1:{sasl_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{plain_port},"
            f"SASL_SSL://127.0.0.1:{sasl_port}",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,"
            "SASL_SSL:SASL_SSL",
            "sasl.enabled.mechanisms": "SCRAM-SHA-512,SCRAM-SHA-256,PLAIN",
            f"{tls}scram-sha-512.sasl.jaas.config": scram,
            f"{tls}scram-sha-256.sasl.jaas.config": scram,
            f"{tls}plain.sasl.jaas.config": plain,
            f"{tls}ssl.keystore.type": "PKCS12",
            f"{tls}ssl.keystore.location": str(pki.keystore),
            f"{tls}ssl.keystore.password": KEYSTORE_PASSWORD,
            f"{tls}ssl.key.password": KEYSTORE_PASSWORD,
        },
        format_args=(
            "--add-scram",
            f"SCRAM-SHA-512=[name=fintank,password={SCRAM_512_PASSWORD}]",
            "--add-scram",
            f"SCRAM-SHA-256=[name=fintank256,password={SCRAM_256_PASSWORD}]",
        ),
    )


@dataclass
class Secured:
    """The secured broker and the environment of fintank's commands and workers."""

    pki: Pki
    home: Path
    sasl_port: int
    env: dict[str, str]  # SASL_SSL + SCRAM-SHA-512, the password from a file

    @property
    def settings(self) -> Settings:
        return Settings.from_env(self.env)

    @property
    def kafka(self) -> KafkaSettings:
        return KafkaSettings.from_settings(self.settings)

    def fintank(
        self, *args: str, timeout: float = 180, **env: str
    ) -> subprocess.CompletedProcess[str]:
        """Run the ``fintank`` command with this environment (plus ``env``; "" unsets)."""
        run_env = {k: v for k, v in os.environ.items() if not k.startswith("FINTANK_")}
        run_env.update(self.env)
        for key, value in env.items():
            if value:
                run_env[key] = value
            else:
                run_env.pop(key, None)
        return subprocess.run(
            [str(FINTANK), *args], env=run_env, capture_output=True, text=True, timeout=timeout
        )

    def read(self, topic: str) -> list[Record]:
        return asyncio.run(read_topic(self.kafka, topic, timeout=60))


@pytest.fixture(scope="module")
def secured(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secured]:
    """A single KRaft broker with a SASL_SSL listener (own CA), and InfluxDB from ``stack``."""
    home = tmp_path_factory.mktemp("secured-kafka")
    pki = make_pki(home / "pki")
    plain_port, sasl_port = free_port(pair=True), free_port()
    suffix = uuid.uuid4().hex[:8]
    password_file = home / "kafka-password"
    password_file.write_text(SCRAM_512_PASSWORD + "\n")
    password_file.chmod(0o600)
    env = {
        "FINTANK_STATE_DIR": str(home / "state"),
        "FINTANK_KAFKA_PORT": str(plain_port),
        "FINTANK_BROKER": f"kafka://127.0.0.1:{sasl_port}",
        "FINTANK_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "FINTANK_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "FINTANK_KAFKA_SASL_USERNAME": "fintank",
        "FINTANK_KAFKA_SASL_PASSWORD_FILE": str(password_file),
        "FINTANK_KAFKA_SSL_CAFILE": str(pki.ca),
        "FINTANK_INFLUX_PORT": TEST_STACK_ENV["FINTANK_INFLUX_PORT"],
        "FINTANK_INFLUX_URL": TEST_STACK_ENV["FINTANK_INFLUX_URL"],
        "FINTANK_INFLUX_DATABASE": f"test_secured_{suffix}",
        "FINTANK_VICTORIA_PORT": TEST_STACK_ENV["FINTANK_VICTORIA_PORT"],
        "FINTANK_APP_ID": f"fintank-secured-{suffix}",
        "FINTANK_WEB_PORT": str(free_port()),
        "FINTANK_PARTITIONS": "2",
        "FINTANK_FLUSH_INTERVAL": "0.2",
    }
    # The broker's own stack: its PLAINTEXT port, no client security (fintank's stack code).
    broker_settings = Settings.from_env(
        {
            "FINTANK_STATE_DIR": env["FINTANK_STATE_DIR"],
            "FINTANK_KAFKA_PORT": str(plain_port),
            "FINTANK_BROKER": f"kafka://127.0.0.1:{plain_port}",
        }
    )
    broker = Stack(broker_settings, kafka_extras=broker_extras(pki, plain_port, sasl_port))
    broker.start_kafka(log=lambda _: None)
    try:
        deadline = time.monotonic() + 60
        while not procs.port_open(sasl_port):
            assert time.monotonic() < deadline, "the SASL_SSL listener did not open"
            time.sleep(0.2)
        Stack(Settings.from_env(env)).create_database()
        yield Secured(pki, home, sasl_port, env)
    finally:
        procs.stop(broker.kafka.pid_file)


def one_line(run: subprocess.CompletedProcess[str]) -> str:
    """The single stderr line of a failed command (exit 2, no traceback, no secret)."""
    assert run.returncode == 2, (run.returncode, run.stdout, run.stderr)
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("fintank: "), run.stderr
    assert not any(secret in run.stdout + run.stderr for secret in SECRETS)
    return lines[0]


# ------------------------------------------------------------------- refusals
def test_a_wrong_password_is_refused_with_one_line(secured: Secured, tmp_path: Path) -> None:
    wrong = tmp_path / "wrong"
    wrong.write_text("not-the-password\n")
    line = one_line(secured.fintank("topics", "list", FINTANK_KAFKA_SASL_PASSWORD_FILE=str(wrong)))
    assert f"kafka at 127.0.0.1:{secured.sasl_port} refused the connection" in line
    assert "refused the login of 'fintank' with SCRAM-SHA-512" in line
    assert "not-the-password" not in line
    # The seeding producers say the same.
    line = one_line(
        secured.fintank(
            "seed", "ticks", "--count", "5", FINTANK_KAFKA_SASL_PASSWORD_FILE=str(wrong)
        )
    )
    assert "refused the login of 'fintank' with SCRAM-SHA-512" in line


def test_an_untrusted_certificate_and_a_wrong_mechanism_are_named(secured: Secured) -> None:
    line = one_line(
        secured.fintank("topics", "list", FINTANK_KAFKA_SSL_CAFILE=str(secured.pki.other_ca))
    )
    assert "TLS: the certificate of" in line and "is not trusted" in line
    # fintank's user exists for SCRAM-SHA-512 only.
    line = one_line(secured.fintank("topics", "list", FINTANK_KAFKA_SASL_MECHANISM="SCRAM-SHA-256"))
    assert "refused the login of 'fintank' with SCRAM-SHA-256" in line


def test_the_sasl_ssl_port_refuses_a_plaintext_client(secured: Secured) -> None:
    plaintext = {
        "FINTANK_KAFKA_SECURITY_PROTOCOL": "",
        "FINTANK_KAFKA_SASL_MECHANISM": "",
        "FINTANK_KAFKA_SASL_USERNAME": "",
        "FINTANK_KAFKA_SASL_PASSWORD_FILE": "",
        "FINTANK_KAFKA_SSL_CAFILE": "",
    }
    line = one_line(secured.fintank("topics", "list", **plaintext))
    assert "closed the connection before answering; is FINTANK_KAFKA_SECURITY_PROTOCOL=" in line
    assert "PLAINTEXT what that listener speaks?" in line
    # And TLS without SASL: the listener wants a login.
    line = one_line(
        secured.fintank(
            "topics",
            "list",
            **{
                **plaintext,
                "FINTANK_KAFKA_SSL_CAFILE": str(secured.pki.ca),
                "FINTANK_KAFKA_SECURITY_PROTOCOL": "SSL",
            },
        )
    )
    assert "SSL what that listener speaks?" in line


# ----------------------------------------------------- the other mechanisms
@pytest.mark.parametrize(
    ("mechanism", "user", "password"),
    [("SCRAM-SHA-256", "fintank256", SCRAM_256_PASSWORD), ("PLAIN", "plainuser", PLAIN_PASSWORD)],
)
def test_scram_sha_256_and_plain_logins_list_the_topics(
    secured: Secured, mechanism: str, user: str, password: str
) -> None:
    done = secured.fintank(
        "topics",
        "list",
        FINTANK_KAFKA_SASL_MECHANISM=mechanism,
        FINTANK_KAFKA_SASL_USERNAME=user,
        FINTANK_KAFKA_SASL_PASSWORD=password,
        FINTANK_KAFKA_SASL_PASSWORD_FILE="",
    )
    assert done.returncode == 0, done.stderr
    assert f"on kafka at 127.0.0.1:{secured.sasl_port}" in done.stdout
    wrong = secured.fintank(
        "topics",
        "list",
        FINTANK_KAFKA_SASL_MECHANISM=mechanism,
        FINTANK_KAFKA_SASL_USERNAME=user,
        FINTANK_KAFKA_SASL_PASSWORD="wrong-" + password[::-1],
        FINTANK_KAFKA_SASL_PASSWORD_FILE="",
    )
    assert f"refused the login of {user!r} with {mechanism}" in one_line(wrong)


# ------------------------------------------------- everything over SASL_SSL
def components_of(orders: list[Record]) -> set[str]:
    return {
        f"{r.value['portfolio_order_id']}/{i}"
        for r in orders
        if isinstance(r.value, dict)
        for i, entry in enumerate(r.value["portfolio"])
        if entry["weight"] > 0
    }


def wait_for(secured: Secured, topic: str, count: int, timeout: float = 120) -> list[Record]:
    deadline = time.monotonic() + timeout
    while len(records := secured.read(topic)) < count:
        assert time.monotonic() < deadline, f"{len(records)} of {count} records on {topic}"
        time.sleep(1)
    return records


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return orjson.loads(resp.read())


def seed(secured: Secured, what: str, *args: str) -> None:
    done = secured.fintank("seed", what, "--rate", "0", "--symbols", SYMBOLS, *args)
    assert done.returncode == 0, done.stderr
    assert "sent " in done.stdout


def test_fintank_runs_over_sasl_ssl_with_scram_sha_512(secured: Secured) -> None:
    s = secured.settings
    topics = s.topics
    created = secured.fintank("topics", "create")
    assert created.returncode == 0, created.stderr
    listed = secured.fintank("topics", "list")
    assert listed.returncode == 0, listed.stderr
    assert f"fintank's topics: 11 of 11 on kafka at 127.0.0.1:{secured.sasl_port}" in listed.stdout

    worker = Worker(s, name="secured-worker")
    run_env = {k: v for k, v in os.environ.items() if not k.startswith("FINTANK_")}
    run_env.update(secured.env)
    worker.start(timeout=120, env=run_env)
    try:
        seed(secured, "ticks", "--count", "300", "--invalid", "3", "--seed", "7")
        db = (s.influx_url, s.influx_database)
        deadline = time.monotonic() + 90
        while influx_count(*db, "bid_ask", "bid") < 300:
            assert time.monotonic() < deadline, "ticks were not processed"
            time.sleep(0.5)
        first = ("--count", "30", "--taxpayers", "5", "--limit-share", "0", "--seed", "11")
        seed(secured, "orders", *first)
        components = components_of(secured.read(topics.orders))
        assert len(components) > 30
        wait_for(secured, topics.fills, len(components))

        # The /recent feed tails executions and fills over SASL_SSL.
        deadline = time.monotonic() + 30
        while not (recent := get_json(f"{worker.url}/recent"))["fills"]:
            assert time.monotonic() < deadline, recent
            time.sleep(0.5)
        assert recent["executions"] and recent["fills"]
        # fintank tail reads over SASL_SSL too.
        tail = secured.fintank("tail", topics.executions, "-n", "3")
        assert tail.returncode == 0, tail.stderr
        assert len(tail.stdout.splitlines()) == 3
        assert all(orjson.loads(line.split("\t", 1)[1]) for line in tail.stdout.splitlines())

        # A crash, then a restart: tables come back from their changelogs and the ledger
        # from executions and fills (the recovery readers), all over SASL_SSL.
        assert worker.kill()
        worker.start(timeout=120, env=run_env)
        seed(secured, "orders", "--count", "20", "--taxpayers", "5", "--limit-share", "0")
        components = components_of(secured.read(topics.orders))
        fills = wait_for(secured, topics.fills, len(components))
        time.sleep(3)  # nothing more may arrive
        executions, fills = secured.read(topics.executions), secured.read(topics.fills)
        assert sorted(r.value["component_order_id"] for r in executions) == sorted(components)
        assert sorted(r.value["component_order_id"] for r in fills) == sorted(components)
        cash: dict[str, float] = defaultdict(float)
        for r in fills:
            cash[str(r.value["taxpayer_id"])] += r.value["delta_cash_position"]
        for taxpayer, expected in cash.items():
            body = get_json(f"{worker.url}/positions/{taxpayer}")
            assert abs(body["cash"] - expected) < 1e-5, taxpayer

        letters = secured.read(topics.deadletters)
        assert len([r for r in letters if r.key == topics.ticks]) == 3
        listed = secured.fintank("topics", "list")
        changelogs = [line for line in listed.stdout.splitlines() if "changelog" in line]
        assert any(s.app_id in line for line in changelogs), listed.stdout
        # The password is in no log line of the worker.
        log = worker.log_file.read_text(errors="replace")
        assert "Authenticated as fintank via SCRAM-SHA-512" in log  # aiokafka, at INFO
        assert SCRAM_512_PASSWORD not in log
    finally:
        worker.stop()
