"""Kafka TLS and SASL settings: read, checked, kept secret, and given to every client.

No broker here: tests/integration/test_secured_kafka.py connects over SASL_SSL.
"""

from __future__ import annotations

import ast
import asyncio
import os
import ssl
import subprocess
import sys
from pathlib import Path

import pytest

from fintank.cli import config_table
from fintank.config import Settings
from fintank.engine import kafka
from fintank.engine.assignor import CopartitionedAssignor
from fintank.errors import ConfigError
from fintank.stack.extras import KafkaExtras
from tests.support.tls import Pki, make_pki

REPO = Path(__file__).resolve().parents[2]
SECRET = "s3cret-Pa55word-never-shown"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def sasl_ssl(pki: Pki, **more: str) -> dict[str, str]:
    return {
        "FINTANK_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "FINTANK_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "FINTANK_KAFKA_SASL_USERNAME": "fintank",
        "FINTANK_KAFKA_SASL_PASSWORD": SECRET,
        "FINTANK_KAFKA_SSL_CAFILE": str(pki.ca),
        **more,
    }


# ----------------------------------------------------------------------- reading
def test_the_default_is_plaintext_and_gives_clients_no_tls_or_sasl() -> None:
    conn = kafka.KafkaSettings.from_settings(Settings.from_env({}))
    assert conn.security == kafka.KafkaSecurity()
    assert kafka.connection(conn) == {
        "bootstrap_servers": "127.0.0.1:9092",
        "security_protocol": "PLAINTEXT",
    }
    assert kafka.faust_credentials(conn) is None


def test_sasl_ssl_settings_are_read_and_reach_the_client_arguments(pki: Pki) -> None:
    settings = Settings.from_env(
        sasl_ssl(pki, FINTANK_KAFKA_SECURITY_PROTOCOL="sasl_ssl", FINTANK_BROKER="h1:1,h2:2")
    )
    conn = kafka.KafkaSettings.from_settings(settings, "group")
    kwargs = kafka.connection(conn)
    context = kwargs.pop("ssl_context")
    assert kwargs == {
        "bootstrap_servers": "h1:1,h2:2",
        "security_protocol": "SASL_SSL",  # read case-insensitively
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "fintank",
        "sasl_plain_password": SECRET,
    }
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert conn.group_id == "group"


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_sasl_plaintext_has_no_tls(mechanism: str) -> None:
    env = {
        "FINTANK_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "FINTANK_KAFKA_SASL_MECHANISM": mechanism.lower(),
        "FINTANK_KAFKA_SASL_USERNAME": "u",
        "FINTANK_KAFKA_SASL_PASSWORD": SECRET,
    }
    kwargs = kafka.connection(kafka.KafkaSettings.from_settings(Settings.from_env(env)))
    assert "ssl_context" not in kwargs
    assert kwargs["sasl_mechanism"] == mechanism


def test_ssl_with_a_client_certificate_and_no_hostname_check(pki: Pki) -> None:
    env = {
        "FINTANK_KAFKA_SECURITY_PROTOCOL": "SSL",
        "FINTANK_KAFKA_SSL_CAFILE": str(pki.ca),
        "FINTANK_KAFKA_SSL_CERTFILE": str(pki.client_cert),
        "FINTANK_KAFKA_SSL_KEYFILE": str(pki.client_key),
        "FINTANK_KAFKA_SSL_CHECK_HOSTNAME": "0",
    }
    kwargs = kafka.connection(kafka.KafkaSettings.from_settings(Settings.from_env(env)))
    assert kwargs["security_protocol"] == "SSL" and "sasl_mechanism" not in kwargs
    context = kwargs["ssl_context"]
    assert not context.check_hostname and context.verify_mode == ssl.CERT_REQUIRED


def test_the_password_can_come_from_a_file(tmp_path: Path, pki: Pki) -> None:
    secret = tmp_path / "password"
    secret.write_text(SECRET + "\n")
    env = sasl_ssl(pki, FINTANK_KAFKA_SASL_PASSWORD_FILE=str(secret))
    del env["FINTANK_KAFKA_SASL_PASSWORD"]
    settings = Settings.from_env(env)
    assert settings.kafka_sasl_password == SECRET  # the trailing newline is not part of it
    assert (
        kafka.connection(kafka.KafkaSettings.from_settings(settings))["sasl_plain_password"]
        == SECRET
    )


# ----------------------------------------------------------------- bad settings
BAD = [
    ({"FINTANK_KAFKA_SECURITY_PROTOCOL": "TLS"}, "FINTANK_KAFKA_SECURITY_PROTOCOL must be one of"),
    (
        {"FINTANK_KAFKA_SECURITY_PROTOCOL": "SASL_SSL"},
        "FINTANK_KAFKA_SASL_MECHANISM must be one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512",
    ),
    (
        {
            "FINTANK_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
            "FINTANK_KAFKA_SASL_MECHANISM": "GSSAPI",
        },
        "FINTANK_KAFKA_SASL_MECHANISM must be one of",
    ),
    (
        {
            "FINTANK_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
            "FINTANK_KAFKA_SASL_MECHANISM": "PLAIN",
        },
        "FINTANK_KAFKA_SASL_USERNAME must be set",
    ),
    (
        {
            "FINTANK_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
            "FINTANK_KAFKA_SASL_MECHANISM": "PLAIN",
            "FINTANK_KAFKA_SASL_USERNAME": "u",
        },
        "FINTANK_KAFKA_SASL_PASSWORD (or FINTANK_KAFKA_SASL_PASSWORD_FILE) must be set",
    ),
    (
        {"FINTANK_KAFKA_SASL_USERNAME": "u"},
        "FINTANK_KAFKA_SASL_USERNAME is set but FINTANK_KAFKA_SECURITY_PROTOCOL is PLAINTEXT",
    ),
    (
        {"FINTANK_KAFKA_SASL_PASSWORD": SECRET},
        "FINTANK_KAFKA_SASL_PASSWORD is set but FINTANK_KAFKA_SECURITY_PROTOCOL is PLAINTEXT",
    ),
    (
        {"FINTANK_KAFKA_SECURITY_PROTOCOL": "SSL", "FINTANK_KAFKA_SASL_MECHANISM": "PLAIN"},
        "FINTANK_KAFKA_SASL_MECHANISM is set but FINTANK_KAFKA_SECURITY_PROTOCOL is SSL",
    ),
    (
        {"FINTANK_KAFKA_SSL_CAFILE": "/etc/hostname"},
        "FINTANK_KAFKA_SSL_CAFILE is set but FINTANK_KAFKA_SECURITY_PROTOCOL is PLAINTEXT",
    ),
    (
        {
            "FINTANK_KAFKA_SECURITY_PROTOCOL": "SSL",
            "FINTANK_KAFKA_SSL_CAFILE": "/nonexistent/ca.pem",
        },
        "FINTANK_KAFKA_SSL_CAFILE '/nonexistent/ca.pem' is not a readable PEM CA certificate",
    ),
    (
        {"FINTANK_KAFKA_SECURITY_PROTOCOL": "SSL", "FINTANK_KAFKA_SSL_KEYFILE": "/k.pem"},
        "FINTANK_KAFKA_SSL_KEYFILE needs FINTANK_KAFKA_SSL_CERTFILE",
    ),
    (
        {
            "FINTANK_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "FINTANK_KAFKA_SASL_MECHANISM": "PLAIN",
            "FINTANK_KAFKA_SASL_USERNAME": "u",
            "FINTANK_KAFKA_SASL_PASSWORD": SECRET,
            "FINTANK_KAFKA_SASL_PASSWORD_FILE": "/p",
        },
        "FINTANK_KAFKA_SASL_PASSWORD and FINTANK_KAFKA_SASL_PASSWORD_FILE are both set",
    ),
    (
        {"FINTANK_KAFKA_SASL_PASSWORD_FILE": "/nonexistent/password"},
        "FINTANK_KAFKA_SASL_PASSWORD_FILE '/nonexistent/password' cannot be read",
    ),
    (
        {"FINTANK_KAFKA_SSL_CHECK_HOSTNAME": "maybe"},
        "FINTANK_KAFKA_SSL_CHECK_HOSTNAME must be 1 or 0",
    ),
]


@pytest.mark.parametrize(("env", "message"), BAD)
def test_bad_combinations_are_one_line_naming_the_variable(
    env: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_env(env)
    text = str(info.value)
    assert message in text
    assert "\n" not in text
    assert SECRET not in text


def test_a_file_that_is_not_a_certificate_is_named(tmp_path: Path, pki: Pki) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    with pytest.raises(ConfigError, match="FINTANK_KAFKA_SSL_CAFILE .*junk.pem"):
        Settings.from_env(sasl_ssl(pki, FINTANK_KAFKA_SSL_CAFILE=str(junk)))
    with pytest.raises(ConfigError, match="FINTANK_KAFKA_SSL_CERTFILE .*junk.pem"):
        Settings.from_env(
            sasl_ssl(pki, FINTANK_KAFKA_SSL_CERTFILE=str(junk), FINTANK_KAFKA_SSL_KEYFILE=str(junk))
        )
    empty = tmp_path / "empty"
    empty.write_text("")
    env = sasl_ssl(pki, FINTANK_KAFKA_SASL_PASSWORD_FILE=str(empty))
    del env["FINTANK_KAFKA_SASL_PASSWORD"]
    with pytest.raises(ConfigError, match="FINTANK_KAFKA_SASL_PASSWORD_FILE .* is empty"):
        Settings.from_env(env)


# ---------------------------------------------------------------------- secrets
def test_the_password_is_in_no_repr_and_no_message(pki: Pki) -> None:
    settings = Settings.from_env(sasl_ssl(pki))
    conn = kafka.KafkaSettings.from_settings(settings)
    credentials = kafka.faust_credentials(conn)
    shown = [
        repr(settings),
        str(settings),
        repr(conn),
        repr(conn.security),
        repr(credentials),
        *config_table(),
    ]
    assert all(SECRET not in text for text in shown)
    assert "username='fintank'" in repr(conn) and "SCRAM-SHA-512" in repr(conn)


def test_the_cli_never_prints_the_password(pki: Pki) -> None:
    # A bad setting next to the password, and `fintank config`: neither shows it.
    env = {k: v for k, v in os.environ.items() if not k.startswith("FINTANK_")}
    bad = {**env, **sasl_ssl(pki, FINTANK_KAFKA_SASL_MECHANISM="KERBEROS")}
    run = subprocess.run(
        [sys.executable, "-m", "fintank.cli", "topics", "list"],
        env=bad,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 2
    assert run.stderr.startswith("fintank: FINTANK_KAFKA_SASL_MECHANISM must be one of")
    assert len(run.stderr.splitlines()) == 1
    shown = subprocess.run(
        [sys.executable, "-m", "fintank.cli", "config"],
        env={**env, **sasl_ssl(pki)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert shown.returncode == 0
    assert SECRET not in run.stdout + run.stderr + shown.stdout + shown.stderr


# -------------------------------------------------------------- every client
def test_every_client_factory_connects_with_the_security(pki: Pki) -> None:
    conn = kafka.KafkaSettings.from_settings(Settings.from_env(sasl_ssl(pki)), "g")

    async def build() -> list[object]:
        assignor = CopartitionedAssignor({"g": ("t",)}, "http://x")
        consumer, reader = kafka.group_consumer(conn, assignor), kafka.reader(conn)
        producer, admin = kafka.producer(conn), kafka.admin(conn)
        # pinned: where aiokafka keeps each client's connection settings
        clients = [consumer._client, reader._client, producer.client, admin._client]  # noqa: SLF001
        for closable in (consumer, reader, producer, admin):
            await closable.close() if closable is admin else await closable.stop()
        return clients

    for client in asyncio.run(build()):
        assert client._security_protocol == "SASL_SSL"  # type: ignore[attr-defined]  # noqa: SLF001
        assert client._sasl_mechanism == "SCRAM-SHA-512"  # type: ignore[attr-defined]  # noqa: SLF001
        assert client._sasl_plain_username == "fintank"  # type: ignore[attr-defined]  # noqa: SLF001
        assert client._sasl_plain_password == SECRET  # type: ignore[attr-defined]  # noqa: SLF001
        assert isinstance(client._ssl_context, ssl.SSLContext)  # type: ignore[attr-defined]  # noqa: SLF001


def test_faust_gets_the_same_credentials(pki: Pki) -> None:
    """fintank's worker runs no faust Kafka client, but its app carries the credentials, and
    faust turns them into exactly the arguments fintank's own clients get."""
    from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

    from fintank.runtime import make_app

    for env in (
        sasl_ssl(pki),
        {"FINTANK_KAFKA_SECURITY_PROTOCOL": "SSL", "FINTANK_KAFKA_SSL_CAFILE": str(pki.ca)},
        {
            "FINTANK_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
            "FINTANK_KAFKA_SASL_MECHANISM": "PLAIN",
            "FINTANK_KAFKA_SASL_USERNAME": "u",
            "FINTANK_KAFKA_SASL_PASSWORD": SECRET,
        },
    ):
        settings = Settings.from_env({**env, "FINTANK_APP_ID": "x"})
        conn = kafka.KafkaSettings.from_settings(settings)
        ours = kafka.connection(conn)
        del ours["bootstrap_servers"]
        theirs = dict(credentials_to_aiokafka_auth(kafka.faust_credentials(conn)))
        if "ssl_context" not in ours:
            assert theirs.pop("ssl_context") is None
        assert theirs == ours
        app_credentials = make_app(settings).conf.broker_credentials
        assert dict(credentials_to_aiokafka_auth(app_credentials)) == {
            **ours,
            **({} if "ssl_context" in ours else {"ssl_context": None}),
        }


def test_a_string_means_plaintext_servers() -> None:
    assert kafka.kafka_settings("h:1") == kafka.KafkaSettings("h:1")
    assert kafka.kafka_settings("h:1").security.protocol == "PLAINTEXT"


def test_a_server_that_does_not_answer_is_not_a_refusal() -> None:
    async def both() -> tuple[str | None, str]:
        plain = kafka.KafkaSettings("127.0.0.1:1")
        return await kafka.refusal(plain), await kafka.unreachable(plain)

    refused, message = asyncio.run(both())
    assert refused is None
    assert message == "cannot reach kafka at 127.0.0.1:1 (is it running? see `fintank status`)"


# The calls that make a Kafka client (aiokafka's constructors), and fintank's helpers that
# take how to connect: given a bare ``x.bootstrap`` they would connect without TLS or SASL.
CONSTRUCTORS = {"AIOKafkaConsumer", "AIOKafkaProducer", "AIOKafkaAdminClient", "create_conn"}
TAKES_CONNECTION = {
    "KafkaSettings",
    "kafka_settings",
    "read_topic",
    "send_paced",
    "send_scheduled",
    "RecentFeed",
    "KafkaSink",
    "replay_to_kafka",
}


def _name(func: ast.expr) -> str:
    if isinstance(func, ast.Attribute):
        return func.attr
    return func.id if isinstance(func, ast.Name) else ""


def test_no_module_makes_a_kafka_client_outside_the_factory_module() -> None:
    """Every client goes through `fintank.engine.kafka` (which passes `connection`), and no
    module hands a helper ``settings.bootstrap`` where the connection (with TLS, SASL) goes."""
    offenders = []
    files = [*REPO.joinpath("fintank").rglob("*.py"), *REPO.joinpath("topologies").rglob("*.py")]
    factory = REPO / "fintank" / "engine" / "kafka.py"
    for path in files:
        where = path.relative_to(REPO)
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.Call):
                continue
            name = _name(node.func)
            if name in CONSTRUCTORS and path != factory:
                offenders.append(f"{where}:{node.lineno}: {name}(...)")
            args = [*node.args, *(k.value for k in node.keywords)]
            bare = [a for a in args if isinstance(a, ast.Attribute) and a.attr == "bootstrap"]
            if name in TAKES_CONNECTION and bare:
                offenders.append(f"{where}:{node.lineno}: {name}(... .bootstrap ...)")
    assert offenders == []


def test_the_scan_finds_what_it_looks_for() -> None:
    source = (
        "AIOKafkaConsumer(bootstrap_servers=s.bootstrap)\n"
        "read_topic(settings.bootstrap, 't')\n"
        "kafka.KafkaSettings(settings.bootstrap, '')\n"
    )
    found = [
        _name(n.func)
        for n in ast.walk(ast.parse(source))
        if isinstance(n, ast.Call)
        and (
            _name(n.func) in CONSTRUCTORS
            or any(isinstance(a, ast.Attribute) and a.attr == "bootstrap" for a in n.args)
        )
    ]
    assert sorted(found) == ["AIOKafkaConsumer", "KafkaSettings", "read_topic"]


# ------------------------------------------------------------ the stack's hook
def test_kafka_extras_replace_keys_in_place_and_add_the_rest() -> None:
    text = "# listeners=commented\nlisteners=PLAINTEXT://127.0.0.1:1\nnode.id=1\n"
    extras = KafkaExtras({"listeners": "PLAINTEXT://a:1,SASL_SSL://a:2", "sasl.x": "y"})
    assert extras.apply(text).splitlines() == [
        "# listeners=commented",
        "listeners=PLAINTEXT://a:1,SASL_SSL://a:2",
        "node.id=1",
        "# Added for this stack (fintank.stack.extras.KafkaExtras).",
        "sasl.x=y",
    ]
    assert KafkaExtras().apply(text) == text


def test_the_refusal_probe_uses_what_aiokafka_has() -> None:
    """`kafka.refusal` connects with aiokafka's ``create_conn`` and asks for metadata, as
    aiokafka's own bootstrap does: pinned here, so an upgrade says where it changed."""
    import inspect

    from aiokafka.conn import AIOKafkaConnection, create_conn
    from aiokafka.protocol.metadata import MetadataRequest

    wanted = {
        "request_timeout_ms",
        "ssl_context",
        "security_protocol",
        "sasl_mechanism",
        "sasl_plain_username",
        "sasl_plain_password",
    }
    assert wanted <= set(inspect.signature(create_conn).parameters)
    assert inspect.iscoroutinefunction(create_conn)
    assert MetadataRequest([]).API_KEY == 3  # Metadata
    assert callable(AIOKafkaConnection.send) and callable(AIOKafkaConnection.close)
