"""Scoreline roles as real processes, for end-to-end and crash tests."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.settings import Settings
from core.stack.process import free_port, pid_alive, stop_pid

SCORELINE = str(Path(sys.executable).parent / "scoreline")


def role_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment that points a role process at the test's components."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SCORELINE_", "KAFKA_", "DATABASE_", "REDIS_"))
    }
    assert settings.kafka_bootstrap_servers and settings.database_url and settings.redis_url
    env.update(
        KAFKA_BOOTSTRAP_SERVERS=settings.kafka_bootstrap_servers,
        DATABASE_URL=settings.database_url.get_secret_value(),
        REDIS_URL=settings.redis_url.get_secret_value(),
        SCORELINE_TOPIC_PREFIX=settings.topic_prefix,
        SCORELINE_REDIS_PREFIX=settings.redis_prefix,
        SCORELINE_IDLE_FETCH_BACKOFF_MS="50",
        SCORELINE_METRICS_PORT=str(free_port()),
        SCORELINE_LOG_LEVEL="INFO",
        SCORELINE_HOME=str(settings.home),
    )
    env.update(extra)
    return env


class Role:
    """One role process (``scoreline worker``, ``scoreline sinks``, ...), logging to a file."""

    def __init__(
        self,
        command: str,
        env: dict[str, str],
        log_dir: Path,
        *,
        args: tuple[str, ...] = (),
        name: str | None = None,
    ) -> None:
        self.command = command
        self.args = args
        self.env = env
        self.log_path = log_dir / f"{name or command}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        with open(self.log_path, "ab") as log:
            log.write(f"\n===== start {self.starts} =====\n".encode())
            self.process = subprocess.Popen(  # noqa: S603 - our own command
                [SCORELINE, self.command, *self.args],
                env={**self.env, "SCORELINE_METRICS_PORT": str(free_port())},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        if self.process is not None and pid_alive(self.process.pid):
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None:
            stop_pid(self.process.pid, timeout=15)
            self.process.wait(timeout=10)

    def tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


@dataclass(frozen=True)
class Run:
    """What a ``scoreline`` command run as an operator runs it ended with."""

    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)

    @property
    def out(self) -> str:
        """stdout with whitespace collapsed (rich wraps long lines)."""
        return " ".join(self.stdout.split())

    @property
    def err(self) -> str:
        return " ".join(self.stderr.split())


async def scoreline(settings: Settings, *args: str, timeout: float = 180) -> Run:
    """``scoreline ARGS`` as an operator runs it: its own process, its exit code."""
    process = await asyncio.create_subprocess_exec(
        SCORELINE,
        *args,
        env=role_env(settings, SCORELINE_LOG_LEVEL="WARNING", COLUMNS="200"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode is not None
    return Run(process.returncode, out.decode(), err.decode())
