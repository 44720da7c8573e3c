"""Reading boards: Redis first, Postgres when Redis lacks the board or does not answer.

Both sources give the same lines, ranks and cursors (``api.models.Cursor``) for the same data:

- Order: total desc, exact-score count desc, member id ascending (bytewise): ascending
  ``ZRANGE`` in Redis (``sinks/redis_layout.py``), ``board_totals_order`` in Postgres.
- Ranks are standard competition ranks (1, 2, 2, 4), absolute on every page: the first line
  of a window gets ``1 + (lines strictly better)`` (``ZCOUNT key -inf (score`` in Redis, a
  count in Postgres); each later line either ties the one before or sits at its absolute
  position plus one.
- A cursor is the last line's key (total, exact count, member id), so a page continues
  strictly after it even while the board changes (keyset pagination), and a cursor from
  one source works on the other.
- Each window is read consistently: in Redis under WATCH (a write in between retries the
  read), in Postgres in one read-only REPEATABLE READ transaction.

A Redis that does not answer trips a short circuit: the next requests go straight to Postgres.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import asyncpg
import redis.asyncio as aioredis
from prometheus_client import Counter
from redis.exceptions import WatchError

from api.errors import (
    BoardNotFoundError,
    LeagueTokenInvalidError,
    LeagueTokenRequiredError,
    MemberNotFoundError,
    StorageUnavailableError,
)
from api.models import Cursor, Source
from core.logging import get_logger
from sinks.redis_layout import board_key, boards_key, decode_score, encode_score
from streams.rules.boards import BoardLine, RankedLine

log = get_logger("api.boards")

T = TypeVar("T")

REDIS_FALLBACKS = Counter(
    "scoreline_api_redis_fallbacks_total",
    "Board reads answered from Postgres although Redis was asked first, by reason.",
    ["reason"],
)

#: Reads of one window retried when a write lands between WATCH and EXEC.
WATCH_ATTEMPTS = 5
#: How long the API skips Redis after it failed to answer.
REDIS_COOLDOWN_S = 2.0

_LEAGUE_PREFIX = "league:"
_TOURNAMENT_PREFIX = "tournament:"

_LINES = "select member_id, total, exact_count from board_totals where board_id = $1"
_ORDER = 'order by total desc, exact_count desc, member_id collate "C"'
_AFTER = (
    "(total < $2 or (total = $2 and (exact_count < $3 or "
    '(exact_count = $3 and member_id collate "C" > $4))))'
)
_BEFORE = (
    "(total > $2 or (total = $2 and (exact_count > $3 or "
    '(exact_count = $3 and member_id collate "C" < $4))))'
)
_PG_FIRST = f"{_LINES} {_ORDER} limit $2"
_PG_AFTER = f"{_LINES} and {_AFTER} {_ORDER} limit $5"
_PG_BEFORE = (
    f'{_LINES} and {_BEFORE} order by total, exact_count, member_id collate "C" desc limit $5'
)
_PG_MEMBER = f"{_LINES} and member_id = $2"
_PG_POSITION = """
    select count(*) filter (where total > $2 or (total = $2 and exact_count > $3)) as better,
           count(*) filter (where total = $2 and exact_count = $3
                            and member_id collate "C" < $4) as ties_before
    from board_totals where board_id = $1 and total >= $2
"""
_PG_BOARD_EXISTS = "select exists(select 1 from board_totals where board_id = $1)"
_PG_LEAGUE = "select private, access_token_sha256 from leagues where league_id = $1"
_PG_TOURNAMENT_EXISTS = "select exists(select 1 from matches where tournament_id = $1)"


@asynccontextmanager
async def postgres_connection(pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Connection]:
    """A pooled connection; Postgres not answering is a 503, never a 500."""
    try:
        async with pool.acquire(timeout=5) as conn:
            yield conn
    except (OSError, TimeoutError, asyncpg.PostgresConnectionError) as e:
        log.error("api.postgres_unavailable", error=f"{type(e).__name__}: {e}")
        raise StorageUnavailableError("Postgres does not answer; try again") from e


@dataclass(frozen=True, slots=True)
class BoardPage:
    source: Source
    lines: list[RankedLine]
    next_cursor: Cursor | None


@dataclass(frozen=True, slots=True)
class Standing:
    source: Source
    line: RankedLine
    neighbours: list[RankedLine]


@dataclass(frozen=True, slots=True)
class _Window:
    """Consecutive lines of a board: ``start`` lines come before, ``better`` rank above."""

    lines: list[BoardLine]
    start: int
    better: int

    def ranked(self) -> list[RankedLine]:
        out: list[RankedLine] = []
        for offset, line in enumerate(self.lines):
            prev = out[-1] if out else None
            if prev is None:
                rank = self.better + 1
            elif (prev.total, prev.exact_count) == (line.total, line.exact_count):
                rank = prev.rank
            else:
                rank = self.start + offset + 1
            out.append(RankedLine(rank, line.member_id, line.total, line.exact_count))
        return out


class _MemberMissing:
    """Redis holds the board but not the member."""


class _CorruptBoardError(Exception):
    """A sorted set holds something that is not a board line."""


class _ContendedError(Exception):
    """Writes kept landing between WATCH and EXEC."""


class RedisCircuit:
    """Skip Redis for a while after it failed to answer."""

    def __init__(self, cooldown_s: float = REDIS_COOLDOWN_S) -> None:
        self._cooldown_s = cooldown_s
        self._open_until = 0.0

    def is_open(self) -> bool:
        return time.monotonic() < self._open_until

    def trip(self) -> None:
        self._open_until = time.monotonic() + self._cooldown_s


async def _aw(value: Any) -> Any:
    """redis-py types commands as ``Awaitable | Any``; on the asyncio client they are awaited."""
    return await value


def _exclusive(score: float) -> str:
    return f"({score!r}"


def _decode_row(member: bytes, score: float) -> BoardLine:
    try:
        total, exact_count = decode_score(score)
        return BoardLine(member.decode("utf-8"), total, exact_count)
    except ValueError as e:
        raise _CorruptBoardError(f"{member!r} -> {score!r}") from e


def _line(row: asyncpg.Record) -> BoardLine:
    return BoardLine(row["member_id"], row["total"], row["exact_count"])


class BoardReader:
    """One request's view of the boards: Redis first, Postgres as the fallback and truth."""

    def __init__(
        self, pool: asyncpg.Pool, redis: aioredis.Redis, prefix: str, circuit: RedisCircuit
    ) -> None:
        self._pool = pool
        self._redis = redis
        self._prefix = prefix
        self._circuit = circuit

    # -- the three questions ---------------------------------------------------------

    async def authorize(self, board_id: str, token: str | None) -> None:
        """Raise unless the board is public or ``token`` opens its private league."""
        if not board_id.startswith(_LEAGUE_PREFIX):
            return
        async with self._connection() as conn:
            league = await conn.fetchrow(_PG_LEAGUE, board_id.removeprefix(_LEAGUE_PREFIX))
        if league is None or not league["private"]:
            return
        if token is None:
            raise LeagueTokenRequiredError(board_id)
        given = hashlib.sha256(token.encode("utf-8")).hexdigest().encode("ascii")
        expected = str(league["access_token_sha256"]).strip().lower().encode("utf-8")
        if not hmac.compare_digest(given, expected):
            raise LeagueTokenInvalidError(board_id)

    async def page(self, board_id: str, limit: int, cursor: Cursor | None) -> BoardPage:
        """Up to ``limit`` lines after ``cursor`` (from the top without one)."""
        key = board_key(self._prefix, board_id)
        window = await self._try_redis(board_id, lambda: self._redis_page(key, limit, cursor))
        source: Source = "redis"
        if window is None:
            source = "postgres"
            window = await self._postgres_page(board_id, limit, cursor)
            if not window.lines and not await self._known(board_id):
                raise BoardNotFoundError(board_id)
        ranked = window.ranked()
        more = len(ranked) > limit
        lines = ranked[:limit]
        return BoardPage(source, lines, Cursor.after(lines[-1]) if more else None)

    async def standing(self, board_id: str, member_id: str, around: int) -> Standing:
        """The member's line with up to ``around`` lines above and below."""
        key = board_key(self._prefix, board_id)
        found = await self._try_redis(
            board_id, lambda: self._redis_standing(key, member_id, around)
        )
        source: Source = "redis"
        if isinstance(found, _MemberMissing):
            raise MemberNotFoundError(board_id, member_id)
        if found is None:
            source = "postgres"
            found = await self._postgres_standing(board_id, member_id, around)
            if found is None:
                if await self._known(board_id):
                    raise MemberNotFoundError(board_id, member_id)
                raise BoardNotFoundError(board_id)
        ranked = found.ranked()
        line = next(line for line in ranked if line.member_id == member_id)
        return Standing(source, line, ranked)

    # -- Redis -------------------------------------------------------------------------

    async def _try_redis(self, board_id: str, read: Callable[[], Awaitable[T]]) -> T | None:
        """``read()``, or None when Postgres must answer instead (logged and counted)."""
        if self._circuit.is_open():
            REDIS_FALLBACKS.labels("circuit_open").inc()
            return None
        try:
            return await read()
        except (aioredis.ConnectionError, aioredis.TimeoutError, OSError, TimeoutError) as e:
            self._circuit.trip()
            reason = "unavailable"
            detail = f"{type(e).__name__}: {e}"
        except (aioredis.RedisError, _CorruptBoardError, _ContendedError) as e:
            reason = "contended" if isinstance(e, _ContendedError) else "unreadable"
            detail = f"{type(e).__name__}: {e}"
        REDIS_FALLBACKS.labels(reason).inc()
        log.warning("api.redis_fallback", board_id=board_id, reason=reason, detail=detail)
        return None

    async def _watched(self, key: str, read: Callable[[Any], Awaitable[T]]) -> T:
        """``read(pipe)`` under WATCH; read again when a write to ``key`` lands meanwhile."""
        for _ in range(WATCH_ATTEMPTS):
            async with self._redis.pipeline(transaction=True) as pipe:
                await pipe.watch(key)
                result = await read(pipe)
                watching: Any = pipe  # redis-py leaves multi() untyped
                watching.multi()
                watching.zcard(key)  # EXEC fails if `key` changed since WATCH
                try:
                    await watching.execute()
                except WatchError:
                    continue
            return result
        raise _ContendedError(key)

    async def _redis_page(self, key: str, limit: int, cursor: Cursor | None) -> _Window | None:
        async def read(pipe: Any) -> _Window | None:
            if not await _aw(pipe.zcard(key)):
                return None  # absent: Redis deletes an empty sorted set
            start = 0 if cursor is None else await _position_after(pipe, key, cursor)
            rows = await _aw(pipe.zrange(key, start, start + limit, withscores=True))
            better = await _aw(pipe.zcount(key, "-inf", _exclusive(rows[0][1]))) if rows else 0
            return _Window([_decode_row(m, s) for m, s in rows], start, int(better))

        return await self._watched(key, read)

    async def _redis_standing(
        self, key: str, member_id: str, around: int
    ) -> _Window | _MemberMissing | None:
        async def read(pipe: Any) -> _Window | _MemberMissing | None:
            if not await _aw(pipe.zcard(key)):
                return None
            index = await _aw(pipe.zrank(key, member_id))
            if index is None:
                return _MemberMissing()
            start = max(0, int(index) - around)
            rows = await _aw(pipe.zrange(key, start, int(index) + around, withscores=True))
            better = await _aw(pipe.zcount(key, "-inf", _exclusive(rows[0][1])))
            return _Window([_decode_row(m, s) for m, s in rows], start, int(better))

        return await self._watched(key, read)

    # -- Postgres ----------------------------------------------------------------------

    def _connection(self) -> AbstractAsyncContextManager[asyncpg.Connection]:
        return postgres_connection(self._pool)

    @asynccontextmanager
    async def _snapshot(self) -> AsyncIterator[asyncpg.Connection]:
        async with (
            self._connection() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            yield conn

    async def _postgres_page(self, board_id: str, limit: int, cursor: Cursor | None) -> _Window:
        async with self._snapshot() as conn:
            if cursor is None:
                rows = await conn.fetch(_PG_FIRST, board_id, limit + 1)
            else:
                key = (cursor.total, cursor.exact_count, cursor.member_id)
                rows = await conn.fetch(_PG_AFTER, board_id, *key, limit + 1)
            lines = [_line(row) for row in rows]
            return await _postgres_window(conn, board_id, lines)

    async def _postgres_standing(
        self, board_id: str, member_id: str, around: int
    ) -> _Window | None:
        async with self._snapshot() as conn:
            row = await conn.fetchrow(_PG_MEMBER, board_id, member_id)
            if row is None:
                return None
            me = _line(row)
            key = (me.total, me.exact_count, me.member_id)
            above = await conn.fetch(_PG_BEFORE, board_id, *key, around)
            below = await conn.fetch(_PG_AFTER, board_id, *key, around)
            lines = [*(_line(r) for r in reversed(above)), me, *(_line(r) for r in below)]
            return await _postgres_window(conn, board_id, lines)

    async def _known(self, board_id: str) -> bool:
        """Whether a board with no lines exists: listed in Redis, or known to Postgres."""
        listed = boards_key(self._prefix)
        if await self._try_redis(board_id, lambda: _aw(self._redis.sismember(listed, board_id))):
            return True
        async with self._connection() as conn:
            if await conn.fetchval(_PG_BOARD_EXISTS, board_id):
                return True
            if board_id.startswith(_LEAGUE_PREFIX):
                league = board_id.removeprefix(_LEAGUE_PREFIX)
                return await conn.fetchrow(_PG_LEAGUE, league) is not None
            if board_id.startswith(_TOURNAMENT_PREFIX):
                tournament = board_id.removeprefix(_TOURNAMENT_PREFIX)
                return bool(await conn.fetchval(_PG_TOURNAMENT_EXISTS, tournament))
        return False


async def _position_after(pipe: Any, key: str, cursor: Cursor) -> int:
    """Index of the first line strictly after ``cursor`` in board order (under WATCH)."""
    score = encode_score(cursor.total, cursor.exact_count)
    member = cursor.member_id.encode("utf-8")
    if await _aw(pipe.zscore(key, member)) == score:  # the usual case: the line is still there
        return int(await _aw(pipe.zrank(key, member))) + 1
    # The line moved or left: binary search its place in the run of equal scores.
    low = int(await _aw(pipe.zcount(key, "-inf", _exclusive(score))))
    high = low + int(await _aw(pipe.zcount(key, score, score)))
    while low < high:
        middle = (low + high) // 2
        (probe,) = await _aw(pipe.zrange(key, middle, middle))
        if probe <= member:
            low = middle + 1
        else:
            high = middle
    return low


async def _postgres_window(
    conn: asyncpg.Connection, board_id: str, lines: Sequence[BoardLine]
) -> _Window:
    if not lines:
        return _Window([], 0, 0)
    first = lines[0]
    position = await conn.fetchrow(
        _PG_POSITION, board_id, first.total, first.exact_count, first.member_id
    )
    better = int(position["better"])
    return _Window(list(lines), better + int(position["ties_before"]), better)
