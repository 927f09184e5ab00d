"""Which workers the local stack's VictoriaMetrics scrapes: target files, one per address."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from fintank.config import Settings
from fintank.stack import procs, scrape
from fintank.stack.worker import Worker


def listed(state: Path) -> list[str]:
    return sorted(
        t
        for p in scrape.targets_path(state).glob("*.json")
        for t in json.loads(p.read_text())[0]["targets"]
    )


def test_the_config_scrapes_the_target_files_every_2_s(tmp_path: Path) -> None:
    path = scrape.write_config(tmp_path)

    text = path.read_text()
    assert path == tmp_path / "victoria" / "scrape.yaml"
    assert "scrape_interval: 2s" in text and f"job_name: {scrape.JOB}" in text
    assert json.dumps(str(tmp_path / "victoria" / "targets" / "*.json")) in text
    assert scrape.targets_path(tmp_path).is_dir()


def test_an_address_is_listed_once_whoever_lists_it(tmp_path: Path) -> None:
    assert scrape.add_target(tmp_path, 6066) is True
    assert scrape.add_target(tmp_path, 6066) is False  # already there: not a second target
    assert scrape.add_target(tmp_path, 6067) is True

    assert listed(tmp_path) == ["127.0.0.1:6066", "127.0.0.1:6067"]
    assert not list(scrape.targets_path(tmp_path).glob("*.tmp"))
    scrape.remove_target(tmp_path, 6067)
    scrape.remove_target(tmp_path, 6067)  # (gone already: fine)
    assert listed(tmp_path) == ["127.0.0.1:6066"]


@pytest.fixture
def no_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """Worker.start without starting anything: what it lists is the point here."""

    def spawn(*args: Any, **kwargs: Any) -> int:
        return 0

    monkeypatch.setattr(procs, "spawn", spawn)
    monkeypatch.setattr(procs, "wait_until", lambda *args, **kwargs: None)
    monkeypatch.setattr(procs, "stop", lambda *args, **kwargs: True)


def test_a_worker_lists_itself_while_it_runs(tmp_path: Path, no_process: None) -> None:
    worker = Worker(Settings(state_dir=str(tmp_path), web_port=16999), name="w")

    worker.start(env={})
    assert listed(tmp_path) == ["127.0.0.1:16999"]
    worker.stop()
    assert listed(tmp_path) == []


def test_a_worker_leaves_the_stack_s_own_target_listed(tmp_path: Path, no_process: None) -> None:
    scrape.add_target(tmp_path, 6066)  # what `fintank up` lists
    worker = Worker(Settings(state_dir=str(tmp_path), web_port=6066), name="w")

    worker.start(env={})
    worker.stop()

    assert listed(tmp_path) == ["127.0.0.1:6066"]
