"""The built wheel works outside the repository.

Builds fintank's wheel, installs it with its dependencies from PyPI into a
fresh venv in a temporary folder outside the clone, and, from another
temporary folder as the current directory and without PYTHONPATH, checks
what a user gets: the version pyproject declares, the Kafka pom and log4j2
config as package data, ``py.typed``, state under the current directory,
the cache under the home folder, the topology and ``python -m faust``
loading it, the license metadata, and no file that refers to the source tree.

The wheel is built from a copy of exactly what the Docker image copies
(pyproject.toml, README.md, LICENSE, fintank/, topologies/), so it neither
writes ``build/`` into the clone nor picks up stale files from one.

Needs PyPI (pip's own configuration applies); bounded by timeouts.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fintank.config import Settings
from fintank.stack import Stack
from fintank.stack.stack import cache_path
from fintank.stack.worker import Worker
from tests.integration.conftest import TEST_STACK_ENV
from tests.integration.load import free_port

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
SOURCES = ("pyproject.toml", "README.md", "LICENSE", "fintank", "topologies")
BUILD_TIMEOUT = 600
INSTALL_TIMEOUT = 1200
RUN_TIMEOUT = 120

CHECK = r"""
import importlib.metadata as md
import importlib.resources as resources
import importlib.util
import json
import os
import sys

import fintank
from fintank.config import Settings
from fintank.stack import Stack
from fintank.stack.worker import Worker

kafka = resources.files("fintank.stack") / "kafka"
dist = md.distribution("fintank")
settings = Settings.from_env(os.environ)
print(json.dumps({
    "version": fintank.__version__,
    "dist_version": dist.version,
    "fintank_file": fintank.__file__,
    "topology": importlib.util.find_spec("topologies.fintank").origin,
    "pom": (kafka / "pom.xml").read_text(encoding="utf-8"),
    "log4j": (kafka / "log4j2.properties").read_text(encoding="utf-8"),
    "py_typed": (resources.files("fintank") / "py.typed").is_file(),
    "live_page": (resources.files("fintank") / "web" / "live.html").is_file(),
    "cwd": os.getcwd(),
    "state_dir": settings.state_dir,
    "stack_state": str(Stack(settings).state),
    "stack_cache": str(Stack(settings).cache),
    "worker_home": str(Worker(settings).home),
    "worker_argv": Worker(settings).argv(),
    "provisioning_loaded": sorted(m for m in sys.modules if "provision" in m),
    "license": dist.metadata.get("License-Expression"),
    "license_files": [str(f) for f in dist.files if f.name == "LICENSE"],
    "requires": dist.requires,
    "scripts": sorted(
        (e.name, e.value) for e in md.entry_points(group="console_scripts") if e.name == "fintank"
    ),
    "files": [str(f.locate().resolve()) for f in dist.files],
}))
"""


def _run(argv: list[str], cwd: Path, env: dict[str, str], timeout: float) -> str:
    try:
        done = subprocess.run(
            argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{argv[:4]} took over {timeout:.0f}s: {exc.stdout!r}{exc.stderr!r}"[-3000:])
    assert done.returncode == 0, f"{argv[:4]} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}"
    return done.stdout


def _clean_env(home: Path | None = None) -> dict[str, str]:
    """This environment without anything that points Python or fintank at the clone.

    With ``home``, also a fresh HOME and no XDG_CACHE_HOME (pip's steps keep the
    real ones: its configuration and cache).
    """
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("FINTANK_", "PYTHON", "VIRTUAL_ENV"))
    }
    env["PATH"] = os.pathsep.join(
        p for p in env.get("PATH", "").split(os.pathsep) if not Path(p).is_relative_to(REPO)
    )
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    if home is not None:
        env["HOME"] = str(home)
        env.pop("XDG_CACHE_HOME", None)
    return env


Report = dict[str, Any]


@pytest.fixture(scope="module")
def installed() -> Iterator[tuple[Path, Report]]:
    """(temporary root, the check's report) for the wheel installed in a fresh venv."""
    root = Path(tempfile.mkdtemp(prefix="fintank-packaging-")).resolve()
    try:
        assert not root.is_relative_to(REPO)
        home, cwd, src, dist = root / "home", root / "cwd", root / "src", root / "dist"
        for folder in (home, cwd, src):
            folder.mkdir()
        env = _clean_env()
        for name in SOURCES:
            source = REPO / name
            if source.is_dir():
                shutil.copytree(
                    source, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
                )
            else:
                shutil.copy2(source, src / name)
        _run(
            [sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "-q", "-w", str(dist)],
            root,
            env,
            BUILD_TIMEOUT,
        )
        [wheel] = dist.glob("fintank-*.whl")
        _run([sys.executable, "-m", "venv", str(root / "venv")], root, env, RUN_TIMEOUT)
        python = root / "venv" / "bin" / "python"
        _run([str(python), "-m", "pip", "install", "-q", str(wheel)], root, env, INSTALL_TIMEOUT)
        (root / "check.py").write_text(CHECK)
        report = json.loads(
            _run(
                [str(python), str(root / "check.py")], cwd, _clean_env(home), RUN_TIMEOUT
            ).splitlines()[-1]
        )
        report["wheel"] = wheel.name
        yield root, report
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_the_version_is_pyprojects(installed: tuple[Path, Report]) -> None:
    _, report = installed
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert pyproject["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "fintank.__version__"}
    import fintank

    assert report["version"] == report["dist_version"] == fintank.__version__
    assert report["wheel"] == f"fintank-{fintank.__version__}-py3-none-any.whl"


def test_it_is_the_installed_copy_that_runs(installed: tuple[Path, Report]) -> None:
    root, report = installed
    site = root / "venv" / "lib"

    assert Path(str(report["fintank_file"])).is_relative_to(site)
    assert Path(str(report["topology"])).is_relative_to(site)
    assert Path(str(report["worker_argv"][0])).parent == root / "venv" / "bin"
    assert report["worker_argv"][1:5] == ["-m", "faust", "-A", "topologies.fintank"]


def test_package_data_is_installed(installed: tuple[Path, Report]) -> None:
    _, report = installed

    assert report["pom"] == (REPO / "fintank" / "stack" / "kafka" / "pom.xml").read_text()
    assert (
        report["log4j"] == (REPO / "fintank" / "stack" / "kafka" / "log4j2.properties").read_text()
    )
    assert report["py_typed"] is True
    assert report["live_page"] is True


def test_state_is_under_the_current_directory(installed: tuple[Path, Report]) -> None:
    root, report = installed

    assert report["cwd"] == str(root / "cwd")
    assert report["state_dir"] == ".state"
    assert report["stack_state"] == str(root / "cwd" / ".state")
    assert report["worker_home"] == str(root / "cwd" / ".state" / "worker")
    assert report["stack_cache"] == str(root / "home" / ".cache" / "fintank")
    assert report["provisioning_loaded"] == []


def test_license_and_entry_point_metadata(installed: tuple[Path, Report]) -> None:
    _, report = installed
    requires = " ".join(report["requires"])

    assert report["license"] == "Apache-2.0"
    assert report["license_files"], "LICENSE is not in the wheel's metadata"
    assert report["scripts"] == [["fintank", "fintank.cli:main"]]
    for name in ("faust-streaming==0.15.3", "aiokafka==0.14.0", "click"):
        assert name in requires
    runtime = [r for r in report["requires"] if "extra ==" not in r]
    assert not [r for r in runtime if r.split()[0].startswith(("invoke", "pytest", "ruff"))]


def test_nothing_installed_refers_to_the_source_tree(
    installed: tuple[Path, Report],
) -> None:
    root, report = installed
    files = [Path(f) for f in report["files"]]
    [site] = (root / "venv" / "lib").glob("python3*/site-packages")
    repo = str(REPO).encode()
    tops = {f.relative_to(site).parts[0] for f in files if f.is_relative_to(site)}
    elsewhere = {f for f in files if not f.is_relative_to(site)}

    assert tops == {"fintank", "topologies", f"fintank-{report['dist_version']}.dist-info"}
    assert elsewhere == {root / "venv" / "bin" / "fintank"}  # the console script
    for path in files:
        if path.is_file():
            assert repo not in path.read_bytes(), f"{path} mentions {REPO}"


def test_faust_loads_the_topology_from_the_installed_package(
    installed: tuple[Path, Report],
) -> None:
    """``python -m faust -A topologies.fintank agents`` from a folder outside the clone."""
    root, _ = installed
    env = _clean_env(root / "home")

    out = _run(
        [
            str(root / "venv" / "bin" / "python"),
            "-m",
            "faust",
            "-A",
            "topologies.fintank",
            "agents",
        ],
        root / "cwd",
        env,
        RUN_TIMEOUT,
    )
    assert "Agents" in out


def _mids(bootstrap: str, symbol: str, want: int, timeout: float) -> list[dict[str, Any]]:
    """The ``mids`` records keyed ``symbol``, once ``want`` arrived (or ``timeout`` passed)."""
    from aiokafka import AIOKafkaConsumer

    async def read() -> list[dict[str, Any]]:
        consumer = AIOKafkaConsumer(
            "mids", bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest"
        )
        await consumer.start()
        found: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        try:
            while len(found) < want and time.monotonic() < deadline:
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    found += [json.loads(r.value) for r in records if r.key == symbol.encode()]
        finally:
            await consumer.stop()
        return found

    return asyncio.run(read())


def test_a_users_topology_runs_from_the_installed_wheel(
    installed: tuple[Path, Report], stack: Stack
) -> None:
    """The README's hello world, as a user runs it: a module with one bolt beside nothing but
    the installed wheel; ``fintank up``, ``topics create``, ``worker --detach``, ``seed``, ``tail``."""
    root, _ = installed
    fintank = str(root / "venv" / "bin" / "fintank")
    user = root / "user"
    user.mkdir()
    shutil.copy2(REPO / "examples" / "hello.py", user / "hello.py")
    env = {
        **_clean_env(root / "home"),
        **TEST_STACK_ENV,
        "FINTANK_CACHE_DIR": str(cache_path()),  # the jars are there already
    }
    _run([fintank, "up"], user, env, 300)  # the test stack: already up, so this only checks
    env["FINTANK_STATE_DIR"] = str(user / ".state")  # the worker's own folder
    env["FINTANK_WEB_PORT"] = str(free_port())
    symbol = f"HELLO{uuid.uuid4().hex[:8].upper()}"
    _run([fintank, "topics", "create", "hello:topology"], user, env, RUN_TIMEOUT)
    started = _run([fintank, "worker", "hello:topology", "--detach"], user, env, 180)
    try:
        assert "worker: up at" in started
        _run(
            [fintank, "seed", "ticks", "--count", "20", "--invalid", "0", "--symbols", symbol],
            user,
            env,
            RUN_TIMEOUT,
        )
        mids = _mids(stack.settings.bootstrap, symbol, 20, timeout=60)
        assert len(mids) == 20
        assert all(m["symbol"] == symbol and m["mid"] > 0 for m in mids)
        tail = _run([fintank, "tail", "mids", "-n", "1"], user, env, RUN_TIMEOUT)
        assert tail.count("\t") == 1 and '"mid":' in tail
    finally:
        Worker(Settings.from_env(env)).stop()
