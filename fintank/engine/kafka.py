"""The one module that knows how fintank talks to Kafka: aiokafka clients and their settings.

Everything the engine needs from aiokafka is imported here, so one test
(`tests/unit/engine/test_kafka_surface.py`) can pin what fintank relies on:
the consumer calls of the group protocol (subscribe with a rebalance
listener, getmany, pause/resume, position, explicit commit), the producer
(acks=all, idempotence), the admin client, and the assignor interface
(`AbstractPartitionAssignor` and the member metadata/assignment structs,
which aiokafka documents for custom ``partition_assignment_strategy``
values). No private attribute of aiokafka or faust is read by the engine.

Every client fintank makes is built by one of the functions below, and each
is given `connection` (bootstrap servers, TLS, SASL), so a connection setting
reaches all of them from one place (`tests/unit/test_kafka_security.py` scans
fintank for a client made anywhere else).
"""

from __future__ import annotations

import asyncio
import functools
import ssl
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.cluster import ClusterMetadata
from aiokafka.conn import create_conn
from aiokafka.coordinator.assignors.abstract import AbstractPartitionAssignor
from aiokafka.coordinator.protocol import (
    ConsumerProtocolMemberAssignment,
    ConsumerProtocolMemberMetadata,
)
from aiokafka.errors import (
    AuthenticationFailedError,
    CommitFailedError,
    IllegalSaslStateError,
    IllegalStateError,
    KafkaConnectionError,
    KafkaError,
    SaslAuthenticationFailed,
    TopicAlreadyExistsError,
    UnsupportedSaslMechanismError,
    for_code,
)
from aiokafka.helpers import create_ssl_context
from aiokafka.partitioner import murmur2
from aiokafka.protocol.metadata import MetadataRequest
from aiokafka.structs import OffsetAndMetadata

if TYPE_CHECKING:
    from fintank.config import Settings

__all__ = [
    "AbstractPartitionAssignor",
    "AIOKafkaAdminClient",
    "AIOKafkaConsumer",
    "AIOKafkaProducer",
    "ClusterMetadata",
    "CommitFailedError",
    "ConsumerProtocolMemberAssignment",
    "ConsumerProtocolMemberMetadata",
    "ConsumerRebalanceListener",
    "ConsumerRecord",
    "IllegalStateError",
    "KafkaConnectionError",
    "KafkaError",
    "KafkaSecurity",
    "KafkaSettings",
    "NewTopic",
    "OffsetAndMetadata",
    "TopicAlreadyExistsError",
    "TopicPartition",
    "partition_for",
]


@dataclass(frozen=True, slots=True)
class KafkaSecurity:
    """TLS and SASL of every connection (``FINTANK_KAFKA_*``, checked by `fintank.config`).

    The password is left out of the repr, so no log line or error made from
    this object can show it.
    """

    protocol: str = "PLAINTEXT"
    mechanism: str = ""
    username: str = ""
    password: str = field(default="", repr=False)
    cafile: str = ""
    certfile: str = ""
    keyfile: str = ""
    check_hostname: bool = True

    @property
    def tls(self) -> bool:
        return self.protocol in ("SSL", "SASL_SSL")

    @property
    def sasl(self) -> bool:
        return self.protocol in ("SASL_PLAINTEXT", "SASL_SSL")


PLAINTEXT = KafkaSecurity()


@dataclass(frozen=True, slots=True)
class KafkaSettings:
    """How to reach Kafka and how the group behaves (from `fintank.config.Settings`)."""

    bootstrap: str
    group_id: str = ""
    session_timeout: float = 10.0
    heartbeat_interval: float = 1.0
    max_partition_fetch_bytes: int = 4 * 1024 * 1024
    security: KafkaSecurity = PLAINTEXT

    @classmethod
    def from_settings(cls, settings: Settings, group_id: str = "") -> KafkaSettings:
        """Servers, TLS and SASL of ``settings``: what every Kafka client of a process gets."""
        return cls(
            settings.bootstrap,
            group_id,
            security=KafkaSecurity(
                protocol=settings.kafka_security_protocol,
                mechanism=settings.kafka_sasl_mechanism,
                username=settings.kafka_sasl_username,
                password=settings.kafka_sasl_password,
                cafile=settings.kafka_ssl_cafile,
                certfile=settings.kafka_ssl_certfile,
                keyfile=settings.kafka_ssl_keyfile,
                check_hostname=settings.kafka_ssl_check_hostname,
            ),
        )


def kafka_settings(target: KafkaSettings | str) -> KafkaSettings:
    """``target`` as `KafkaSettings`; a bare ``host:port[,...]`` string means PLAINTEXT.

    fintank's own callers pass `KafkaSettings.from_settings`; the string form is
    for tests and scripts against an unsecured broker.
    """
    return KafkaSettings(target) if isinstance(target, str) else target


@functools.lru_cache(maxsize=8)
def ssl_context(security: KafkaSecurity) -> ssl.SSLContext:
    """The TLS context of ``security`` (made once per process and shared by its clients).

    aiokafka's `create_ssl_context`: the CA file (else the system's CAs), the client
    certificate if given, and the broker's host name checked unless turned off
    (the certificate chain is always verified).
    """
    context: ssl.SSLContext = create_ssl_context(
        cafile=security.cafile or None,
        certfile=security.certfile or None,
        keyfile=security.keyfile or None,
    )
    context.check_hostname = security.check_hostname
    return context


def connection(settings: KafkaSettings) -> dict[str, Any]:
    """The keyword arguments that connect an aiokafka client: servers, TLS and SASL.

    The one place they are made; every factory below passes them.
    """
    security = settings.security
    kwargs: dict[str, Any] = {
        "bootstrap_servers": settings.bootstrap,
        "security_protocol": security.protocol,
    }
    if security.tls:
        kwargs["ssl_context"] = ssl_context(security)
    if security.sasl:
        kwargs["sasl_mechanism"] = security.mechanism
        kwargs["sasl_plain_username"] = security.username
        kwargs["sasl_plain_password"] = security.password
    return kwargs


def faust_credentials(settings: KafkaSettings) -> Any:
    """The same TLS and SASL as faust's ``broker_credentials`` (None for PLAINTEXT).

    fintank's worker runs no faust Kafka client (`fintank.runtime.NoKafka`); the
    app gets them anyway, so a faust consumer or producer started in it (a user's
    agent) connects as fintank's clients do.
    """
    from faust.auth import SASLCredentials, SSLCredentials

    security = settings.security
    context = ssl_context(security) if security.tls else None
    if security.sasl:
        return SASLCredentials(
            username=security.username,
            password=security.password,
            ssl_context=context,
            mechanism=security.mechanism,
        )
    return None if context is None else SSLCredentials(context)


def partition_for(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner (and aiokafka's) gives ``key``."""
    return int(murmur2(key) & 0x7FFFFFFF) % partitions


def group_consumer(
    settings: KafkaSettings, assignor: AbstractPartitionAssignor
) -> AIOKafkaConsumer:
    """The engine's consumer: a group member with explicit commits and fintank's assignor.

    read_committed: a transactional writer's aborted records never reach a bolt.
    """
    return AIOKafkaConsumer(
        **connection(settings),
        group_id=settings.group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        partition_assignment_strategy=(assignor,),
        session_timeout_ms=int(settings.session_timeout * 1000),
        heartbeat_interval_ms=int(settings.heartbeat_interval * 1000),
        rebalance_timeout_ms=int(max(settings.session_timeout, 30.0) * 1000),
        max_partition_fetch_bytes=settings.max_partition_fetch_bytes,
        fetch_max_wait_ms=100,
        # Outlives a long recovery: the engine keeps calling getmany meanwhile.
        max_poll_interval_ms=300_000,
    )


def reader(settings: KafkaSettings) -> AIOKafkaConsumer:
    """A consumer outside any group, for reading partitions back (recovery, tests, the feed)."""
    return AIOKafkaConsumer(
        **connection(settings),
        enable_auto_commit=False,
        # A seek to an offset retention removed starts at the oldest record, not the end.
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        max_partition_fetch_bytes=settings.max_partition_fetch_bytes,
        fetch_max_wait_ms=100,
    )


def producer(settings: KafkaSettings, linger_ms: int = 0) -> AIOKafkaProducer:
    """A producer that acks from all in-sync replicas and is idempotent (no duplicate on retry).

    Every producer fintank makes is this one: the engine's (``linger_ms`` 0,
    for latency) and the seeding tasks' (a few ms, for throughput).
    """
    return AIOKafkaProducer(
        **connection(settings),
        acks="all",
        enable_idempotence=True,
        linger_ms=linger_ms,
        max_batch_size=512 * 1024,
        retry_backoff_ms=20,
    )


def admin(settings: KafkaSettings) -> AIOKafkaAdminClient:
    """An admin client (topic creation and description)."""
    return AIOKafkaAdminClient(**connection(settings))


async def topic_partitions(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    """The partitions of ``topic`` as the cluster knows them now (empty if it does not exist).

    aiokafka's public ``partitions_for_topic`` only knows topics the consumer
    subscribed to or was assigned; this asks the cluster (a private client
    call, pinned by the surface test).
    """
    cluster = await consumer._client.fetch_all_metadata()
    return set(cluster.partitions_for_topic(topic) or ())


def tps(topic: str, partitions: Sequence[int]) -> list[TopicPartition]:
    """``TopicPartition`` of each of ``partitions`` of ``topic``."""
    return [TopicPartition(topic, p) for p in partitions]


def record_value(record: Any) -> bytes | None:
    """A consumer record's value (aiokafka's ConsumerRecord or a test double)."""
    value: bytes | None = record.value
    return value


async def refusal(settings: KafkaSettings, timeout: float = 5.0) -> str | None:
    """Why the brokers refuse fintank's connection, in one line; None if they do not answer.

    A client whose bootstrap fails only says it could not bootstrap (aiokafka logs
    the cause); this makes one connection to each bootstrap server with the same
    settings to find the cause: an untrusted certificate, a listener speaking
    another protocol (TLS or not, SASL or not), a refused login, a mechanism the
    listener does not enable. The password is never part of it.
    """
    security = settings.security
    kwargs = connection(settings)
    kwargs.pop("bootstrap_servers")
    mismatch = f"is FINTANK_KAFKA_SECURITY_PROTOCOL={security.protocol} what that listener speaks?"
    for server in settings.bootstrap.split(","):
        host, _, port = server.rpartition(":")
        try:
            conn = await asyncio.wait_for(
                create_conn(host, int(port), request_timeout_ms=int(timeout * 1000), **kwargs),
                timeout,
            )
        except ssl.SSLCertVerificationError as exc:
            return (
                f"TLS: the certificate of {server} is not trusted ({exc.verify_message}); "
                "check FINTANK_KAFKA_SSL_CAFILE (and FINTANK_KAFKA_SSL_CHECK_HOSTNAME)"
            )
        except ssl.SSLError as exc:
            return f"TLS handshake with {server} failed ({exc.reason or exc}); {mismatch}"
        except (SaslAuthenticationFailed, AuthenticationFailedError) as exc:
            return (
                f"{server} refused the login of {security.username!r} with {security.mechanism} "
                f"({_broker_words(exc)}); check FINTANK_KAFKA_SASL_USERNAME and the password"
            )
        except UnsupportedSaslMechanismError as exc:
            return f"{server}: {exc} (FINTANK_KAFKA_SASL_MECHANISM)"
        except IllegalSaslStateError:
            return f"{server} does not expect a SASL login there; {mismatch}"
        except (ConnectionResetError, asyncio.IncompleteReadError, KafkaConnectionError):
            # Accepted, then closed before the first answer: the listener expected TLS
            # (or did not) and gave up on what it got.
            return f"{server} closed the connection before answering; {mismatch}"
        except (KafkaError, OSError, TimeoutError, ValueError):
            continue  # refused, down or unreachable: the caller's message says so
        try:
            # What a client asks first after connecting; a SASL listener that got no
            # login (SSL on a SASL_SSL port) closes the connection here.
            await asyncio.wait_for(conn.send(MetadataRequest([])), timeout)
        except (KafkaError, OSError, TimeoutError):
            return f"{server} closed the connection after it was opened; {mismatch}"
        finally:
            conn.close()
    return None


async def unreachable(settings: KafkaSettings) -> str:
    """The one-line message for a client that could not connect: the refusal if TLS or
    SASL is the cause (`refusal`), else that nothing answered."""
    why = await refusal(settings)
    if why is not None:
        return f"kafka at {settings.bootstrap} refused the connection: {why}"
    return f"cannot reach kafka at {settings.bootstrap} (is it running? see `fintank status`)"


def _broker_words(exc: Exception) -> str:
    """The broker's reason for a refused login (aiokafka puts it in the first argument)."""
    words = " ".join(str(exc.args[0] if exc.args else exc).split())
    return words or type(exc).__name__


def create_errors(response: Any) -> dict[str, str]:
    """Topic -> why the cluster refused to create it, from a CreateTopics response.

    aiokafka's ``create_topics`` returns the response rather than raising; a topic
    that already exists counts as created (another worker or `fintank up` made it).
    """
    refused = {}
    for entry in response.topic_errors:
        topic, code = entry[0], entry[1]
        if code in (0, TopicAlreadyExistsError.errno):
            continue
        message = entry[2] if len(entry) > 2 and entry[2] else ""
        refused[topic] = for_code(code).__name__ + (f": {message}" if message else "")
    return refused
