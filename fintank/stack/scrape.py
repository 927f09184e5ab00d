"""VictoriaMetrics scraping the local workers' ``GET /metrics``.

`fintank up` starts VictoriaMetrics with ``-promscrape.config`` pointing at
`write_config`'s file (``<state>/victoria/scrape.yaml``): one job, every
`SCRAPE_INTERVAL`, whose targets are the files in ``<state>/victoria/targets/``
(``file_sd_configs``, re-read every `FILE_SD_CHECK`). Each target file names
one worker address and is named after it, so writing it twice never makes a
duplicate target: `fintank up` writes the one for ``FINTANK_WEB_PORT`` (the
worker `fintank worker` and the demo start), and `fintank.stack.worker.Worker`
adds its own port when it starts (and removes the file it added when it stops).
"""

from __future__ import annotations

import json
from pathlib import Path

#: How often VictoriaMetrics scrapes each worker (Grafana's data source says the same).
SCRAPE_INTERVAL = "2s"
#: How often it looks for added or removed target files.
FILE_SD_CHECK = "1s"
JOB = "fintank-worker"


def victoria_home(state: Path) -> Path:
    return state / "victoria"


def config_path(state: Path) -> Path:
    return victoria_home(state) / "scrape.yaml"


def targets_path(state: Path) -> Path:
    return victoria_home(state) / "targets"


def scrape_config(state: Path) -> str:
    """The Prometheus-style scrape config: the fintank workers listed in the targets folder."""
    pattern = targets_path(state) / "*.json"
    return (
        "# Written by fintank's `fintank up`; edit fintank/stack/scrape.py instead.\n"
        "global:\n"
        f"  scrape_interval: {SCRAPE_INTERVAL}\n"
        f"  scrape_timeout: {SCRAPE_INTERVAL}\n"
        "scrape_configs:\n"
        f"  - job_name: {JOB}\n"
        "    metrics_path: /metrics\n"
        "    file_sd_configs:\n"
        f"      - files: [{json.dumps(str(pattern))}]\n"
    )


def write_config(state: Path) -> Path:
    """Write the scrape config and make the targets folder; returns the config's path."""
    path = config_path(state)
    targets_path(state).mkdir(parents=True, exist_ok=True)
    path.write_text(scrape_config(state), encoding="utf-8")
    return path


def target_file(state: Path, port: int, host: str = "127.0.0.1") -> Path:
    return targets_path(state) / f"{host}-{port}.json"


def add_target(state: Path, port: int, host: str = "127.0.0.1") -> bool:
    """List the worker at ``host:port`` for scraping; True if this call added it (it was not)."""
    path = target_file(state, port, host)
    if path.exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    # Written aside and renamed: VictoriaMetrics never reads half a file.
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps([{"targets": [f"{host}:{port}"]}]) + "\n", encoding="utf-8")
    tmp.replace(path)
    return True


def remove_target(state: Path, port: int, host: str = "127.0.0.1") -> None:
    target_file(state, port, host).unlink(missing_ok=True)
