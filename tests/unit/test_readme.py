"""The README's claims that code can check: its hello world is examples/hello.py, as written."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text()


def section(title: str) -> str:
    start = README.index(f"\n## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start : end if end >= 0 else None]


def test_the_hello_world_is_examples_hello_py_as_written() -> None:
    [code] = re.findall(r"```python\n(.*?)```", section("Hello world"), re.S)
    assert code == (REPO / "examples" / "hello.py").read_text()


def test_the_hello_world_is_short() -> None:
    [code] = re.findall(r"```python\n(.*?)```", section("Hello world"), re.S)
    assert len(code.strip().splitlines()) <= 25


def test_every_path_in_the_layout_exists() -> None:
    [layout] = re.findall(r"```\n(fintank/ .*?)```", section("Layout"), re.S)
    folder = ""
    for line in layout.splitlines():
        names = line.split("  ")[0].split()
        top = not line.startswith(" ")
        for name in names:
            if top:
                folder = name if name.endswith("/") else ""
                path = name
            else:
                path = ("fintank/" if name.endswith("/") or "/" in name else folder) + name
            assert (REPO / path).exists(), f"README Layout names {path}, which does not exist"


def test_the_configuration_table_is_what_fintank_config_prints() -> None:
    from fintank.cli import config_table

    table = section("Configuration")
    settings_rows = [row for row in config_table()[2:] if "_TOPIC_" not in row]
    missing = [row for row in settings_rows if row not in table]
    assert missing == [], "README's configuration table differs from `fintank config`"
