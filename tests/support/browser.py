"""A tiny Chrome DevTools Protocol driver: headless Chromium for the live page's test.

Debian's ``chromium`` (installed by ``./bootstrap``) runs headless with a
throwaway profile; we talk to its one page over the DevTools websocket with
aiohttp (already there as a faust dependency)::

    async with Browser() as browser:
        await browser.navigate("http://127.0.0.1:6066/")
        await browser.wait_for("document.querySelectorAll('#fills tbody tr').length > 0")
        await browser.screenshot(Path("test-artifacts/page.png"))

Leaving the block kills the browser's process group and removes its profile.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import aiohttp

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--no-first-run",
    "--no-default-browser-check",
    "--remote-debugging-port=0",
    "--window-size=1280,900",
]


class BrowserError(RuntimeError):
    """Chromium is missing, did not start, or the page did not do what was awaited."""


class Browser:
    """One headless Chromium and its page, driven over the DevTools protocol."""

    def __init__(self, binary: str = "chromium", start_timeout: float = 30) -> None:
        self.binary = binary
        self.start_timeout = start_timeout
        self._profile: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._session: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._next_id = 0
        self._events: collections.deque[dict[str, Any]] = collections.deque(maxlen=1000)

    async def __aenter__(self) -> Browser:
        path = shutil.which(self.binary)
        if path is None:
            raise BrowserError(
                f"{self.binary} not found on PATH: run ./bootstrap (it installs Debian's chromium)"
            )
        self._profile = Path(tempfile.mkdtemp(prefix="fintank-chromium-"))
        log = (self._profile / "chromium.log").open("wb")
        self._proc = subprocess.Popen(
            [path, *FLAGS, f"--user-data-dir={self._profile}", "about:blank"],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: close() ends its helpers too
        )
        log.close()
        try:
            port = await self._devtools_port()
            self._session = aiohttp.ClientSession()
            self._ws = await self._session.ws_connect(await self._page_url(port), max_msg_size=0)
            await self.send("Page.enable")
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Kill the browser (its whole process group) and remove its profile folder."""
        if self._ws is not None:
            await self._ws.close()
        if self._session is not None:
            await self._session.close()
        if self._proc is not None:
            with contextlib.suppress(ProcessLookupError):  # the group may be gone already
                os.killpg(self._proc.pid, signal.SIGKILL)
            self._proc.wait(timeout=10)
        if self._profile is not None:
            shutil.rmtree(self._profile, ignore_errors=True)
        self._ws = self._session = self._proc = self._profile = None

    # ------------------------------------------------------------------ pages
    async def navigate(self, url: str, timeout: float = 30) -> None:
        """Open ``url`` in the page and wait for its load event."""
        self._events.clear()
        result = await self.send("Page.navigate", url=url)
        if result.get("errorText"):
            raise BrowserError(f"could not open {url}: {result['errorText']}")
        await self._wait_event("Page.loadEventFired", timeout)

    async def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (promises are awaited)."""
        result = await self.send(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            message = details.get("exception", {}).get("description") or details.get("text", "")
            first_line = str(message).splitlines()[0] if message else "?"
            raise BrowserError(f"JavaScript error in {expression!r}: {first_line}")
        return result["result"].get("value")

    async def wait_for(self, expression: str, timeout: float = 30, every: float = 0.25) -> Any:
        """Evaluate ``expression`` until it is truthy and return that value."""
        deadline = time.monotonic() + timeout
        while True:
            value = await self.evaluate(expression)
            if value:
                return value
            if time.monotonic() >= deadline:
                raise BrowserError(f"timed out after {timeout:g} s waiting for: {expression}")
            await asyncio.sleep(every)

    async def screenshot(self, path: Path, full_page: bool = True) -> Path:
        """Save a PNG of the page (the whole page, or only the window) to ``path``."""
        params: dict[str, Any] = {"format": "png"}
        if full_page:
            size = (await self.send("Page.getLayoutMetrics"))["cssContentSize"]
            clip = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
            params.update(captureBeyondViewport=True, clip=clip)
        shot = await self.send("Page.captureScreenshot", **params)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(shot["data"]))
        return path

    # --------------------------------------------------------------- protocol
    async def send(self, method: str, timeout: float = 30, **params: Any) -> dict[str, Any]:
        """Call a DevTools method and return its result; events that arrive meanwhile are kept."""
        self._next_id += 1
        call_id = self._next_id
        await self._socket().send_str(
            json.dumps({"id": call_id, "method": method, "params": params})
        )
        deadline = time.monotonic() + timeout
        while True:
            message = await self._receive(deadline, method)
            if message.get("id") == call_id:
                if "error" in message:
                    raise BrowserError(f"{method} failed: {message['error'].get('message')}")
                return dict(message.get("result", {}))
            if "method" in message:
                self._events.append(message)

    async def _wait_event(self, name: str, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            while self._events:
                event = self._events.popleft()
                if event["method"] == name:
                    return event
            message = await self._receive(deadline, name)
            if "method" in message:
                self._events.append(message)

    async def _receive(self, deadline: float, waiting_for: str) -> dict[str, Any]:
        try:
            msg = await self._socket().receive(timeout=max(0.0, deadline - time.monotonic()))
        except TimeoutError:
            raise BrowserError(f"{self.binary} did not answer {waiting_for} in time") from None
        if msg.type != aiohttp.WSMsgType.TEXT:
            raise BrowserError(f"the DevTools connection closed ({msg.type.name})")
        return dict(json.loads(msg.data))

    def _socket(self) -> aiohttp.ClientWebSocketResponse:
        if self._ws is None:
            raise BrowserError("the browser is not running (use `async with Browser()`)")
        return self._ws

    # ----------------------------------------------------------------- start-up
    async def _devtools_port(self) -> int:
        """The port Chromium chose, from the DevToolsActivePort file it writes when ready."""
        assert self._profile is not None and self._proc is not None
        port_file = self._profile / "DevToolsActivePort"
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise BrowserError(
                    f"{self.binary} exited with code {self._proc.returncode}: {self._last_log_line()}"
                )
            lines = port_file.read_text().splitlines() if port_file.exists() else []
            if len(lines) >= 2 and lines[0].isdigit():  # port, then the browser's ws path
                return int(lines[0])
            await asyncio.sleep(0.1)
        raise BrowserError(
            f"{self.binary} wrote no {port_file.name} within {self.start_timeout:g} s: "
            f"{self._last_log_line()}"
        )

    async def _page_url(self, port: int) -> str:
        """The websocket URL of the browser's page target (GET /json lists the targets)."""
        assert self._session is not None
        deadline = time.monotonic() + self.start_timeout
        while True:
            async with self._session.get(f"http://127.0.0.1:{port}/json") as resp:
                targets = await resp.json(content_type=None)
            for target in targets:
                if target.get("type") == "page" and "webSocketDebuggerUrl" in target:
                    return str(target["webSocketDebuggerUrl"])
            if time.monotonic() >= deadline:
                raise BrowserError(f"{self.binary} on port {port} lists no page target")
            await asyncio.sleep(0.1)

    def _last_log_line(self) -> str:
        assert self._profile is not None
        log = self._profile / "chromium.log"
        lines = log.read_text(errors="replace").strip().splitlines() if log.exists() else []
        return lines[-1] if lines else "(no output)"
