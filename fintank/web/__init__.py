"""The worker's live page: one self-contained HTML file (``live.html``) served at ``GET /``.

The page polls the worker's JSON routes (``/instruments``, ``/candles/{symbol}``,
``/recent``) and draws them; it has no external references and no build step.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files


@cache
def live_page() -> bytes:
    """The bytes of ``live.html``, read from the package once."""
    return files(__name__).joinpath("live.html").read_bytes()
