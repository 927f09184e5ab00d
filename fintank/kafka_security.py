"""Kafka TLS and SASL settings (``FINTANK_KAFKA_*``): read and checked at the process edge.

`fintank.config.Settings` holds them; `from_env` normalises them (and reads the
password file) and `check` refuses combinations that make no sense, with one line
naming the variable and never the password. `fintank.engine.kafka` builds them
into every client.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from fintank.config import PREFIX
from fintank.errors import ConfigError

if TYPE_CHECKING:
    from fintank.config import Settings

SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


def from_env(env: Mapping[str, str], values: Mapping[str, Any]) -> dict[str, Any]:
    """The Kafka security values as the clients want them: protocol and mechanism upper-case,
    the password read from ``FINTANK_KAFKA_SASL_PASSWORD_FILE`` if that is given."""
    out: dict[str, Any] = {}
    for name in ("kafka_security_protocol", "kafka_sasl_mechanism"):
        if name in values:
            out[name] = values[name].strip().upper()
    var, file_var = f"{PREFIX}KAFKA_SASL_PASSWORD", f"{PREFIX}KAFKA_SASL_PASSWORD_FILE"
    path = env.get(file_var, "")
    if not path:
        return out
    if env.get(var):
        raise ConfigError(f"{var} and {file_var} are both set: give one of them")
    try:
        with open(path, encoding="utf-8") as f:
            password = f.read().rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ConfigError(f"{file_var} {path!r} cannot be read: {why}") from None
    if not password:
        raise ConfigError(f"{file_var} {path!r} is empty")
    out["kafka_sasl_password"] = password
    return out


def check(s: Settings) -> None:
    """TLS and SASL settings that make sense together; `ConfigError` naming the variable.

    Never puts the password in a message. A setting the protocol would ignore is an
    error, not a silent plaintext connection.
    """
    protocol_var = f"{PREFIX}KAFKA_SECURITY_PROTOCOL"
    protocol = s.kafka_security_protocol
    if protocol not in SECURITY_PROTOCOLS:
        raise ConfigError(
            f"{protocol_var} must be one of {', '.join(SECURITY_PROTOCOLS)}, got {protocol!r}"
        )
    sasl = {
        f"{PREFIX}KAFKA_SASL_MECHANISM": s.kafka_sasl_mechanism,
        f"{PREFIX}KAFKA_SASL_USERNAME": s.kafka_sasl_username,
        f"{PREFIX}KAFKA_SASL_PASSWORD": s.kafka_sasl_password,
    }
    tls = {
        f"{PREFIX}KAFKA_SSL_CAFILE": s.kafka_ssl_cafile,
        f"{PREFIX}KAFKA_SSL_CERTFILE": s.kafka_ssl_certfile,
        f"{PREFIX}KAFKA_SSL_KEYFILE": s.kafka_ssl_keyfile,
    }
    if protocol.startswith("SASL_"):
        mechanism = s.kafka_sasl_mechanism
        if mechanism not in SASL_MECHANISMS:
            raise ConfigError(
                f"{PREFIX}KAFKA_SASL_MECHANISM must be one of {', '.join(SASL_MECHANISMS)} "
                f"with {protocol_var}={protocol}, got {mechanism!r}"
            )
        if not s.kafka_sasl_username:
            raise ConfigError(
                f"{PREFIX}KAFKA_SASL_USERNAME must be set with {protocol_var}={protocol}"
            )
        if not s.kafka_sasl_password:
            raise ConfigError(
                f"{PREFIX}KAFKA_SASL_PASSWORD (or {PREFIX}KAFKA_SASL_PASSWORD_FILE) must be set "
                f"with {protocol_var}={protocol}"
            )
    else:
        for var, value in sasl.items():
            if value:
                raise ConfigError(
                    f"{var} is set but {protocol_var} is {protocol} "
                    "(SASL needs SASL_SSL or SASL_PLAINTEXT)"
                )
    if protocol not in ("SSL", "SASL_SSL"):
        for var, value in tls.items():
            if value:
                raise ConfigError(
                    f"{var} is set but {protocol_var} is {protocol} (TLS needs SSL or SASL_SSL)"
                )
        return
    if s.kafka_ssl_keyfile and not s.kafka_ssl_certfile:
        raise ConfigError(
            f"{PREFIX}KAFKA_SSL_KEYFILE needs {PREFIX}KAFKA_SSL_CERTFILE (the client certificate)"
        )
    _check_tls_files(s)


def _check_tls_files(s: Settings) -> None:
    """Load the TLS files once now, so a wrong one is a one-line error naming it, not a
    failure at the first connection."""
    import ssl

    cafile_var = f"{PREFIX}KAFKA_SSL_CAFILE"
    try:
        context = ssl.create_default_context(cafile=s.kafka_ssl_cafile or None)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            f"{cafile_var} {s.kafka_ssl_cafile!r} is not a readable PEM CA certificate: "
            f"{getattr(exc, 'strerror', None) or exc}"
        ) from None
    if s.kafka_ssl_certfile:
        try:
            context.load_cert_chain(s.kafka_ssl_certfile, s.kafka_ssl_keyfile or None)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(
                f"{PREFIX}KAFKA_SSL_CERTFILE {s.kafka_ssl_certfile!r} and {PREFIX}KAFKA_SSL_KEYFILE "
                f"{s.kafka_ssl_keyfile!r} are not a PEM certificate with its unencrypted key: "
                f"{getattr(exc, 'strerror', None) or exc}"
            ) from None
