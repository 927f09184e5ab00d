"""The Docker stack file, the image, Grafana provisioning and the package, validated here.

There is no Docker engine here, so nothing is started: the files must parse,
every host path they mount must exist in the repository, every FINTANK_*
variable they set must be a setting that `Settings.from_env` accepts with
that value, and every image and host port must be the documented ones.

The package (what `pip install` of the wheel gets, checked for real by
tests/integration/test_packaging.py): one version, the declared license,
package data present, runtime dependencies without dev tools, no path into
the source tree, state under the current directory, and the library's import
graph free of the provisioning code.

PyYAML is not a fintank dependency, so the YAML is read by `parse_yaml`, a
strict reader of the block subset these files use (it raises on anything
else: flow collections, anchors, block scalars, tabs). Where PyYAML happens
to be importable, the two readings must agree.
"""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
import tomllib
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest

import fintank
from fintank.config import PREFIX, Settings, Topics
from fintank.stack import Stack, procs
from fintank.stack.stack import KAFKA_LOG4J, KAFKA_POM, cache_path, kafka_resource
from fintank.stack.worker import Worker

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
COMPOSE = DEPLOY / "compose.yaml"
PROVISIONING = REPO / "dashboards" / "provisioning"
DOCS = REPO / "README.md"
PYPROJECT = REPO / "pyproject.toml"

# The third-party images the stack may use (the README's table names each).
IMAGES = {"kafka": "apache/kafka:4.1.1", "influxdb": "influxdb:1.8", "grafana": "grafana/grafana"}


# --- a strict reader for block YAML -------------------------------------------------

_KEY = re.compile(r"([A-Za-z_][\w.\-]*):(?:\s+(.*))?$")


def parse_yaml(text: str) -> Any:
    """Block mappings, block sequences and string scalars; anything else raises ValueError."""
    lines: list[list[Any]] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        body = _without_comment(raw).rstrip()
        if not body.strip():
            continue
        indent = len(body) - len(body.lstrip(" "))
        if body[indent] == "\t":
            raise ValueError(f"line {number}: tab indentation")
        lines.append([indent, body.strip(), number])
    pos = 0

    def block(indent: int) -> Any:
        return sequence(indent) if _is_item(lines[pos][1]) else mapping(indent)

    def sequence(indent: int) -> list[Any]:
        nonlocal pos
        out: list[Any] = []
        while pos < len(lines) and lines[pos][0] == indent and _is_item(lines[pos][1]):
            rest = lines[pos][1][1:].strip()
            if _KEY.match(rest):  # "- key: value" opens a mapping two columns in
                lines[pos][:2] = [indent + 2, rest]
                out.append(mapping(indent + 2))
            else:
                out.append(_scalar(rest, lines[pos][2]))
                pos += 1
        return out

    def mapping(indent: int) -> dict[str, Any]:
        nonlocal pos
        out: dict[str, Any] = {}
        while pos < len(lines) and lines[pos][0] == indent and not _is_item(lines[pos][1]):
            match = _KEY.match(lines[pos][1])
            if not match or match.group(1) in out:
                raise ValueError(f"line {lines[pos][2]}: not a new `key: value`")
            key, value, number = match.group(1), match.group(2), lines[pos][2]
            pos += 1
            if value:
                out[key] = _scalar(value, number)
            elif pos < len(lines) and (
                lines[pos][0] > indent or (lines[pos][0] == indent and _is_item(lines[pos][1]))
            ):
                out[key] = block(lines[pos][0])
            else:
                out[key] = None
        return out

    result = block(lines[0][0]) if lines else None
    if pos != len(lines):
        raise ValueError(f"line {lines[pos][2]}: unexpected indentation")
    return result


def _is_item(body: str) -> bool:
    return body == "-" or body.startswith("- ")


def _without_comment(line: str) -> str:
    quote = None
    for i, ch in enumerate(line):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "\"'" and (i == 0 or line[i - 1] == " "):
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1] == " "):
            return line[:i]
    return line


def _scalar(text: str, number: int) -> str:
    if text[0] == '"':
        return str(json.loads(text))
    if text[0] == "'":
        if not text.endswith("'") or len(text) < 2:
            raise ValueError(f"line {number}: unterminated quote")
        return text[1:-1].replace("''", "'")
    if text[0] in "[]{}&*!|>%@`" or ": " in text:
        raise ValueError(f"line {number}: unsupported YAML {text!r}")
    return text


def _as_strings(value: Any) -> Any:
    """PyYAML's reading with every scalar as the string `parse_yaml` keeps."""
    if isinstance(value, dict):
        return {str(k): _as_strings(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_as_strings(v) for v in value]
    if isinstance(value, bool):
        return str(value).lower()
    return value if value is None else str(value)


def load(path: Path) -> Any:
    text = path.read_text()
    data = parse_yaml(text)
    if importlib.util.find_spec("yaml") is not None:
        import yaml

        assert _as_strings(yaml.safe_load(text)) == data, f"{path}: readers disagree"
    return data


def test_the_reader_reads_block_yaml_and_refuses_the_rest() -> None:
    text = "a:\n  b: \"x: y\"  # note\n  c:\n  - one\n  - k: v\n    w: \"2\"\nd: 'it''s'\n"

    assert parse_yaml(text) == {
        "a": {"b": "x: y", "c": ["one", {"k": "v", "w": "2"}]},
        "d": "it's",
    }
    for bad in (
        "a: [1, 2]\n",
        "a: &x 1\n",
        "a: |\n  t\n",
        "a:\n    b: 1\n  c: 2\n",
        "a: 1\na: 2\n",
    ):
        with pytest.raises(ValueError):
            parse_yaml(bad)


# --- the stack file -------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = load(COMPOSE)
    assert isinstance(data, dict)
    return data


def interpolated(value: str) -> str:
    """A compose value with ``${VAR:-default}`` replaced by its default (nothing set in the shell)."""
    assert not re.search(r"\$\{\w+\}|\$\w", re.sub(r"\$\{\w+:-[^}]*\}", "", value)), value
    return re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", value)


def setting_names() -> set[str]:
    names = {PREFIX + f.name.upper() for f in fields(Settings) if f.name != "topics"}
    return names | {f"{PREFIX}TOPIC_{f.name.upper()}" for f in fields(Topics)}


def test_compose_has_the_services_of_the_stack(compose: dict[str, Any]) -> None:
    services = compose["services"]

    assert set(services) == {"kafka", "influxdb", "grafana", "topics", "worker"}
    assert set(compose["volumes"]) == {"influxdb-data", "grafana-data"}
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    command = " ".join(services["worker"]["command"])
    assert command == "faust -A topologies.fintank worker -l info"
    assert services["worker"]["depends_on"]["topics"] == {
        "condition": "service_completed_successfully"
    }


def test_workers_can_be_scaled(compose: dict[str, Any]) -> None:
    worker = compose["services"]["worker"]

    assert "container_name" not in worker
    assert "ports" not in worker
    partitions = int(interpolated(worker["environment"]["FINTANK_PARTITIONS"]))
    assert partitions >= 3  # `--scale worker=3` gives every worker a partition


def test_every_image_is_a_documented_one(compose: dict[str, Any]) -> None:
    docs = DOCS.read_text()

    for name, service in compose["services"].items():
        image = service["image"]
        assert f"`{image}`" in docs, f"{name}: image {image} is not in the README section"
        if "build" in service:
            assert image == "fintank:local", name
        else:
            assert image.split(":")[0] == IMAGES[name].split(":")[0], name
            assert image.startswith(IMAGES[name]), name


def test_every_built_service_uses_the_dockerfile_and_its_sources_exist(
    compose: dict[str, Any],
) -> None:
    built = {n: s["build"] for n, s in compose["services"].items() if "build" in s}

    assert set(built) == {"topics", "worker"}
    for build in built.values():
        context = (DEPLOY / build["context"]).resolve()
        dockerfile = context / build["dockerfile"]
        assert context == REPO
        assert dockerfile == DEPLOY / "Dockerfile"
        assert dockerfile.is_file()
    text = (DEPLOY / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim$", text, re.M)
    assert re.search(r"^RUN pip install \.", text, re.M)
    for sources in re.findall(r"^COPY (.+) \S+$", text, re.M):
        for source in sources.split():
            assert source.endswith("*") or (REPO / source).exists(), source
    assert (REPO / "topologies" / "fintank.py").is_file()


def test_the_image_gets_what_the_build_needs() -> None:
    """Every COPY source passes the Dockerfile's ignore file, and the build's inputs are copied."""
    text = (DEPLOY / "Dockerfile").read_text()
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    copied = {
        source.rstrip("*").rstrip("/")
        for sources in re.findall(r"^COPY (.+) \S+$", text, re.M)
        for source in sources.split()
    }

    assert "*" in ignore, "the ignore file should send only what is listed"
    assert copied <= allowed, f"COPY sources the ignore file drops: {copied - allowed}"
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    for needed in ("pyproject.toml", project["readme"], *project["license-files"]):
        assert needed in copied, needed
    top_packages = {
        p.split("*")[0].rstrip(".") for p in _setuptools()["packages"]["find"]["include"]
    }
    assert top_packages <= copied


def test_every_mounted_host_path_exists_in_the_repo(compose: dict[str, Any]) -> None:
    named = set(compose["volumes"])
    mounts = 0

    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source in named:
                continue
            host = (DEPLOY / source).resolve()
            assert host.is_relative_to(REPO), f"{name}: {source} is outside the repository"
            assert host.exists(), f"{name}: {source} does not exist"
            mounts += 1

    assert mounts == 2


def test_every_fintank_variable_is_a_setting_and_parses(compose: dict[str, Any]) -> None:
    known = setting_names()
    text = COMPOSE.read_text()
    parsed = {}

    named = set(re.findall(r"\b(FINTANK_\w+)", text))
    assert named - known == set(), "FINTANK_ variables that Settings does not have"
    for name, service in compose["services"].items():
        env = {k: interpolated(v) for k, v in service.get("environment", {}).items()}
        mine = {k: v for k, v in env.items() if k.startswith(PREFIX)}
        assert set(mine) <= known, name
        parsed[name] = Settings.from_env(mine)  # raises ConfigError on a bad value

    for name in ("topics", "worker"):
        assert parsed[name].bootstrap == "kafka:29092", name
    assert parsed["topics"].partitions == parsed["worker"].partitions
    assert parsed["worker"].influx_url == "http://influxdb:8086"
    assert parsed["worker"].influx_transport == "v1"


def test_every_host_port_is_documented(compose: dict[str, Any]) -> None:
    docs = DOCS.read_text()

    published = {
        name: [interpolated(p).split(":") for p in service.get("ports", [])]
        for name, service in compose["services"].items()
    }

    # On the host's loopback only, unless PUBLISH_ADDRESS says otherwise.
    assert published == {
        "kafka": [["127.0.0.1", "9092", "9092"]],
        "influxdb": [["127.0.0.1", "8086", "8086"]],
        "grafana": [["127.0.0.1", "3000", "3000"]],
        "topics": [],
        "worker": [],
    }
    for name, ports in published.items():
        for _, host, _ in ports:
            assert re.search(rf"\|\s*{name}\s*\|[^\n]*\|\s*{host}\s*\|", docs), (name, host)


# --- Grafana provisioning -------------------------------------------------------------


def test_grafana_provisioning_finds_the_dashboard_and_the_datasource(
    compose: dict[str, Any],
) -> None:
    grafana = compose["services"]["grafana"]
    mounts = dict(v.split(":")[:2] for v in grafana["volumes"])
    providers = load(PROVISIONING / "dashboards" / "fintank.yaml")["providers"]
    datasources = load(PROVISIONING / "datasources" / "fintank.yaml")["datasources"]
    env = grafana["environment"]

    assert mounts["../dashboards/provisioning"] == "/etc/grafana/provisioning"
    [provider] = providers
    assert provider["type"] == "file"
    assert mounts["../dashboards"] == provider["options"]["path"] == "/var/lib/grafana/dashboards"
    assert (REPO / "dashboards" / "order-flow.json").is_file()
    assert (REPO / "dashboards" / "worker.json").is_file()
    assert sorted(s["type"] for s in datasources) == ["influxdb", "prometheus"]
    [source] = [s for s in datasources if s["type"] == "influxdb"]
    assert (source["type"], source["access"]) == ("influxdb", "proxy")
    for value in (source["url"], source["jsonData"]["dbName"]):
        [var] = re.findall(r"^\$\{(\w+)\}$", value)
        assert var in setting_names()
        assert var in env, f"the grafana service does not set {var}"
    assert interpolated(env["FINTANK_INFLUX_URL"]) == "http://influxdb:8086"
    assert interpolated(env["FINTANK_INFLUX_DATABASE"]) == interpolated(
        compose["services"]["influxdb"]["environment"]["INFLUXDB_DB"]
    )


def test_the_victoriametrics_datasource_is_the_local_stack_s_scraping_every_2s(
    compose: dict[str, Any],
) -> None:
    from fintank.stack.scrape import SCRAPE_INTERVAL

    datasources = load(PROVISIONING / "datasources" / "fintank.yaml")["datasources"]
    [source] = [s for s in datasources if s["type"] == "prometheus"]
    env = compose["services"]["grafana"]["environment"]

    assert source["access"] == "proxy"
    [var] = re.findall(r"^http://127\.0\.0\.1:\$\{(\w+)\}$", source["url"])
    assert var == "FINTANK_VICTORIA_PORT" and var in env
    assert Settings.from_env({var: interpolated(env[var])}).victoria_port == 8428
    # Grafana's $__rate_interval is at least 4 x timeInterval: the scrape interval.
    assert source["jsonData"]["timeInterval"] == SCRAPE_INTERVAL


# --- the package ------------------------------------------------------------------------


def _setuptools() -> dict[str, Any]:
    return dict(tomllib.loads(PYPROJECT.read_text())["tool"]["setuptools"])


def _requirement_names(requirements: list[str]) -> set[str]:
    return {re.split(r"[\s\[<>=!~;]", r, maxsplit=1)[0].lower() for r in requirements}


def test_the_version_is_written_once() -> None:
    pyproject = tomllib.loads(PYPROJECT.read_text())

    assert "version" not in pyproject["project"]
    assert "version" in pyproject["project"]["dynamic"]
    assert _setuptools()["dynamic"]["version"] == {"attr": "fintank.__version__"}
    assert re.fullmatch(r"\d+\.\d+\.\d+", fintank.__version__)
    init = (REPO / "fintank" / "__init__.py").read_text()
    assert len(re.findall(r"^__version__ = ", init, re.M)) == 1


def test_the_license_is_the_declared_one() -> None:
    pyproject = tomllib.loads(PYPROJECT.read_text())
    text = (REPO / "LICENSE").read_text()

    assert pyproject["project"]["license"] == "Apache-2.0"  # an SPDX expression
    assert pyproject["project"]["license-files"] == ["LICENSE"]
    [requires] = pyproject["build-system"]["requires"]
    assert requires == "setuptools>=77"  # SPDX `license` and `license-files`
    assert text.split()[:5] == ["Apache", "License", "Version", "2.0,", "January"]
    assert "END OF TERMS AND CONDITIONS" in text


def test_runtime_dependencies_hold_no_dev_tools() -> None:
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    runtime = _requirement_names(project["dependencies"])
    extras = project["optional-dependencies"]

    assert runtime == {
        "faust-streaming",
        "mode-streaming",
        "aiokafka",
        "orjson",
        "influxdb-client",
        "click",
        "prometheus-client",
    }
    assert {"faust-streaming==0.15.3", "mode-streaming==0.7.1", "aiokafka==0.14.0"} <= set(
        project["dependencies"]
    )
    assert {"pytest", "hypothesis", "ta-lib", "invoke"} <= _requirement_names(extras["test"])
    assert {"quixstreams", "py-spy", "confluent-kafka"} <= _requirement_names(extras["bench"])
    assert {"ruff", "mypy"} <= _requirement_names(extras["lint"])
    assert "fintank[test,bench,lint]" in extras["dev"]
    assert "invoke" in _requirement_names(extras["dev"])
    assert project["scripts"] == {"fintank": "fintank.cli:main"}
    assert "-e '.[dev]'" in (REPO / "bootstrap").read_text()


def test_package_data_is_declared_and_present() -> None:
    patterns = _setuptools()["package-data"]["fintank"]

    for pattern in patterns:
        assert list((REPO / "fintank").glob(pattern)), f"package data {pattern!r} matches nothing"
    for needed in (
        "py.typed",
        "web/*.html",
        "stack/kafka/pom.xml",
        "stack/kafka/log4j2.properties",
    ):
        assert needed in patterns, needed
    assert "<artifactId>kafka_2.13</artifactId>" in kafka_resource(KAFKA_POM)
    assert "rootLogger.level" in kafka_resource(KAFKA_LOG4J)
    assert not (REPO / "infra").exists(), "the Kafka files live in fintank/stack/kafka/ now"


def test_no_path_into_the_source_tree_in_the_package() -> None:
    """What the wheel ships (fintank/, topologies/) never finds files relative to the clone."""
    offenders = []
    for package in ("fintank", "topologies"):
        for path in sorted((REPO / package).rglob("*.py")):
            for number, line in enumerate(path.read_text().splitlines(), start=1):
                if re.search(r"parents\[|\bREPO\b|__file__", line):
                    offenders.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")

    assert offenders == []


# Entry points like ./bootstrap, which may import the provisioning code; not the library.
ENTRY_POINTS = {"fintank.cli", "fintank.__main__", "fintank.stack.provision"}


def test_importing_the_library_does_not_import_the_provisioning_code() -> None:
    """fintank, its engine, agents, runtime and every other module but the entry points."""
    code = (
        "import importlib, importlib.util, json, pkgutil, sys\n"
        "import fintank, fintank.engine, fintank.runtime\n"
        "if importlib.util.find_spec('fintank.agents'):\n"
        "    import fintank.agents\n"
        "for m in pkgutil.walk_packages(fintank.__path__, 'fintank.'):\n"
        f"    if m.name not in {sorted(ENTRY_POINTS)!r}:\n"
        "        importlib.import_module(m.name)\n"
        "print(json.dumps(sorted(m for m in sys.modules if 'provision' in m)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO
    )

    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1]) == []
    # ...while the module itself exists under the name checked above.
    assert importlib.util.find_spec("fintank.stack.provision") is not None


def test_state_is_under_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FINTANK_CACHE_DIR", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))

    stack = Stack(Settings())
    assert stack.state == tmp_path / ".state"
    assert stack.kafka.pid_file == tmp_path / ".state" / "kafka" / "kafka.pid"
    assert Worker(Settings(), name="w").home == tmp_path / ".state" / "w"
    assert stack.cache == tmp_path / "home" / ".cache" / "fintank"

    elsewhere = tmp_path / "elsewhere"
    assert Stack(Settings(state_dir=str(elsewhere))).state == elsewhere


def test_the_cache_folder_follows_the_environment(tmp_path: Path) -> None:
    assert cache_path({"FINTANK_CACHE_DIR": str(tmp_path / "c")}) == tmp_path / "c"
    assert cache_path({"XDG_CACHE_HOME": str(tmp_path / "x")}) == tmp_path / "x" / "fintank"
    assert cache_path({}) == Path.home() / ".cache" / "fintank"
    assert Stack(Settings(), cache=tmp_path / "k").cache == tmp_path / "k"


def test_the_worker_runs_with_this_interpreter_anywhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``python -m faust``, in its own folder, with no PYTHONPATH added: no clone needed."""
    monkeypatch.chdir(tmp_path)
    spawned: list[dict[str, Any]] = []

    def spawn(argv: list[str], pid_file: Path, log_file: Path, cwd: Path, env: Any) -> int:
        spawned.append({"argv": argv, "cwd": cwd, "env": dict(env)})
        return 0

    monkeypatch.setattr(procs, "spawn", spawn)
    monkeypatch.setattr(procs, "wait_until", lambda *args, **kwargs: None)
    worker = Worker(Settings(web_port=16999), name="w")

    assert worker.argv()[:6] == [
        sys.executable,
        "-m",
        "faust",
        "-A",
        "topologies.fintank",
        "worker",
    ]
    assert Worker(Settings(), app="my.topology").argv()[4] == "my.topology"
    worker.start(env={"PATH": "/usr/bin"})
    [run] = spawned
    assert run["cwd"] == worker.home == tmp_path / ".state" / "w"
    assert run["env"] == {"PATH": "/usr/bin", "FINTANK_STATE_DIR": str(tmp_path / ".state")}
