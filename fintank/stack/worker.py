"""Run a Faust worker (default: `topologies.fintank`) as a background process (demo, tests).

The process is ``python -m faust -A <module> worker`` with this interpreter, so it
finds fintank and the topology wherever they are installed: it depends neither on
the current directory nor on PYTHONPATH.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.request

from fintank.config import Settings, advertised_host
from fintank.stack import procs, scrape
from fintank.stack.stack import state_path

DEFAULT_APP = "topologies.fintank"


class Worker:
    """One worker process: ``python -m faust -A <app> worker``, its pid file, log and URL.

    Its files are under ``<state_dir>/<name>``; a relative ``state_dir`` is resolved
    against the current directory when the worker is made.
    """

    def __init__(self, settings: Settings, name: str = "worker", app: str = DEFAULT_APP) -> None:
        self.settings = settings
        self.app = app
        self.state = state_path(settings)
        home = self.state / name
        self.home = home
        self.pid_file = home / "worker.pid"
        self.log_file = home / "worker.log"
        # Where this machine reaches it: loopback, unless it listens on one other address only.
        bind = settings.web_bind
        here = "127.0.0.1" if bind in ("0.0.0.0", "::", "127.0.0.1", "localhost") else bind
        self.url = f"http://{here}:{settings.web_port}"
        self._scraped = False  # whether start() listed it for VictoriaMetrics (stop unlists it)

    def argv(self) -> list[str]:
        """The worker's command line; ``argv()[0]`` is this interpreter (`os.execv`-ready)."""
        # JSON logs: faust's start-up banner (printed, not logged) would break the lines.
        quiet = ["--quiet"] if self.settings.log_format == "json" else []
        return [
            sys.executable,
            "-m",
            "faust",
            "-A",
            self.app,
            *quiet,
            "worker",
            "-l",
            "info",
            "--web-port",
            str(self.settings.web_port),
            "--web-bind",
            self.settings.web_bind,
            "--web-host",
            advertised_host(self.settings),
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
        """Start the worker unless it runs; wait until it has partitions and is processing.

        It runs in its own folder (``home``) with ``env`` (default: this process's),
        and ``FINTANK_STATE_DIR`` set to the absolute state folder, so its faust data
        directory lands next to its log whatever the caller's current directory was.
        """
        self.home.mkdir(parents=True, exist_ok=True)
        # The local stack's VictoriaMetrics scrapes every worker listed (fintank.stack.scrape).
        self._scraped = scrape.add_target(self.state, self.settings.web_port) or self._scraped
        if self.pid() is None:
            run_env = dict(os.environ if env is None else env)
            run_env["FINTANK_STATE_DIR"] = str(self.state)
            procs.spawn(self.argv(), self.pid_file, self.log_file, self.home, run_env)
        procs.wait_until(self.is_up, "fintank worker", timeout, self.pid_file, self.log_file)

    def stop(self, timeout: float = 30) -> bool:
        """SIGTERM (a clean shutdown flushes the persister); SIGKILL after ``timeout``."""
        stopped = procs.stop(self.pid_file, timeout)
        if self._scraped:
            scrape.remove_target(self.state, self.settings.web_port)
            self._scraped = False
        return stopped

    def kill(self) -> bool:
        """SIGKILL at once: what a crash looks like (used by the exactly-once test)."""
        return procs.kill(self.pid_file)
