"""The worker of the `Topology` that ``FINTANK_TOPOLOGY`` names (``MODULE:ATTR``).

``fintank worker MODULE:TOPOLOGY`` runs ``python -m faust -A fintank.hosted:app worker``
with ``FINTANK_TOPOLOGY`` set, and ``FINTANK_TOPOLOGY_PATH``: the directory the command
ran in, where a module that is not installed is looked for. ``app`` is built when faust
first asks for it, so importing this module alone does nothing.
"""

from __future__ import annotations

import os
from typing import Any

from fintank.config import Settings
from fintank.errors import FintankError
from fintank.loader import find
from fintank.runtime import build
from fintank.topology import Topology


def hosted_app(env: dict[str, str]) -> Any:
    """The faust app of the topology ``env["FINTANK_TOPOLOGY"]`` names."""
    spec = env.get("FINTANK_TOPOLOGY")
    if not spec:
        raise FintankError("FINTANK_TOPOLOGY is not set (run `fintank worker MODULE:TOPOLOGY`)")
    name, topology = find(spec, env.get("FINTANK_TOPOLOGY_PATH") or None)
    if not isinstance(topology, Topology):
        raise FintankError(f"{name} is not a Topology")
    return build(topology, Settings.from_env(env)).app


def __getattr__(name: str) -> Any:
    if name != "app":
        raise AttributeError(name)
    app = hosted_app(dict(os.environ))
    globals()["app"] = app
    return app
