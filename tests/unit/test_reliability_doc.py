"""docs/reliability.md and the limits in docs/wire-format.md, held to the code and the tests.

Every test the *Bad input* section of docs/reliability.md names exists (``file::name``,
or ``::name`` after a file named earlier in the same cell), and the table of
*Limits on input* in docs/wire-format.md states `fintank.limits`' numbers.
"""

from __future__ import annotations

import re
from pathlib import Path

from fintank.limits import DEFAULT_MAX_FUTURE, MAX_NUMBER, MIN_PRICE

REPO = Path(__file__).resolve().parents[2]


def section(path: Path, title: str) -> str:
    text = path.read_text(encoding="utf-8")
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end >= 0 else None]


def test_every_test_the_bad_input_section_names_exists() -> None:
    named = 0
    for row in section(REPO / "docs" / "reliability.md", "Bad input").splitlines():
        if not row.startswith("| ") or "::" not in row:
            continue
        current = None
        for ref in re.findall(r"`([\w/.]*::\w+)`", row):
            path, _, name = ref.partition("::")
            current = REPO / path if path else current
            assert current is not None and current.is_file(), ref
            assert re.search(rf"^def {name}\(", current.read_text(), re.M), ref
            named += 1
    assert named >= 30


def test_the_limits_table_states_fintanks_limits() -> None:
    limits = section(REPO / "docs" / "wire-format.md", "Limits on input (fintank extension)")
    rows = {r.split("|")[1].strip(): r for r in limits.splitlines() if r.startswith("| ")}

    low, high = map(
        float, re.findall(r"([\d.e+-]+) <= price <= ([\d.e+-]+)", rows["price range"])[0]
    )
    assert (low, high) == (MIN_PRICE, MAX_NUMBER)
    assert float(re.findall(r"<= ([\d.e+-]+)", rows["amount"])[0]) == MAX_NUMBER
    assert f"default {DEFAULT_MAX_FUTURE:.0f}" in rows["not in the future"]
    assert "9223372036.854775807 s" in rows["storable time"]
