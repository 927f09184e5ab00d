"""The worker's web bind address and the URL other workers reach it at are settings."""

from __future__ import annotations

import socket

import pytest

from fintank.config import Settings
from fintank.errors import ConfigError
from fintank.runtime import advertised_host, make_app


def test_by_default_the_worker_listens_and_is_reached_on_loopback() -> None:
    s = Settings.from_env({})
    assert (s.web_bind, advertised_host(s)) == ("127.0.0.1", "127.0.0.1")


def test_an_explicit_host_is_what_other_workers_are_told() -> None:
    s = Settings.from_env({"FINTANK_WEB_BIND": "0.0.0.0", "FINTANK_WEB_HOST": "10.0.0.7"})
    assert advertised_host(s) == "10.0.0.7"
    app = make_app(
        Settings.from_env(
            {"FINTANK_WEB_BIND": "0.0.0.0", "FINTANK_WEB_HOST": "10.0.0.7", "FINTANK_APP_ID": "a"}
        )
    )
    assert str(app.conf.canonical_url) == "http://10.0.0.7:6066"
    assert app.conf.web_bind == "0.0.0.0"


def test_binding_every_interface_advertises_this_hosts_address() -> None:
    s = Settings.from_env({"FINTANK_WEB_BIND": "0.0.0.0"})
    assert advertised_host(s) == socket.gethostbyname(socket.gethostname())


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"FINTANK_WEB_BIND": ""}, "FINTANK_WEB_BIND"),
        ({"FINTANK_WEB_BIND": "a b"}, "FINTANK_WEB_BIND"),
        ({"FINTANK_WEB_HOST": "http://x"}, "FINTANK_WEB_HOST"),
    ],
)
def test_a_bad_address_is_one_line_naming_the_variable(env: dict[str, str], variable: str) -> None:
    with pytest.raises(ConfigError) as error:
        Settings.from_env(env)
    assert variable in str(error.value) and "\n" not in str(error.value)
