"""InfluxDB credentials: read once, required where needed, never shown; status codes sorted.

The secrets here are distinctive strings, so a test can look for them in
every text a user could see: a repr, `fintank config`, a `ConfigError`, a
transport's error for every status code a server can answer with (even
when the server echoes the secret back).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from fintank import cli
from fintank.config import Settings
from fintank.errors import ConfigError, SinkError
from fintank.runtime import make_transport
from fintank.sinks.lines import measurement_of
from fintank.sinks.transports import (
    InfluxV1Transport,
    InfluxV2Transport,
    RefusedWriteError,
    RejectedPointsError,
    TransientWriteError,
    named_lines,
)

PASSWORD = "pw-Zq81-do-not-show"
TOKEN = "tok-Kx42-do-not-show"
SECRETS = (PASSWORD, TOKEN)
V1 = {"FINTANK_INFLUX_USERNAME": "writer", "FINTANK_INFLUX_PASSWORD": PASSWORD}
V2 = {"FINTANK_INFLUX_TRANSPORT": "v2", "FINTANK_INFLUX_TOKEN": TOKEN}


def assert_no_secret(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text


# ------------------------------------------------------------------ settings
def test_settings_carry_the_secrets_but_their_repr_and_str_do_not() -> None:
    v1 = Settings.from_env(V1)
    v2 = Settings.from_env(V2)

    assert (v1.influx_username, v1.influx_password, v2.influx_token) == ("writer", PASSWORD, TOKEN)
    for settings in (v1, v2):
        assert_no_secret(repr(settings))
        assert_no_secret(str(settings))
    assert "writer" in repr(v1)  # the user name is not a secret


def test_there_is_no_default_token() -> None:
    assert Settings().influx_token == ""
    assert Settings.from_env({}).influx_token == ""


def test_the_v2_transport_without_a_token_is_one_line_naming_the_variables() -> None:
    with pytest.raises(ConfigError) as err:
        Settings.from_env({"FINTANK_INFLUX_TRANSPORT": "v2"})

    message = str(err.value)
    assert "FINTANK_INFLUX_TOKEN" in message and "FINTANK_INFLUX_TOKEN_FILE" in message
    assert "\n" not in message
    with pytest.raises(ConfigError, match="FINTANK_INFLUX_TOKEN"):  # Settings() skips validate
        make_transport(Settings(influx_transport="v2"))


def test_the_token_is_read_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text(TOKEN + "\n")

    settings = Settings.from_env(
        {"FINTANK_INFLUX_TRANSPORT": "v2", "FINTANK_INFLUX_TOKEN_FILE": str(path)}
    )

    assert settings.influx_token == TOKEN
    assert_no_secret(repr(settings))


@pytest.mark.parametrize(
    ("content", "extra", "message"),
    [
        (None, {}, "FINTANK_INFLUX_TOKEN_FILE '{path}' cannot be read: No such file or directory"),
        ("\n", {}, "FINTANK_INFLUX_TOKEN_FILE '{path}' is empty"),
        (
            TOKEN,
            {"FINTANK_INFLUX_TOKEN": TOKEN},
            "FINTANK_INFLUX_TOKEN and FINTANK_INFLUX_TOKEN_FILE are both set",
        ),
    ],
)
def test_a_bad_token_file_is_one_line_without_the_token(
    tmp_path: Path, content: str | None, extra: dict[str, str], message: str
) -> None:
    path = tmp_path / "token"
    if content is not None:
        path.write_text(content)
    env = {"FINTANK_INFLUX_TRANSPORT": "v2", "FINTANK_INFLUX_TOKEN_FILE": str(path), **extra}

    with pytest.raises(ConfigError) as err:
        Settings.from_env(env)

    assert message.format(path=path) in str(err.value)
    assert "\n" not in str(err.value)
    assert_no_secret(str(err.value))


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"FINTANK_INFLUX_PASSWORD": PASSWORD},
            "FINTANK_INFLUX_PASSWORD is set but FINTANK_INFLUX_USERNAME is empty",
        ),
        ({"FINTANK_INFLUX_DATABASE": " "}, "FINTANK_INFLUX_DATABASE must not be empty"),
        ({"FINTANK_MAX_QUEUED": "0"}, "FINTANK_MAX_QUEUED must be >= 1"),
    ],
)
def test_credentials_that_make_no_sense_are_one_line(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        Settings.from_env(env)

    assert message in str(err.value)
    assert_no_secret(str(err.value))


def test_fintank_config_never_prints_a_secret() -> None:
    result = CliRunner().invoke(cli.main, ["config"], env={**V1, **V2})

    assert result.exit_code == 0
    assert "FINTANK_INFLUX_TOKEN_FILE" in result.output
    assert_no_secret(result.output)


def test_transports_built_from_settings_hold_the_credentials_but_do_not_show_them() -> None:
    v1 = make_transport(Settings.from_env(V1))
    v2 = make_transport(Settings.from_env(V2))

    assert isinstance(v1, InfluxV1Transport) and isinstance(v2, InfluxV2Transport)
    assert v1.username == "writer"
    assert "writer" in repr(v1)
    assert_no_secret(repr(v1) + repr(v2) + str(vars(v1).get("params")))


# ------------------------------------------------------------------ what each answer means
def v1() -> InfluxV1Transport:
    return InfluxV1Transport(
        "http://influx.test:8086/", "ticks_db", username="writer", password=PASSWORD
    )


def v2() -> InfluxV2Transport:
    return InfluxV2Transport("http://vm.test:8428", TOKEN, "acme", "ticks_bucket")


def echo(error: str) -> str:
    """A JSON error body that (badly) echoes the password back."""
    return json.dumps({"error": f"{error} (you sent {PASSWORD})"})


@pytest.mark.parametrize(
    ("status", "error", "kind", "says"),
    [
        (
            401,
            "authorization failed",
            RefusedWriteError,
            [
                'authentication failed writing to database "ticks_db" at http://influx.test:8086',
                'user "writer"',
                "FINTANK_INFLUX_USERNAME",
                "FINTANK_INFLUX_PASSWORD",
            ],
        ),
        (
            403,
            '"writer" user is not authorized to write to database "ticks_db"',
            RefusedWriteError,
            [
                'user "writer" may not write to database "ticks_db" at http://influx.test:8086',
                "grant it WRITE",
            ],
        ),
        (
            404,
            'database not found: "ticks_db"',
            RefusedWriteError,
            [
                'database "ticks_db" not found at http://influx.test:8086',
                'CREATE DATABASE "ticks_db"',
                "FINTANK_INFLUX_DATABASE",
            ],
        ),
        (405, "method not allowed", RefusedWriteError, ["HTTP 405", "FINTANK_INFLUX_URL"]),
        (
            400,
            "partial write: field type conflict dropped=1",
            RejectedPointsError,
            ["field type conflict"],
        ),
        (413, "request entity too large", RejectedPointsError, ["too large"]),
        (500, "engine: timeout", TransientWriteError, ["HTTP 500"]),
        (503, "busy", TransientWriteError, ["HTTP 503"]),
        (429, "slow down", TransientWriteError, ["HTTP 429"]),
    ],
)
def test_v1_answers_are_sorted_and_explained_without_secrets(
    status: int, error: str, kind: type[SinkError], says: list[str]
) -> None:
    exc = v1().failure(status, echo(error), ["m f=1 1"])

    assert type(exc) is kind
    for words in says:
        assert words in str(exc)
    assert_no_secret(str(exc))
    if status != 404:  # (a 404's message is fintank's own words, without the server's)
        assert "***" in str(exc)  # the echoed secret was redacted, the rest kept
    if isinstance(exc, RejectedPointsError):
        assert_no_secret(exc.reason)


def test_v1_without_credentials_says_so_on_a_401() -> None:
    exc = InfluxV1Transport("http://influx.test:8086", "db").failure(401, '{"error":"x"}', [])

    assert "no credentials (FINTANK_INFLUX_USERNAME is empty)" in str(exc)


@pytest.mark.parametrize(
    ("status", "kind", "says"),
    [
        (
            401,
            RefusedWriteError,
            [
                "the API token was refused",
                'bucket "ticks_bucket" of org "acme" at http://vm.test:8428',
                "FINTANK_INFLUX_TOKEN",
            ],
        ),
        (403, RefusedWriteError, ["may not write to bucket", "FINTANK_INFLUX_TOKEN"]),
        (
            404,
            RefusedWriteError,
            ['bucket "ticks_bucket" or org "acme" not found', "FINTANK_INFLUX_BUCKET"],
        ),
        (422, RejectedPointsError, ["HTTP 422"]),
        (None, TransientWriteError, ["HTTP None"]),
    ],
)
def test_v2_answers_are_sorted_and_explained_without_the_token(
    status: int | None, kind: type[SinkError], says: list[str]
) -> None:
    exc = v2().failure(status, json.dumps({"message": f"nope, {TOKEN}"}), ["m f=1 1"])

    assert type(exc) is kind
    for words in says:
        assert words in str(exc)
    assert_no_secret(str(exc))


def test_lines_influxdb_names_as_unparsable_are_found_with_their_reasons() -> None:
    # InfluxDB 1.6's answer to a batch with two bad lines among good ones (copied from a real server).
    lines = [
        "bid_ask,symbol=C bid=1 1700000000000000000",
        "bad line here",
        "bid_ask,symbol=D bid= 1700000000000000000",
        "bid_ask,symbol=E bid=1 1700000000000000000",
    ]
    message = (
        "partial write: unable to parse 'bad line here': invalid field format\n"
        "unable to parse 'bid_ask,symbol=D bid= 1700000000000000000': missing field value dropped=0"
    )

    assert named_lines(message, lines) == {
        "bad line here": "unable to parse: invalid field format",
        "bid_ask,symbol=D bid= 1700000000000000000": "unable to parse: missing field value",
    }
    conflict = 'partial write: field type conflict: input field "bid" on measurement "bid_ask" is type float, already exists as type string dropped=1'
    assert named_lines(conflict, lines) == {}  # not named: the persister bisects
    assert named_lines("unable to parse 'not in the batch': x", lines) == {}


def test_a_rejection_names_the_lines_of_its_batch() -> None:
    lines = ["good f=1 1", "bad"]

    exc = v1().failure(
        400,
        '{"error":"partial write: unable to parse \'bad\': invalid field format dropped=0"}',
        lines,
    )

    assert isinstance(exc, RejectedPointsError)
    assert exc.named == {"bad": "unable to parse: invalid field format"}


@pytest.mark.parametrize(
    ("line", "measurement"),
    [
        ("bid_ask,symbol=VTI bid=1 1", "bid_ask"),
        ("cpu f=1", "cpu"),
        ("my\\ meas\\,ure,t=1 f=1", "my meas,ure"),
        ("nofields", "nofields"),
        ("", ""),
    ],
)
def test_the_measurement_of_a_line(line: str, measurement: str) -> None:
    assert measurement_of(line) == measurement
