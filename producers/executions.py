"""The pollers' bookkeeping in Postgres: poll executions and provider match state.

Poll executions: one row per poll run, a small state machine.

``queued -> in_progress -> completed | failed`` (``cancelled`` is allowed by the trigger of
migration 0001, which rejects any other move with a ``check_violation``; that surfaces
here as :class:`ExecutionTransitionError`). :meth:`PollExecutions.start` inserts the row
queued and then moves it to in_progress, so ``queued_at``/``started_at`` both hold.
``provider_match_state`` (:class:`MatchStateStore`): what a poller last published per
match, so an unchanged payload publishes nothing across restarts.
Connection failures become :class:`ProducerStateUnavailableError` (transient).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

from producers.exceptions import ExecutionTransitionError, ProducerStateUnavailableError
from producers.normalize import ProviderMatchState
from schemas.records import MatchStatus

#: The longest error text stored (the full one is in the logs).
MAX_ERROR_CHARS = 2000


@asynccontextmanager
async def translated_errors(what: str) -> AsyncIterator[None]:
    """Driver errors as the producers' own: unreachable -> transient."""
    try:
        yield
    except (asyncpg.PostgresConnectionError, asyncpg.InterfaceError, OSError) as e:
        raise ProducerStateUnavailableError(f"{what}: {type(e).__name__}: {e}") from e


class PollExecutions:
    """Tracks poll runs in ``poll_executions``."""

    def __init__(self, pool: Any) -> None:
        self._pool = pool

    async def start(self, provider: str, feed: str) -> uuid.UUID:
        """A new execution, queued then in progress; its id."""
        execution_id = uuid.uuid4()
        async with translated_errors("poll execution start"), self._pool.acquire() as conn:
            await conn.execute(
                "insert into poll_executions (execution_id, provider, feed, status) "
                "values ($1, $2, $3, 'queued')",
                execution_id,
                provider,
                feed,
            )
            await self._move(conn, execution_id, "in_progress")
        return execution_id

    async def complete(
        self, execution_id: uuid.UUID, fetched_count: int, published_count: int
    ) -> None:
        async with translated_errors("poll execution complete"), self._pool.acquire() as conn:
            await self._move(
                conn,
                execution_id,
                "completed",
                fetched_count=fetched_count,
                published_count=published_count,
            )

    async def fail(
        self,
        execution_id: uuid.UUID,
        error: str,
        *,
        fetched_count: int = 0,
        published_count: int = 0,
    ) -> None:
        async with translated_errors("poll execution fail"), self._pool.acquire() as conn:
            await self._move(
                conn,
                execution_id,
                "failed",
                fetched_count=fetched_count,
                published_count=published_count,
                error=error[:MAX_ERROR_CHARS],
            )

    async def cancel(self, execution_id: uuid.UUID) -> None:
        """The run was stopped before it could finish (shutdown)."""
        async with translated_errors("poll execution cancel"), self._pool.acquire() as conn:
            await self._move(conn, execution_id, "cancelled")

    async def status(self, execution_id: uuid.UUID) -> str | None:
        async with translated_errors("poll execution status"), self._pool.acquire() as conn:
            value = await conn.fetchval(
                "select status::text from poll_executions where execution_id = $1",
                execution_id,
            )
        return None if value is None else str(value)

    @staticmethod
    async def _move(
        conn: Any,
        execution_id: uuid.UUID,
        status: str,
        *,
        fetched_count: int | None = None,
        published_count: int | None = None,
        error: str | None = None,
    ) -> None:
        try:
            result = await conn.execute(
                _MOVE, execution_id, status, fetched_count, published_count, error
            )
        except asyncpg.CheckViolationError as e:
            raise ExecutionTransitionError(str(e)) from e
        if result != "UPDATE 1":
            raise ExecutionTransitionError(f"poll execution {execution_id} does not exist")


_MOVE = """
update poll_executions set
    status = $2::poll_status,
    started_at = case when $2::poll_status = 'in_progress' then now() else started_at end,
    finished_at = case when $2::poll_status in ('completed', 'failed', 'cancelled') then now()
                       else finished_at end,
    fetched_count = coalesce($3::integer, fetched_count),
    published_count = coalesce($4::integer, published_count),
    error = coalesce($5::text, error)
where execution_id = $1
"""


class MatchStateStore:
    """``provider_match_state``: what was last published per match."""

    def __init__(self, pool: Any) -> None:
        self._pool = pool

    async def load(self, provider: str, match_ids: Iterable[str]) -> dict[str, ProviderMatchState]:
        async with translated_errors("match state load"), self._pool.acquire() as conn:
            rows = await conn.fetch(
                "select match_id, payload_sha256, status, home_score, away_score, "
                "result_version, provider_version from provider_match_state "
                "where provider = $1 and match_id = any($2::text[])",
                provider,
                sorted(set(match_ids)),
            )
        return {
            row["match_id"]: ProviderMatchState(
                provider=provider,
                match_id=row["match_id"],
                payload_sha256=row["payload_sha256"],
                status=MatchStatus(row["status"]),
                home_score=row["home_score"],
                away_score=row["away_score"],
                result_version=row["result_version"],
                provider_version=row["provider_version"],
            )
            for row in rows
        }

    async def save(self, states: Iterable[ProviderMatchState]) -> None:
        rows = [
            (
                s.provider,
                s.match_id,
                s.payload_sha256,
                s.status.value,
                s.home_score,
                s.away_score,
                s.result_version,
                s.provider_version,
            )
            for s in states
        ]
        if not rows:
            return
        async with translated_errors("match state save"), self._pool.acquire() as conn:
            await conn.executemany(
                "insert into provider_match_state (provider, match_id, payload_sha256, status, "
                "home_score, away_score, result_version, provider_version) "
                "values ($1, $2, $3, $4, $5, $6, $7, $8) "
                "on conflict (provider, match_id) do update set "
                "payload_sha256 = excluded.payload_sha256, status = excluded.status, "
                "home_score = excluded.home_score, away_score = excluded.away_score, "
                "result_version = excluded.result_version, "
                "provider_version = excluded.provider_version, updated_at = now()",
                rows,
            )
