"""Start, find and stop the processes of the embedded stack; wait on conditions with deadlines."""

from __future__ import annotations

import contextlib
import os
import pwd
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from core.exceptions import StackError


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """True when something accepts TCP connections at host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def free_port() -> int:
    """A TCP port nothing listens on now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def pid_alive(pid: int | None) -> bool:
    """True when the process exists and is not a zombie."""
    if pid is None or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    if stat.exists():
        with contextlib.suppress(OSError, IndexError):
            return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    return True


def start_detached(
    args: Sequence[str],
    log_path: Path,
    *,
    user: str | None = None,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> int:
    """Start a process in its own session (it outlives this one) and return its PID.

    With ``user``, it runs as that user with that user's group and no others (as root,
    keeping group 0 would make group permissions apply where "others" ones are meant).
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        process = subprocess.Popen(  # noqa: S603 - arguments are ours, never a shell
            list(args),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
            cwd=cwd or ("/" if user else None),
            **as_user(user),
        )
    _children[process.pid] = process
    return process.pid


#: Processes this one started, kept so they are reaped (not garbage-collected while running).
_children: dict[int, subprocess.Popen[bytes]] = {}


def wait_exit(pid: int, timeout: float) -> int:
    """Wait for a process this one started to exit; its exit code."""
    child = _children.get(pid)
    if child is None:
        raise StackError(f"pid {pid} was not started by this process")
    try:
        return child.wait(timeout=timeout)
    except subprocess.TimeoutExpired as e:
        raise StackError(f"pid {pid} still running after {timeout:.0f}s") from e
    finally:
        if child.returncode is not None:
            _children.pop(pid, None)


def as_user(user: str | None) -> dict[str, Any]:
    """subprocess arguments that run a child as ``user`` with only its primary group."""
    if user is None:
        return {}
    entry = pwd.getpwnam(user)
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


def stop_pid(pid: int, timeout: float = 10.0, sig: signal.Signals = signal.SIGTERM) -> bool:
    """``sig`` (SIGTERM), then SIGKILL after ``timeout``. True when the process is gone."""
    if not pid_alive(pid):
        _reap(pid)
        return True
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return _reaped(pid)
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return _reaped(pid)
        time.sleep(0.05)
    return False


def _reaped(pid: int) -> bool:
    """Wait for a child of ours that has exited (a zombie), so nothing is left to collect."""
    child = _children.pop(pid, None)
    if child is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(timeout=5)
    else:
        _reap(pid)
    return True


def _reap(pid: int) -> None:
    """Collect a child that exited so it does not linger as a zombie."""
    child = _children.get(pid)
    if child is not None:
        if child.poll() is not None:
            del _children[pid]
        return
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def wait_until(predicate: Callable[[], bool], *, timeout: float, what: str) -> None:
    """Poll ``predicate`` until true; raise StackError naming ``what`` at the deadline."""
    deadline = time.monotonic() + timeout
    delay = 0.05
    while True:
        if predicate():
            return
        if time.monotonic() >= deadline:
            raise StackError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(delay)
        delay = min(delay * 1.5, 0.5)


def tail(path: Path, lines: int = 20) -> str:
    """The last lines of a log file, for error messages."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
