"""Run the Faust worker of `topologies.fintank` as a background process (demo, tests)."""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path

from fintank.config import Settings
from fintank.stack import procs
from fintank.stack.stack import REPO


class Worker:
    """One worker process: ``faust -A topologies.fintank worker``, its pid file, log and URL."""

    def __init__(self, settings: Settings, name: str = "worker", repo: Path = REPO) -> None:
        self.settings = settings
        self.repo = repo
        state = Path(settings.state_dir)
        home = (state if state.is_absolute() else repo / state) / name
        self.home = home
        self.pid_file = home / "worker.pid"
        self.log_file = home / "worker.log"
        self.url = f"http://127.0.0.1:{settings.web_port}"

    def argv(self) -> list[str]:
        faust = Path(sys.executable).with_name("faust")
        return [
            str(faust),
            "-A",
            "topologies.fintank",
            "worker",
            "-l",
            "info",
            "--web-port",
            str(self.settings.web_port),
            "--web-host",
            "127.0.0.1",
        ]

    def pid(self) -> int | None:
        return procs.read_pid(self.pid_file)

    def health(self) -> dict[str, object] | None:
        """The worker's /health document, or None if it does not answer."""
        try:
            with urllib.request.urlopen(self.url + "/health", timeout=2) as resp:
                return dict(json.loads(resp.read()))
        except (urllib.error.URLError, OSError, ValueError):
            return None

    def is_up(self) -> bool:
        health = self.health()
        return bool(health and health.get("ready"))

    def start(self, timeout: float = 90, env: dict[str, str] | None = None) -> None:
        """Start the worker unless it runs; wait until it has partitions and is processing."""
        self.home.mkdir(parents=True, exist_ok=True)
        if self.pid() is None:
            run_env = dict(os.environ if env is None else env)
            run_env["PYTHONPATH"] = str(self.repo)
            procs.spawn(self.argv(), self.pid_file, self.log_file, self.repo, run_env)
        procs.wait_until(self.is_up, "fintank worker", timeout, self.pid_file, self.log_file)

    def stop(self, timeout: float = 30) -> bool:
        """SIGTERM (a clean shutdown flushes the persister); SIGKILL after ``timeout``."""
        return procs.stop(self.pid_file, timeout)

    def kill(self) -> bool:
        """SIGKILL at once: what a crash looks like (used by the exactly-once test)."""
        return procs.kill(self.pid_file)
