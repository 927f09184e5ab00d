"""A bounded atheris (libFuzzer) run over every input parser: no input makes one raise.

`tests/fuzz/fuzz_parsers.py` is the target (it says what it checks); this
runs it in a subprocess for a fixed number of inputs, from its seed corpus,
with a fixed seed, and bounded in time.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

TARGET = Path(__file__).resolve().parents[1] / "fuzz" / "fuzz_parsers.py"
RUNS = 50_000


@pytest.mark.skipif(sys.platform != "linux", reason="atheris ships wheels for Linux only")
def test_atheris_finds_no_input_that_makes_a_parser_raise(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            str(TARGET),
            str(tmp_path / "corpus"),
            f"-runs={RUNS}",
            "-max_total_time=120",  # a bound, not a threshold: the runs normally take seconds
            "-seed=11",
            "-max_len=2048",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert done.returncode == 0, done.stderr[-4000:]
    assert "Uncaught Python exception" not in done.stderr
    ran = re.search(r"^Done (\d+) runs", done.stderr, re.M)
    assert ran is not None and int(ran.group(1)) > 0, done.stderr[-2000:]
