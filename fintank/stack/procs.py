"""Start, find and stop background server processes by pid file."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from fintank.errors import StackError


def read_pid(pid_file: Path) -> int | None:
    """The pid in ``pid_file`` if that process is still alive, else None."""
    try:
        pid = int(pid_file.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return pid
    # A zombie (exited, not yet reaped) is not running.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return pid
    return None if state == "Z" else pid


def spawn(
    argv: Sequence[str],
    pid_file: Path,
    log_file: Path,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> int:
    """Start ``argv`` detached (own session, output to ``log_file``) and record its pid."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "ab") as log:
        proc = subprocess.Popen(
            list(argv),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=cwd,
            env=None if env is None else dict(env),
            start_new_session=True,
        )
    pid_file.write_text(f"{proc.pid}\n")
    return proc.pid


def stop(pid_file: Path, timeout: float = 20.0) -> bool:
    """SIGTERM the process in ``pid_file`` (SIGKILL after ``timeout``); True if one was running."""
    pid = read_pid(pid_file)
    if pid is None:
        pid_file.unlink(missing_ok=True)
        return False
    _signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if read_pid(pid_file) is None:
            break
        time.sleep(0.1)
    else:
        _signal_group(pid, signal.SIGKILL)
        time.sleep(0.2)
    pid_file.unlink(missing_ok=True)
    return True


def _signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    """True if something accepts TCP connections on host:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def http_ok(url: str) -> bool:
    """True if a GET of ``url`` answers 2xx."""
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return 200 <= int(resp.status) < 300
    except (urllib.error.URLError, OSError):
        return False


def wait_until(
    check: Callable[[], bool],
    what: str,
    timeout: float,
    pid_file: Path | None = None,
    log_file: Path | None = None,
) -> None:
    """Poll ``check`` until true; raise `StackError` naming ``what`` (and its log) on timeout or exit."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        if pid_file is not None and read_pid(pid_file) is None:
            raise StackError(f"{what} exited during start-up; see {log_file}{_tail(log_file)}")
        time.sleep(0.2)
    raise StackError(
        f"{what} did not answer within {timeout:.0f}s; see {log_file}{_tail(log_file)}"
    )


def _tail(log_file: Path | None, lines: int = 5) -> str:
    if log_file is None or not log_file.exists():
        return ""
    text = log_file.read_text(errors="replace").strip().splitlines()[-lines:]
    return "\n  " + "\n  ".join(text) if text else ""


def kill(pid_file: Path) -> bool:
    """SIGKILL the process (group) in ``pid_file`` at once, as a crash would; True if one ran."""
    pid = read_pid(pid_file)
    if pid is not None:
        _signal_group(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while read_pid(pid_file) is not None and time.monotonic() < deadline:
            time.sleep(0.05)
    pid_file.unlink(missing_ok=True)
    return pid is not None
