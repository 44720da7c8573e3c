"""Alembic migrations: idempotent, and the poll-execution state machine holds."""

from __future__ import annotations

import uuid

import asyncpg
import pytest

from sinks.db import current_revision, head_revision, migrate


def test_migrate_is_idempotent(database_url: str) -> None:
    assert current_revision(database_url) == head_revision(database_url)
    migrate(database_url)
    migrate(database_url)
    assert current_revision(database_url) == head_revision(database_url)


async def test_poll_execution_moves_only_forward(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        execution_id = uuid.uuid4()
        await conn.execute(
            "insert into poll_executions (execution_id, provider, feed) values ($1, $2, $3)",
            execution_id,
            "football",
            "events",
        )
        status = "update poll_executions set status = $2 where execution_id = $1"
        await conn.execute(status, execution_id, "in_progress")
        await conn.execute(status, execution_id, "completed")
        with pytest.raises(asyncpg.CheckViolationError, match="completed -> in_progress"):
            await conn.execute(status, execution_id, "in_progress")
        row = await conn.fetchrow(
            "select status from poll_executions where execution_id = $1", execution_id
        )
        assert row is not None and row["status"] == "completed"
    finally:
        await conn.close()


async def test_sink_offsets_has_one_row_per_consumer_partition(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        insert = (
            "insert into sink_offsets (consumer, topic, partition, next_offset) "
            "values ($1, $2, $3, $4)"
        )
        await conn.execute(insert, "sink.postgres", "scores", 0, 10)
        with pytest.raises(asyncpg.UniqueViolationError):
            await conn.execute(insert, "sink.postgres", "scores", 0, 11)
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute(insert, "sink.postgres", "scores", 1, -1)
    finally:
        await conn.close()
