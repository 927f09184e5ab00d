"""Start and stop a real fintank worker for the benchmark, on its own topics, port and state dir.

Used by the ``fintank-v1``/``fintank-v2`` throughput variants (`bench.variants`)
and by the latency part (`bench.latency`). The worker is the real one:
``faust -A topologies.fintank worker``, configured only through ``FINTANK_*``
variables, as a user would run it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = REPO / ".venv" / "bin"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def health(url: str) -> dict[str, Any] | None:
    """The worker's GET /health document, or None if it does not answer (yet)."""
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return dict(json.loads(resp.read()))
    except (OSError, ValueError):
        return None


def written(doc: dict[str, Any]) -> tuple[int, int]:
    """(written, buffered) of the tick persister, from the worker's /health document."""
    p = doc.get("persister") or {}
    return int(p.get("written", 0)), int(p.get("buffered", 0))


def tail(path: Path, n: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


def stop(proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    """SIGTERM (a clean shutdown flushes the persister and commits), SIGKILL after ``timeout``."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@dataclass(frozen=True)
class WorkerSpec:
    """One benchmark worker: its app id (consumer group, topic prefix), port, state dir, sink."""

    app_id: str
    bootstrap: str
    state: Path
    port: int
    transport: str = "v1"  # v1: InfluxDB 1.x /write; v2: VictoriaMetrics
    database: str = "bench"  # InfluxDB database (v1) / bucket (v2)
    ticks_topic: str = ""  # default: f"{app_id}-ticks"
    app: str = "topologies.fintank"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_file(self) -> Path:
        return self.state / "worker.log"

    def env(self) -> dict[str, str]:
        """The worker's environment: every topic named ``{app_id}-{name}`` (ticks may be given)."""
        from fintank.config import Topics

        env = dict(os.environ)  # the user's FINTANK_* (e.g. FINTANK_INFLUX_URL) still apply
        pythonpath = [str(REPO), os.environ.get("PYTHONPATH", "")]
        env.update(
            {
                "PYTHONPATH": os.pathsep.join(p for p in pythonpath if p),
                "FINTANK_BROKER": f"kafka://{self.bootstrap}",
                "FINTANK_APP_ID": self.app_id,
                "FINTANK_INFLUX_TRANSPORT": self.transport,
                "FINTANK_INFLUX_DATABASE": self.database,
                "FINTANK_INFLUX_BUCKET": self.database,
                "FINTANK_WEB_PORT": str(self.port),
                "FINTANK_STATE_DIR": str(self.state),
            }
        )
        if self.transport == "v2" and not env.get("FINTANK_INFLUX_TOKEN_FILE"):
            # The local VictoriaMetrics takes any token; fintank has no default one.
            env.setdefault("FINTANK_INFLUX_TOKEN", "fintank-bench")
        for f in fields(Topics):
            env[f"FINTANK_TOPIC_{f.name.upper()}"] = f"{self.app_id}-{f.name}"
        if self.ticks_topic:
            env["FINTANK_TOPIC_TICKS"] = self.ticks_topic
        return env

    def settings(self) -> Any:
        from fintank.config import Settings

        return Settings.from_env(self.env())

    def prepare(self) -> None:
        """Create the worker's topics (fintank.stack.topics.ensure_topics) and its database."""
        from fintank.stack import Stack
        from fintank.stack.topics import ensure_topics

        settings = self.settings()
        asyncio.run(ensure_topics(settings, log=lambda _msg: None))
        Stack(settings).create_database()

    def argv(self, loglevel: str = "warn") -> list[str]:
        return [
            str(VENV_BIN / "faust"),
            *("-A", self.app, "worker", "-l", loglevel),
            *("--web-port", str(self.port), "--web-host", "127.0.0.1"),
        ]

    def start(self, argv: list[str] | None = None) -> subprocess.Popen[bytes]:
        """Start the worker (``argv`` defaults to `argv()`), its output going to `log_file`."""
        self.state.mkdir(parents=True, exist_ok=True)
        with open(self.log_file, "wb") as log:
            return subprocess.Popen(
                argv or self.argv(), cwd=REPO, env=self.env(), stdout=log, stderr=subprocess.STDOUT
            )

    def wait_ready(self, proc: subprocess.Popen[bytes], timeout: float = 120) -> dict[str, Any]:
        """Poll /health until the worker is assigned and recovered; its /health document."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise SystemExit(f"worker exited with {proc.returncode}:\n{tail(self.log_file)}")
            doc = health(self.url + "/health")
            if doc is not None and doc.get("ready"):
                return doc
            time.sleep(0.05)
        raise SystemExit(f"worker not ready in {timeout}s:\n{tail(self.log_file)}")


def worker_pid(parent: int, timeout: float = 10) -> int:
    """The pid of ``parent``'s child (the python under py-spy)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, ValueError):
            kids = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
            if kids:
                return int(kids[0])
        time.sleep(0.05)
    return parent


def log_problems(path: Path, limit: int = 8) -> tuple[int, int, list[str]]:
    """(warnings, errors, a few distinct problem lines) in a worker log."""
    warnings = errors = 0
    seen: dict[str, None] = {}
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return 0, 0, []
    for line in text.splitlines():
        if line.startswith(("|", "+")):
            continue  # faust's start-up banner (it says "log ... (warn)")
        upper = line.upper()
        if "ERROR" in upper or "CRITICAL" in upper or line.startswith("Traceback"):
            errors += 1
        elif "WARN" in upper:
            warnings += 1
        else:
            continue
        if len(seen) < limit:
            seen.setdefault(line.strip()[:240], None)
    return warnings, errors, list(seen)
