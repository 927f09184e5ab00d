"""HTTP errors as JSON, and faust's own web views off unless asked for.

Every answer of the worker's web server that is an error is a JSON object
``{"error": "..."}`` (docs/wire-format.md, HTTP): a route's own 400/404/503,
aiohttp's 404 for an unknown path and 405 for a wrong method, and a handler
that raised, which is a 500 whose traceback goes to the worker's log and never
to the client.

faust serves views of its own on the same server: ``/router`` (the cluster's
workers and their table keys), ``/table`` (the data of faust tables),
``/graph`` and the sensor statistics. fintank uses none of them and they show
internals, so they are off unless ``FINTANK_FAUST_WEB_VIEWS`` is set.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from fintank.codec import dumps

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def json_error(status: int, message: str) -> web.Response:
    """``{"error": message}`` with ``status``."""
    return web.Response(
        body=dumps({"error": message}), status=status, content_type="application/json"
    )


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """aiohttp middleware: HTTP errors and unhandled exceptions -> JSON, tracebacks -> the log."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise  # redirects and the like are answers, not errors
        response = json_error(exc.status, f"{exc.reason}: {request.method} {request.path}")
        allow = exc.headers.get("Allow")
        if allow is not None:
            response.headers["Allow"] = allow
        return response
    except Exception:  # noqa: BLE001 - any failure of a handler is a 500, never a traceback
        log.exception("GET %s failed", request.path_qs)
        return json_error(500, "internal error (the worker's log has the details)")


def faust_web_settings(views: bool) -> dict[str, Any]:
    """The faust app settings that switch its own web views on (``views``) or off,
    and send every error through `json_errors`."""
    return {
        "web_application_options": {"middlewares": [json_errors]},
        "web_router_enabled": views,
        "web_tables_enabled": views,
        "web_graph_enabled": views,
        "web_stats_enabled": views,
        "web_metrics_enabled": views,
    }
