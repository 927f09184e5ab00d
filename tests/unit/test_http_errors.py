"""The worker's web server: every error is a JSON object, faust's own views are off by default.

A topology is built into its faust app exactly as a worker builds it
(`fintank.runtime.build`), and its aiohttp application is served on loopback
by aiohttp's test server (no broker needed: no route here touches Kafka).
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from fintank.bolt import Batch, Bolt, Out
from fintank.config import Settings
from fintank.runtime import build
from fintank.topology import Request, Response, Topology

FAUST_VIEWS = ["/router/", "/router/topics", "/table/", "/graph/", "/stats/", "/assignment/"]


class Idle(Bolt):
    inputs = ("words",)

    def process(self, batch: Batch, now: float) -> Out:
        return Out()


def boom(request: Request) -> Response:
    raise RuntimeError("the secret detail of a bug")


def topology() -> Topology:
    t = Topology("webcheck")
    t.stream("words")
    t.bolt(Idle)
    t.route("/boom", boom)
    t.route("/teapot", lambda request: Response(418, {"error": "I'm a teapot"}))
    return t


def get_all(
    tmp_path: Path, paths: list[str], method: str = "GET", **env: str
) -> list[tuple[int, str, Any]]:
    """(status, content type, body) of each path, from a freshly built worker's web app."""
    settings = Settings.from_env({"FINTANK_STATE_DIR": str(tmp_path), **env})
    web = build(topology(), settings).app.web
    web.init_server()  # what the worker does when its web server starts

    async def run() -> list[tuple[int, str, Any]]:
        async with TestClient(TestServer(web.web_app)) as client:  # type: ignore[attr-defined]
            out = []
            for path in paths:
                async with client.request(method, path) as reply:
                    raw = await reply.read()
                    out.append((reply.status, reply.content_type, raw))
            return out

    return asyncio.run(asyncio.wait_for(run(), 30))


def test_a_route_handler_that_raises_gives_a_json_500_and_logs_the_traceback(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR):
        [(status, kind, raw)] = get_all(tmp_path, ["/boom"])

    assert (status, kind) == (500, "application/json")
    assert orjson.loads(raw) == {"error": "internal error (the worker's log has the details)"}
    assert b"Traceback" not in raw and b"secret" not in raw
    logged = [r for r in caplog.records if r.name == "fintank.web.errors"]
    assert logged and logged[0].exc_info is not None  # the traceback stays on the server
    assert "the secret detail of a bug" in caplog.text


def test_unknown_paths_and_methods_are_json_errors(tmp_path: Path) -> None:
    [missing, teapot] = get_all(tmp_path, ["/no/such/route", "/teapot"])
    [wrong_method] = get_all(tmp_path, ["/boom"], method="POST")

    assert missing == (404, "application/json", b'{"error":"Not Found: GET /no/such/route"}')
    assert teapot == (418, "application/json", b'{"error":"I\'m a teapot"}')
    assert wrong_method[:2] == (405, "application/json")
    assert orjson.loads(wrong_method[2]) == {"error": "Method Not Allowed: POST /boom"}


def test_fausts_own_web_views_are_off_by_default(tmp_path: Path) -> None:
    answers = get_all(tmp_path, FAUST_VIEWS)

    for path, (status, kind, raw) in zip(FAUST_VIEWS, answers, strict=True):
        assert (status, kind) == (404, "application/json"), path
        assert orjson.loads(raw) == {"error": f"Not Found: GET {path}"}


def test_fausts_own_web_views_are_served_when_configured(tmp_path: Path) -> None:
    [router, tables] = get_all(tmp_path, ["/router/", "/table/"], FINTANK_FAUST_WEB_VIEWS="1")

    assert router[0] == 200 and tables[0] == 200
