"""`scoreline rebuild redis`: the projection rebuilt from Postgres equals what the sinks wrote."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator
from decimal import Decimal

import asyncpg
import pytest
import redis.asyncio as aioredis

from core import kafka
from core.settings import Settings
from core.topics import apply_topics
from schemas.catalog import LEADERBOARD_UPDATES, SCORES
from sinks.postgres import run_postgres_sink
from sinks.rebuild import rebuild_redis
from sinks.redis import run_redis_sink
from sinks.redis_layout import (
    board_key,
    boards_key,
    decode_score,
    encode_score,
    meta_key,
    versions_key,
)
from tests.conftest import Services
from tests.integration.test_postgres_sink import (
    caught_up,
    expected_totals,
    keyed,
    produce,
    running,
    some_scores,
)
from tests.integration.test_redis_sink import an_update
from tests.integration.test_redis_sink import caught_up as redis_caught_up
from tests.processes import SCORELINE, role_env
from tests.support import unique


@pytest.fixture
async def topics(settings: Settings) -> None:
    admin = kafka.admin_client(settings)
    await admin.start()
    try:
        await apply_topics(admin, prefix=settings.topic_prefix)
    finally:
        await admin.close()


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    connections = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    yield connections
    await connections.close()


@pytest.fixture
async def redis(services: Services) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(services.redis, decode_responses=True)
    yield client
    await client.aclose()


async def snapshot(
    redis: aioredis.Redis, prefix: str, boards: list[str]
) -> dict[str, list[tuple[str, float]]]:
    return {b: await redis.zrange(board_key(prefix, b), 0, -1, withscores=True) for b in boards}


async def fill(
    settings: Settings, pool: asyncpg.Pool, redis: aioredis.Redis, boards: list[str], n: int
) -> None:
    """Scores through the Postgres sink, their absolute totals through the Redis sink."""
    scores = some_scores(n, members=60, boards=boards)
    totals = expected_totals(scores)
    updates = [
        an_update(b, m, str(total), version=1, exact=exact)
        for (b, m), (total, exact) in totals.items()
    ]
    sent_scores = await produce(settings, SCORES, keyed(scores))
    sent_updates = await produce(
        settings, LEADERBOARD_UPDATES, [(u.board_id.encode(), u) for u in updates]
    )
    async with running(run_postgres_sink, settings), running(run_redis_sink, settings):
        await caught_up(pool, settings, SCORES, sent_scores)
        await redis_caught_up(redis, settings.redis_prefix, sent_updates)


async def test_rebuild_equals_what_the_sinks_wrote(
    settings: Settings, topics: None, pool: asyncpg.Pool, redis: aioredis.Redis, redis_prefix: str
) -> None:
    boards = [unique("tournament:"), unique("league:"), unique("league:")]
    await fill(settings, pool, redis, boards, 400)
    written_by_sinks = await snapshot(redis, redis_prefix, boards)
    assert all(written_by_sinks.values())

    # Damage the projection: a board lost, a line wrong, a board Postgres does not know.
    await redis.delete(board_key(redis_prefix, boards[0]))
    first = written_by_sinks[boards[1]][0][0]
    await redis.zadd(board_key(redis_prefix, boards[1]), {first: 0.0, "intruder": -1.0})
    stale = unique("league:")
    await redis.zadd(board_key(redis_prefix, stale), {"ghost": -100.0})
    await redis.sadd(boards_key(redis_prefix), stale)  # type: ignore[misc]

    calls: list[tuple[int, int]] = []
    written = await rebuild_redis(
        pool, redis, redis_prefix, progress=lambda done, total: calls.append((done, total))
    )

    # Other modules share the database: the rebuild covers every board in it.
    lines = await pool.fetchval("select count(*) from board_totals")
    assert written == lines
    assert calls[0] == (0, lines) and calls[-1] == (lines, lines)
    assert await snapshot(redis, redis_prefix, boards) == written_by_sinks
    assert await redis.exists(board_key(redis_prefix, stale)) == 0
    assert stale not in await redis.smembers(boards_key(redis_prefix))  # type: ignore[misc]
    assert set(boards) <= await redis.smembers(boards_key(redis_prefix))  # type: ignore[misc]
    for b in boards:
        assert await redis.ttl(board_key(redis_prefix, b)) == -1  # no TTL left from the swap
        assert await redis.exists(versions_key(redis_prefix, b)) == 0  # versions reset
        assert await redis.hget(meta_key(redis_prefix, b), "updated_at")  # type: ignore[misc]
    assert not [k async for k in redis.scan_iter(match=f"{redis_prefix}rebuild:*")]

    # Versions were reset: the next update for a member applies, whatever its version.
    member = written_by_sinks[boards[1]][0][0]
    update = an_update(boards[1], member, "1234.00", version=1, exact=0)
    sent = await produce(settings, LEADERBOARD_UPDATES, [(boards[1].encode(), update)])
    positions = await redis.hgetall(f"{redis_prefix}offsets:sink.redis")  # type: ignore[misc]
    async with running(run_redis_sink, settings):
        await redis_caught_up(redis, redis_prefix, sum(int(v) for v in positions.values()) + sent)
    score = await redis.zscore(board_key(redis_prefix, boards[1]), member)
    assert score == encode_score(Decimal("1234.00"), 0)


async def test_a_board_is_swapped_atomically_and_alone(
    settings: Settings, topics: None, pool: asyncpg.Pool, redis: aioredis.Redis, redis_prefix: str
) -> None:
    boards = [unique("tournament:"), unique("league:")]
    target = boards[0]
    rows = [(target, f"m{i:03}", Decimal(i), i % 3) for i in range(300)]
    await pool.executemany(
        "insert into board_totals (board_id, member_id, total, exact_count) "
        "values ($1, $2, $3, $4)",
        rows,
    )
    old = {f"old{i}": -float(i) for i in range(50)}
    await redis.zadd(board_key(redis_prefix, target), old)
    other = {"x": -1.0, "y": -2.0}
    await redis.zadd(board_key(redis_prefix, boards[1]), other)
    expected = [
        (m, encode_score(t, e)) for _, m, t, e in sorted(rows, key=lambda r: (-r[2], -r[3], r[1]))
    ]

    seen: list[list[tuple[str, float]]] = []
    done = asyncio.Event()

    async def reader() -> None:
        while not done.is_set():
            seen.append(await redis.zrange(board_key(redis_prefix, target), 0, -1, withscores=True))
            await asyncio.sleep(0)

    watching = asyncio.create_task(reader())
    written = await rebuild_redis(pool, redis, redis_prefix, board_id=target, chunk_size=10)
    done.set()
    await watching

    assert written == len(rows)
    old_board = sorted(((m, s) for m, s in old.items()), key=lambda p: (p[1], p[0]))
    assert len(seen) > 3, "the reader ran while the rebuild wrote its chunks"
    assert {len(s) for s in seen} <= {len(old), len(rows)}
    assert all(s in (old_board, expected) for s in seen)
    assert await redis.zrange(board_key(redis_prefix, target), 0, -1, withscores=True) == expected
    assert await redis.zrange(board_key(redis_prefix, boards[1]), 0, -1, withscores=True) == [
        ("y", -2.0),
        ("x", -1.0),
    ]


async def test_the_rebuild_command_fills_redis_from_postgres(settings: Settings) -> None:
    assert settings.database_url is not None and settings.redis_url is not None
    conn = await asyncpg.connect(settings.database_url.get_secret_value())
    try:
        await conn.execute("delete from board_totals where board_id = 'league:cli'")
        await conn.executemany(
            "insert into board_totals (board_id, member_id, total, exact_count) "
            "values ('league:cli', $1, $2, $3)",
            [("m1", Decimal("7.00"), 1), ("m2", Decimal("3.50"), 0)],
        )
    finally:
        await conn.close()
    done = subprocess.run(  # noqa: S603 - our own command
        [SCORELINE, "rebuild", "redis", "--board", "league:cli"],
        env=role_env(settings),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "2 lines written" in done.stdout
    client = aioredis.Redis.from_url(settings.redis_url.get_secret_value(), decode_responses=True)
    try:
        key = board_key(settings.redis_prefix, "league:cli")
        lines = await client.zrange(key, 0, -1, withscores=True)
    finally:
        await client.aclose()
    assert [(m, decode_score(s)) for m, s in lines] == [
        ("m1", (Decimal("7.00"), 1)),
        ("m2", (Decimal("3.50"), 0)),
    ]
