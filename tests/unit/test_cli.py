"""Wrong arguments or settings give one line saying what is wrong (no stack needed)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
INVOKE = Path(sys.executable).with_name("invoke")


def invoke(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(INVOKE), *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=60,
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("queue-ticks", "--count", "-5"), "fintank: --count and --invalid must be >= 0"),
        (("queue-ticks", "--rate", "-1"), "fintank: --rate must be >= 0"),
        (("queue-ticks", "--symbols", ","), "fintank: --symbols needs at least one symbol"),
    ],
)
def test_bad_task_arguments_fail_with_one_line(args: tuple[str, ...], message: str) -> None:
    done = invoke(*args)

    assert done.returncode == 2
    assert done.stderr.strip() == message or done.stderr.strip().startswith(message)
    assert len(done.stderr.strip().splitlines()) == 1


def test_bad_setting_fails_with_one_line() -> None:
    done = invoke("status", FINTANK_BATCH_SIZE="lots")

    assert done.returncode == 2
    assert done.stderr.strip() == "fintank: FINTANK_BATCH_SIZE must be an integer, got 'lots'"


def test_dry_run_prints_valid_json_ticks_without_a_broker() -> None:
    done = invoke("queue-ticks", "--dry-run", "--count", "3", "--symbols", "VTI", "--seed", "1")

    lines = done.stdout.strip().splitlines()
    assert done.returncode == 0 and len(lines) == 3
    assert all('"symbol":"VTI"' in line for line in lines)
