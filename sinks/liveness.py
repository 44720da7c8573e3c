"""Liveness leases: "is a sink running?" answered by Postgres, kill -9 included.

The sinks are not members of a Kafka group (they assign their partitions and keep their
offsets with their data), so nothing in Kafka says whether one is running. A running sink
holds a *lease*: a Postgres session-level advisory lock, taken in shared mode on a
connection of its own for the life of the runner. Postgres drops it the moment that
connection ends, whether the process stopped, crashed or was killed with SIGKILL (the
kernel closes the socket; the backend exits and releases its locks).

An operator tool asks with :func:`exclusive_lease`: it takes the same lock in exclusive
mode without waiting. It gets it only when no sink holds the lease, and while it holds it
no sink can start (a starting sink waits for its shared lock, and only then loads its
offsets): an offsets reset done under the exclusive lease can neither race a running sink
nor be overwritten by one. Shared mode lets several instances of a sink (different
partitions) run at once.

If the lease connection breaks while the sink runs (a Postgres restart), the lease is
taken again in the background; the sink keeps running meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from core.logging import get_logger

log = get_logger("sinks.liveness")

#: How often a holder checks that its lease connection is still there.
CHECK_INTERVAL_S = 5.0

_HOLDERS_SQL = """
    select l.pid, l.mode, a.application_name, host(a.client_addr) as client_addr,
           a.backend_start
    from pg_locks l join pg_stat_activity a on a.pid = l.pid
    where l.locktype = 'advisory' and l.granted and l.objsubid = 1
      and l.database = (select oid from pg_database where datname = current_database())
      and l.classid::bigint = $1 and l.objid::bigint = $2
    order by a.backend_start
"""

_TRANSIENT = (asyncpg.PostgresConnectionError, asyncpg.InterfaceError, OSError, TimeoutError)


def sink_lease_name(sink_name: str, topic_prefix: str) -> str:
    """The lease of a sink reading the topics of one prefix (``sink.postgres@t1.``)."""
    return f"{sink_name}@{topic_prefix}"


def member_lease_name(group_id: str, instance_id: str) -> str:
    """The lease a static Kafka group member (``group.instance.id``) holds while it runs.

    A static member never leaves its group when it stops, so the group cannot say whether
    it is alive; this lease can (``scoreline offsets reset`` checks it).
    """
    return f"kafka-member:{group_id}:{instance_id}"


def group_lease_name(group_id: str) -> str:
    """The lease of a process that commits a Kafka group's offsets without joining the group.

    Such a process (it assigns its partitions, as the boards stage does, and commits with
    ``send_offsets_to_transaction``) leaves no member in the group: while it runs, it holds
    this lease so that operator tools see the group as active.
    """
    return f"kafka-group:{group_id}"


def lease_key(name: str) -> int:
    """The signed 64-bit advisory-lock key of a lease name (stable across processes)."""
    digest = hashlib.sha256(f"scoreline.lease:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _lock_ids(key: int) -> tuple[int, int]:
    """(classid, objid) of a bigint advisory key, as ``pg_locks`` shows them."""
    unsigned = key & 0xFFFF_FFFF_FFFF_FFFF
    return unsigned >> 32, unsigned & 0xFFFF_FFFF


@dataclass(frozen=True, slots=True)
class LeaseHolder:
    """A session holding a lease (a running sink, or an operator tool while it works)."""

    pid: int
    mode: str  # ShareLock: a running sink; ExclusiveLock: an operator tool
    application_name: str
    client_addr: str | None
    backend_start: datetime


async def lease_holders(conn: Any, name: str) -> list[LeaseHolder]:
    """Every session that holds the lease ``name`` now."""
    classid, objid = _lock_ids(lease_key(name))
    rows = await conn.fetch(_HOLDERS_SQL, classid, objid)
    return [
        LeaseHolder(
            pid=int(r["pid"]),
            mode=str(r["mode"]),
            application_name=str(r["application_name"] or ""),
            client_addr=r["client_addr"],
            backend_start=r["backend_start"],
        )
        for r in rows
    ]


@contextlib.asynccontextmanager
async def exclusive_lease(conn: Any, name: str) -> AsyncIterator[bool]:
    """Try to take lease ``name`` exclusively on ``conn``, without waiting.

    Yields True when no one held it (no sink runs, and none can start until the block
    ends), False when someone does. Released at the end of the block.
    """
    key = lease_key(name)
    acquired = bool(await conn.fetchval("select pg_try_advisory_lock($1)", key))
    try:
        yield acquired
    finally:
        if acquired:
            await conn.fetchval("select pg_advisory_unlock($1)", key)


class Lease:
    """A lease held in shared mode on a dedicated connection until :meth:`release`."""

    def __init__(self, database_url: str, name: str) -> None:
        self.database_url = database_url
        self.name = name
        self._conn: Any = None
        self._watch: asyncio.Task[None] | None = None

    @property
    def application_name(self) -> str:
        return f"scoreline lease {self.name} {socket.gethostname()}:{os.getpid()}"[:63]

    async def acquire(self, stop: asyncio.Event) -> bool:
        """Take the lease, retrying while Postgres is unreachable; False if ``stop`` is set."""
        delay = 0.2
        while not stop.is_set():
            try:
                await self._lock()
            except _TRANSIENT as e:
                log.warning("lease.retry", lease=self.name, delay_s=delay, error=str(e))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=delay)
                delay = min(delay * 2, 5.0)
                continue
            self._watch = asyncio.create_task(self._keep(stop))
            log.info("lease.acquired", lease=self.name)
            return True
        return False

    async def _lock(self) -> None:
        conn = await asyncpg.connect(
            self.database_url, server_settings={"application_name": self.application_name}
        )
        try:
            # Waits while an operator tool holds the lease exclusively (an offsets reset).
            await conn.execute("select pg_advisory_lock_shared($1)", lease_key(self.name))
        except BaseException:
            await conn.close()
            raise
        self._conn = conn

    async def _keep(self, stop: asyncio.Event) -> None:
        """Check the lease connection; take the lease again when it was lost."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=CHECK_INTERVAL_S)
            if stop.is_set():
                return
            try:
                await self._conn.fetchval("select 1")
                continue
            except _TRANSIENT as e:
                log.warning("lease.lost", lease=self.name, error=str(e))
            with contextlib.suppress(Exception):
                await self._conn.close()
            self._conn = None
            delay = 0.2
            while not stop.is_set() and self._conn is None:
                try:
                    await self._lock()
                    log.info("lease.reacquired", lease=self.name)
                except _TRANSIENT as e:
                    log.warning("lease.retry", lease=self.name, delay_s=delay, error=str(e))
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), timeout=delay)
                    delay = min(delay * 2, 5.0)

    async def release(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._watch
            self._watch = None
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.close()  # closing the session releases the lock
            self._conn = None
            log.info("lease.released", lease=self.name)


@contextlib.asynccontextmanager
async def holding_lease(database_url: str, name: str, stop: asyncio.Event) -> AsyncIterator[bool]:
    """Hold lease ``name`` for the block; yields False when ``stop`` was set before it was."""
    lease = Lease(database_url, name)
    try:
        yield await lease.acquire(stop)
    finally:
        await lease.release()
