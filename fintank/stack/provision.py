"""Machine provisioning: Apache Kafka's jars from Maven Central, Debian's servers with apt-get.

Kept out of the library's import graph: ``import fintank`` (and the engine, the
agents, the runtime, `fintank.stack.Stack`) never imports this module. Only
``./bootstrap`` and `Stack.install` / `Stack.up` / `Stack.kafka_libs` (when the
jars are missing) import it, lazily.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path

from fintank.errors import StackError
from fintank.stack.stack import KAFKA_POM, kafka_libs_ready, kafka_resource

# {binary: Debian package}: the stack's time-series servers, installed if missing.
APT_PACKAGES = {"influxd": "influxdb", "victoria-metrics": "victoria-metrics"}
# Needed by the test suite only (the live page's browser test), not by the stack:
# `./bootstrap` installs them, `invoke up` and the demo do not.
TEST_APT_PACKAGES = {"chromium": "chromium"}


def install(cache: Path, log: Callable[[str], None] = print) -> Path:
    """Everything the local stack needs on this machine; returns the folder of Kafka's jars."""
    require("java", "install a Java 17 runtime: apt-get install -y openjdk-17-jre-headless")
    libs = resolve_kafka_libs(cache, log)
    apt_install(APT_PACKAGES, log)
    return libs


def install_test_tools(log: Callable[[str], None] = print) -> None:
    """Apt-install what only the test suite needs (Chromium for the live page), if missing."""
    apt_install(TEST_APT_PACKAGES, log)


def resolve_kafka_libs(cache: Path, log: Callable[[str], None] = print) -> Path:
    """``cache/kafka-libs``: Kafka's jars, copied there by Maven from Maven Central if missing.

    The pom ships in the package; it is written to ``cache/kafka-pom/pom.xml`` for
    Maven, which keeps its local repository in ``cache/m2``. The folder is marked
    complete with the pom it was resolved from, so a changed pom resolves again.
    """
    libs = cache / "kafka-libs"
    if kafka_libs_ready(libs):
        return libs
    require("mvn", "install Maven: apt-get install -y maven")
    log(f"resolving Apache Kafka jars from Maven Central into {cache} (first run only)...")
    pom_text = kafka_resource(KAFKA_POM)
    pom = cache / "kafka-pom" / KAFKA_POM
    pom.parent.mkdir(parents=True, exist_ok=True)
    pom.write_text(pom_text, encoding="utf-8")
    shutil.rmtree(libs, ignore_errors=True)
    done = subprocess.run(
        [
            "mvn",
            "-q",
            "-B",
            "-f",
            str(pom),
            f"-Dmaven.repo.local={cache / 'm2'}",
            "dependency:copy-dependencies",
            f"-DoutputDirectory={libs}",
            "-DincludeScope=runtime",
        ],
        cwd=pom.parent,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise StackError(f"mvn could not fetch Kafka's jars: {done.stdout.strip()[-400:]}")
    (libs / ".complete").write_text(pom_text, encoding="utf-8")
    return libs


def require(binary: str, how: str) -> None:
    """Raise `StackError` saying ``how`` to get ``binary`` if it is not on PATH."""
    if shutil.which(binary) is None:
        raise StackError(f"{binary} not found on PATH: {how}")


def apt_install(packages: Mapping[str, str], log: Callable[[str], None] = print) -> None:
    """Install Debian's packages whose binaries (``{binary: package}``) are not on PATH."""
    missing = [pkg for binary, pkg in packages.items() if shutil.which(binary) is None]
    if not missing:
        return
    if shutil.which("apt-get") is None:
        raise StackError(f"apt-get not found on PATH: install {' '.join(missing)} yourself")
    log(f"installing {' '.join(missing)} from Debian's packages (apt-get)...")
    for argv in (
        ["apt-get", "update", "-qq"],
        ["apt-get", "install", "-y", "-qq", *missing],
    ):
        done = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            env={"DEBIAN_FRONTEND": "noninteractive", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
        )
        if done.returncode != 0:
            raise StackError(f"{' '.join(argv)} failed: {done.stderr.strip()[-300:]}")
