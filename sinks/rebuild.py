"""``scoreline rebuild redis``: the leaderboard projection rebuilt from Postgres, the truth.

Each board is written to a temporary key and then renamed over the live one, in one
MULTI/EXEC with its versions reset and its meta updated, so a reader sees the old board
or the new one, never a half-built one. The temporary key expires after an hour, so an
interrupted rebuild leaves nothing behind.

Versions: the rebuilt lines carry no version (the versions hash of the board is deleted),
so the next update the Redis sink reads for a member applies, whatever its number. The
Redis sink's stored positions are left alone: it goes on from where it was. Run a rebuild
with the Postgres sink caught up; a member whose newer update the Redis sink had already
applied, but Postgres not yet stored, shows the Postgres total until that member's next
update.

A full rebuild (no ``board_id``) also removes boards that Redis has and Postgres has not.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

import redis.asyncio as aioredis

from core.logging import get_logger
from sinks.redis import epoch_millis
from sinks.redis_layout import (
    board_key,
    boards_key,
    encode_score,
    meta_key,
    versions_key,
)

log = get_logger("rebuild.redis")

#: Seconds a temporary board lives if the rebuild dies before the swap.
TEMPORARY_TTL_S = 3600

Progress = Callable[[int, int], None]


async def rebuild_redis(
    pool: Any,
    redis: aioredis.Redis,
    prefix: str,
    board_id: str | None = None,
    progress: Progress | None = None,
    *,
    chunk_size: int = 5000,
) -> int:
    """Rebuild one board (or every board) from ``board_totals``; returns the lines written.

    ``progress(done, total)`` is called before the first line and after every chunk.
    Postgres is read in one repeatable-read snapshot, so all boards come from one state.
    """
    where, args = ("where board_id = $1", [board_id]) if board_id is not None else ("", [])
    token = uuid.uuid4().hex
    written = 0
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        total = int(await conn.fetchval(f"select count(*) from board_totals {where}", *args))  # noqa: S608
        boards = [
            r["board_id"]
            for r in await conn.fetch(
                f"select distinct board_id from board_totals {where} order by 1",  # noqa: S608
                *args,
            )
        ]
        if progress is not None:
            progress(0, total)
        for board in boards:
            temporary = f"{prefix}rebuild:{token}:{board}"
            newest: datetime | None = None
            cursor = await conn.cursor(
                "select member_id, total, exact_count, updated_at from board_totals "
                "where board_id = $1",
                board,
            )
            while rows := await cursor.fetch(chunk_size):
                lines = {r["member_id"]: encode_score(r["total"], r["exact_count"]) for r in rows}
                pipe = redis.pipeline(transaction=False)
                pipe.zadd(temporary, lines)
                pipe.expire(temporary, TEMPORARY_TTL_S)
                await pipe.execute()
                newest = max([newest, *(r["updated_at"] for r in rows)], key=_sortable)
                written += len(rows)
                if progress is not None:
                    progress(written, total)
            await _swap(redis, prefix, board, temporary, newest)
            log.info("rebuild.board", operation="rebuild", board_id=board, written=written)
    if board_id is not None and not boards:
        await _remove(redis, prefix, [board_id])
    elif board_id is None:
        present = {_text(b) for b in await redis.smembers(boards_key(prefix))}  # type: ignore[misc]
        await _remove(redis, prefix, sorted(present - set(boards)))
    return written


async def _swap(
    redis: aioredis.Redis, prefix: str, board: str, temporary: str, newest: datetime | None
) -> None:
    """Replace the live board by the rebuilt one, atomically."""
    live = board_key(prefix, board)
    pipe = redis.pipeline(transaction=True)
    pipe.rename(temporary, live)
    pipe.persist(live)  # RENAME carries the temporary key's TTL over
    pipe.delete(versions_key(prefix, board))
    if newest is not None:
        pipe.hset(meta_key(prefix, board), "updated_at", str(epoch_millis(newest)))
    pipe.sadd(boards_key(prefix), board)
    await pipe.execute()


async def _remove(redis: aioredis.Redis, prefix: str, boards: list[str]) -> None:
    """Delete boards Postgres does not have."""
    if not boards:
        return
    pipe = redis.pipeline(transaction=True)
    for board in boards:
        pipe.delete(board_key(prefix, board), versions_key(prefix, board), meta_key(prefix, board))
        pipe.srem(boards_key(prefix), board)
    await pipe.execute()
    log.info("rebuild.removed", operation="rebuild", boards=len(boards))


def _sortable(moment: datetime | None) -> float:
    return moment.timestamp() if moment is not None else float("-inf")


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value
