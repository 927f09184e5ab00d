"""InfluxDB credentials (``FINTANK_INFLUX_USERNAME``/``_PASSWORD``, ``_TOKEN``/``_TOKEN_FILE``).

`fintank.config.Settings` holds them (the password and the token out of its
repr); `from_env` reads the token file at the process edge, and `check`
refuses combinations that make no sense, with one line naming the variable
and never a secret. `fintank.runtime.make_transport` hands them to the
transport, which sends them as headers only (`fintank.sinks.transports`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from fintank.config import PREFIX
from fintank.errors import ConfigError

if TYPE_CHECKING:
    from fintank.config import Settings


def from_env(env: Mapping[str, str]) -> dict[str, Any]:
    """``influx_token`` read from ``FINTANK_INFLUX_TOKEN_FILE``, if that is given (its first
    line, stripped; the file's content never appears in a message)."""
    var, file_var = f"{PREFIX}INFLUX_TOKEN", f"{PREFIX}INFLUX_TOKEN_FILE"
    path = env.get(file_var, "")
    if not path:
        return {}
    if env.get(var):
        raise ConfigError(f"{var} and {file_var} are both set: give one of them")
    try:
        with open(path, encoding="utf-8") as f:
            token = f.readline().strip()
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ConfigError(f"{file_var} {path!r} cannot be read: {why}") from None
    if not token:
        raise ConfigError(f"{file_var} {path!r} is empty")
    return {"influx_token": token}


def check(s: Settings) -> None:
    """Credentials that make sense with the transport: v2 needs a token (fintank has no
    default one); a password needs a user; v1 needs a database."""
    if s.influx_transport == "v2" and not s.influx_token:
        raise ConfigError(
            f"{PREFIX}INFLUX_TRANSPORT=v2 needs an API token: set {PREFIX}INFLUX_TOKEN or "
            f"{PREFIX}INFLUX_TOKEN_FILE (fintank has no default token)"
        )
    if s.influx_password and not s.influx_username:
        raise ConfigError(f"{PREFIX}INFLUX_PASSWORD is set but {PREFIX}INFLUX_USERNAME is empty")
    if s.influx_transport == "v1" and not s.influx_database.strip():
        raise ConfigError(f"{PREFIX}INFLUX_DATABASE must not be empty")
