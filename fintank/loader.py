"""Find what ``MODULE[:ATTR]`` names: a `Topology` or a faust App (``fintank worker`` runs either).

The module is looked up as faust looks it up: installed packages first, then
the current directory (or ``path``). Without ``:ATTR`` the module's
``topology`` is taken, else its ``app``.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
from typing import Any

from fintank.errors import FintankError
from fintank.topology import Topology

#: MODULE or MODULE:ATTR: a dotted module path and a Python identifier.
SPEC = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*(?::[A-Za-z_]\w*)?")
DEFAULT_ATTRS = ("topology", "app")


class LoadError(FintankError):
    """``MODULE[:ATTR]`` names nothing fintank can run; the message says why, in one line."""


def find(spec: str, path: str | None = None) -> tuple[str, Any]:
    """``(MODULE:ATTR, the object)`` for ``spec``, once the module imports and ATTR is a
    `Topology` or a faust App; `LoadError` otherwise."""
    if not SPEC.fullmatch(spec):
        raise LoadError(
            f"MODULE:TOPOLOGY must look like package.module or package.module:topology, "
            f"got {spec!r}"
        )
    module_name, _, attr = spec.partition(":")
    where = path or os.getcwd()
    added = where not in sys.path
    if added:
        sys.path.append(where)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            raise LoadError(
                f"no module named {module_name!r} (from {spec!r}; looked in the installed "
                f"packages and in {where})"
            ) from None
        raise LoadError(f"importing {module_name!r} failed: {exc}") from None
    except Exception as exc:  # the module's own code failed: report it in one line
        raise LoadError(f"importing {module_name!r} failed: {type(exc).__name__}: {exc}") from None
    finally:
        if added:
            sys.path.remove(where)
    attrs = (attr,) if attr else DEFAULT_ATTRS
    found = [a for a in attrs if hasattr(module, a)]
    if not found:
        wanted = " or ".join(repr(a) for a in attrs)
        raise LoadError(
            f"module {module_name!r} has no attribute {wanted} (a Topology or faust App)"
        )
    obj = getattr(module, found[0])
    import faust

    if not isinstance(obj, Topology | faust.App):
        raise LoadError(
            f"{module_name}:{found[0]} is a {type(obj).__name__}, not a Topology or a faust App"
        )
    return f"{module_name}:{found[0]}", obj
