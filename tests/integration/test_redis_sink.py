"""The Redis sink against a real broker and Redis: absolute totals, versions, atomic offsets."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

import pytest
import redis.asyncio as aioredis

from core import kafka
from core.logging import get_logger
from core.settings import Settings
from core.topics import apply_topics
from schemas.catalog import DLQ_SINKS, LEADERBOARD_UPDATES, topic
from schemas.records import AvroRecord, DeadLetter, LeaderboardEntryChanged, Tiebreaker
from sinks.redis import CONSUMER, run_redis_sink
from sinks.redis_layout import (
    board_key,
    boards_key,
    decode_score,
    meta_key,
    offsets_key,
    versions_key,
)
from streams.rules.boards import EXACT_SCORES, BoardLine, rank_board
from tests.conftest import Services
from tests.integration.test_postgres_sink import KICKOFF, produce, read_all, running
from tests.support import eventually, unique

log = get_logger("test.sink.redis")


@pytest.fixture
async def topics(settings: Settings) -> None:
    admin = kafka.admin_client(settings)
    await admin.start()
    try:
        await apply_topics(admin, prefix=settings.topic_prefix)
    finally:
        await admin.close()


@pytest.fixture
async def redis(services: Services) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(services.redis, decode_responses=True)
    yield client
    await client.aclose()


def an_update(
    board: str, member: str, total: str, version: int, exact: int = 0
) -> LeaderboardEntryChanged:
    return LeaderboardEntryChanged(
        board_id=board,
        member_id=member,
        total=Decimal(total),
        tiebreakers=(Tiebreaker(name=EXACT_SCORES, value=Decimal(exact)),),
        version=version,
        updated_at=KICKOFF + timedelta(minutes=version),
    )


def keyed(
    updates: list[LeaderboardEntryChanged],
) -> list[tuple[bytes | None, bytes | AvroRecord]]:
    return [(u.board_id.encode(), u) for u in updates]


async def stored_offsets(redis: aioredis.Redis, prefix: str) -> int:
    positions = await redis.hgetall(offsets_key(prefix, CONSUMER))  # type: ignore[misc]
    return sum(int(v) for v in positions.values())


async def caught_up(redis: aioredis.Redis, prefix: str, end: int) -> None:
    async def done() -> bool:
        return await stored_offsets(redis, prefix) >= end

    await eventually(done, timeout=30, what=f"redis sink positions up to {end}")


async def board(
    redis: aioredis.Redis, prefix: str, board_id: str
) -> list[tuple[str, Decimal, int]]:
    lines = await redis.zrange(board_key(prefix, board_id), 0, -1, withscores=True)
    return [(member, *decode_score(score)) for member, score in lines]


async def test_absolute_totals_and_older_versions_are_ignored(
    settings: Settings, topics: None, redis: aioredis.Redis, redis_prefix: str
) -> None:
    b = unique("league:")
    updates = [
        an_update(b, "alice", "3.00", 1),
        an_update(b, "alice", "9.50", 3, exact=2),
        an_update(b, "alice", "6.00", 2, exact=1),  # older, read later: ignored
        an_update(b, "bob", "4.00", 1),
    ]
    sent = await produce(settings, LEADERBOARD_UPDATES, keyed(updates))
    async with running(run_redis_sink, settings):
        await caught_up(redis, redis_prefix, sent)
        assert await board(redis, redis_prefix, b) == [
            ("alice", Decimal("9.50"), 2),
            ("bob", Decimal("4.00"), 0),
        ]
        # The same updates again (a redelivery) and an older one: nothing moves.
        again = [*updates, an_update(b, "bob", "1.00", 0)]
        sent += await produce(settings, LEADERBOARD_UPDATES, keyed(again))
        await caught_up(redis, redis_prefix, sent)
    assert await board(redis, redis_prefix, b) == [
        ("alice", Decimal("9.50"), 2),
        ("bob", Decimal("4.00"), 0),
    ]
    assert await redis.hgetall(versions_key(redis_prefix, b)) == {"alice": "3", "bob": "1"}  # type: ignore[misc]
    assert await redis.smembers(boards_key(redis_prefix)) == {b}  # type: ignore[misc]
    meta = await redis.hgetall(meta_key(redis_prefix, b))  # type: ignore[misc]
    newest = KICKOFF + timedelta(minutes=3)
    assert int(meta["updated_at"]) == int(newest.timestamp() * 1000)


async def test_any_member_id_and_board_id_is_stored_as_it_is(
    settings: Settings, topics: None, redis: aioredis.Redis, redis_prefix: str
) -> None:
    """The batch reaches the script as JSON: quotes, escapes and non-ASCII survive it."""
    b = unique('league:"ä\\')
    members = ['a"b', "back\\slash", "new\nline", "tab\t", "ünï©ødé", "nul\x00", "1e3", "[]"]
    updates = [
        replace(an_update(b, m, f"{i}.25", i), version=2**40 + i) for i, m in enumerate(members)
    ]
    sent = await produce(settings, LEADERBOARD_UPDATES, keyed(updates))
    async with running(run_redis_sink, settings):
        await caught_up(redis, redis_prefix, sent)
    assert sorted(await board(redis, redis_prefix, b)) == sorted(
        (m, Decimal(f"{i}.25"), 0) for i, m in enumerate(members)
    )
    versions = await redis.hgetall(versions_key(redis_prefix, b))  # type: ignore[misc]
    assert versions == {m: str(2**40 + i) for i, m in enumerate(members)}
    assert await redis.smembers(boards_key(redis_prefix)) >= {b}  # type: ignore[misc]


async def test_offsets_are_stored_with_the_data_and_a_restart_resumes(
    settings: Settings, topics: None, redis: aioredis.Redis, redis_prefix: str
) -> None:
    b = unique("league:")
    first = [an_update(b, f"m{i}", f"{i}.00", 1) for i in range(20)]
    sent = await produce(settings, LEADERBOARD_UPDATES, keyed(first))
    async with running(run_redis_sink, settings):
        await caught_up(redis, redis_prefix, sent)
    name = topic(LEADERBOARD_UPDATES, settings.topic_prefix)
    positions = await redis.hgetall(offsets_key(redis_prefix, CONSUMER))  # type: ignore[misc]
    assert set(positions) <= {f"{name}:{p}" for p in range(4)}
    assert sum(int(v) for v in positions.values()) == sent

    # Written while the sink is down; a new sink resumes from the stored positions.
    second = [an_update(b, f"m{i}", f"{i + 100}.00", 2) for i in range(20)]
    sent += await produce(settings, LEADERBOARD_UPDATES, keyed(second))
    async with running(run_redis_sink, settings):
        await caught_up(redis, redis_prefix, sent)
    lines = await board(redis, redis_prefix, b)
    assert sorted(total for _, total, _ in lines) == [Decimal(i + 100) for i in range(20)]

    # A rewind (positions deleted: read everything again) changes nothing.
    await redis.delete(offsets_key(redis_prefix, CONSUMER))
    async with running(run_redis_sink, settings):
        await caught_up(redis, redis_prefix, sent)
    assert await board(redis, redis_prefix, b) == lines


async def test_board_order_equals_rank_board_order_for_ties(
    settings: Settings, topics: None, redis: aioredis.Redis, redis_prefix: str
) -> None:
    b = unique("tournament:")
    spec = [
        ("zoe", "10.00", 1),
        ("adam", "10.00", 1),
        ("mia", "10.00", 2),
        ("bob", "12.50", 0),
        ("Émile", "10.00", 1),
        ("carl", "-3.00", 0),
        ("dora", "0.00", 0),
        ("Zed", "10.00", 1),
    ]
    updates = [an_update(b, m, t, 1, exact=e) for m, t, e in spec]
    sent = await produce(settings, LEADERBOARD_UPDATES, keyed(updates))
    async with running(run_redis_sink, settings):
        await caught_up(redis, redis_prefix, sent)
    ranked = rank_board(BoardLine(m, Decimal(t), e) for m, t, e in spec)
    assert await board(redis, redis_prefix, b) == [
        (line.member_id, line.total, line.exact_count) for line in ranked
    ]


async def test_a_line_that_cannot_be_stored_goes_to_the_dlq(
    settings: Settings, topics: None, redis: aioredis.Redis, redis_prefix: str
) -> None:
    b = unique("league:")
    good = an_update(b, "ann", "5.00", 1)
    too_big = an_update(b, "bea", "99999999999999.00", 1)  # beyond the exact Redis score range
    fraction = LeaderboardEntryChanged(
        board_id=b,
        member_id="cid",
        total=Decimal("1.00"),
        tiebreakers=(Tiebreaker(name=EXACT_SCORES, value=Decimal("1.50")),),
        version=1,
        updated_at=KICKOFF,
    )
    after = an_update(b, "dan", "7.00", 1)
    sent = await produce(settings, LEADERBOARD_UPDATES, keyed([good, too_big, fraction, after]))
    async with running(run_redis_sink, settings):
        await caught_up(redis, redis_prefix, sent)
    assert [m for m, _, _ in await board(redis, redis_prefix, b)] == ["dan", "ann"]
    letters = await read_all(settings, DLQ_SINKS)
    headers = [DeadLetter.from_headers(m.headers) for m in letters]
    assert sorted(h.source_offset for h in headers) == [1, 2]
    assert {h.error_class for h in headers} == {"RecordRejectedError"}


async def test_throughput_of_100k_updates_is_measured(
    settings: Settings, topics: None, redis: aioredis.Redis, redis_prefix: str
) -> None:
    """Not a timing assertion: logs the rate of absolute totals applied to Redis."""
    boards = [unique("tournament:"), *(unique("league:") for _ in range(50))]
    updates = [
        an_update(boards[0] if i % 2 else boards[1 + i % 50], f"m{i % 20_000}", f"{i}.00", i)
        for i in range(100_000)
    ]
    sent = await produce(settings, LEADERBOARD_UPDATES, keyed(updates))
    started = time.perf_counter()
    async with running(run_redis_sink, settings):
        await caught_up(redis, redis_prefix, sent)
        elapsed = time.perf_counter() - started
    log.info(
        "bench.sink.redis",
        updates=sent,
        seconds=round(elapsed, 2),
        updates_per_s=round(sent / elapsed),
    )
    assert await redis.zcard(board_key(redis_prefix, boards[0])) == 10_000


async def test_an_idle_sink_does_not_spin(
    settings: Settings, topics: None, redis: aioredis.Redis, redis_prefix: str
) -> None:
    """The embedded broker answers fetches at once; the runner pauses between empty reads."""
    async with running(run_redis_sink, settings):
        # Not waiting for a condition: measuring the CPU of a fixed idle window is the point.
        await asyncio.sleep(1.5)  # started, and settled into its longest idle backoff
        cpu_before, wall_before = time.process_time(), time.perf_counter()
        await asyncio.sleep(3.0)
        cpu = time.process_time() - cpu_before
        wall = time.perf_counter() - wall_before
    log.info("bench.sink.idle", cpu_s=round(cpu, 3), wall_s=round(wall, 2))
    assert cpu / wall < 0.25, f"an idle sink used {cpu / wall:.0%} of a core"
