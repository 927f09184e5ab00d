"""docs/reliability.md, *InfluxDB faults*: every test it names exists.

References are ``file::name``, or ``::name`` after a file named earlier in the same cell.
"""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def section(title: str) -> str:
    text = (REPO / "docs" / "reliability.md").read_text(encoding="utf-8")
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end >= 0 else None]


def test_every_test_the_influxdb_faults_section_names_exists() -> None:
    named = 0
    for row in section("InfluxDB faults").splitlines():
        if not row.startswith("| ") or "::" not in row:
            continue
        for cell in row.split(" | "):
            current = None
            for ref in re.findall(r"`([\w/.]*::\w+)`", cell):
                path, _, name = ref.partition("::")
                current = REPO / path if path else current
                assert current is not None and current.is_file(), ref
                assert re.search(rf"^def {name}\(", current.read_text(), re.M), ref
                named += 1
    assert named >= 20
