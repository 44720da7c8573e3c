"""Alembic migrations: idempotent, reversible, and their constraints hold."""

from __future__ import annotations

import uuid
from decimal import Decimal

import asyncpg
import pytest
from alembic import command

from sinks.db import alembic_config, current_revision, head_revision, migrate


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


MARKETS_TABLES = {
    "markets",
    "bets",
    "entry_rejections",
    "settlements",
    "credit_ledger",
    "credit_balances",
}


async def _tables(database_url: str) -> set[str]:
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch("select tablename from pg_tables where schemaname = 'public'")
        return {r["tablename"] for r in rows}
    finally:
        await conn.close()


async def test_markets_migration_downgrades_and_upgrades_again(database_url: str) -> None:
    assert await _tables(database_url) >= MARKETS_TABLES
    try:
        command.downgrade(alembic_config(database_url), "0002")
        assert current_revision(database_url) == "0002"
        left = await _tables(database_url)
        assert not MARKETS_TABLES & left
        assert {"scores", "board_totals", "sink_offsets"} <= left
    finally:
        migrate(database_url)
    assert await _tables(database_url) >= MARKETS_TABLES
    assert current_revision(database_url) == head_revision(database_url)


async def test_a_credit_balance_stays_within_zero_and_the_cap(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        insert = "insert into credit_balances (member_id, balance) values ($1, $2)"
        await conn.execute(insert, "m-zero", Decimal("0.00"))
        await conn.execute(insert, "m-cap", Decimal("1000000.00"))
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute(insert, "m-below", Decimal("-0.01"))
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute(insert, "m-above", Decimal("1000000.01"))
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute(
                "update credit_balances set balance = balance - 0.01 where member_id = 'm-zero'"
            )
    finally:
        await conn.close()
