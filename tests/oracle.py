"""Read what Postgres, Redis and the scores topic hold, as boards comparable to the oracle."""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable
from decimal import Decimal
from typing import cast

import asyncpg
import redis.asyncio as aioredis
from aiokafka import TopicPartition

from core.kafka import consumer
from core.settings import Settings
from schemas.catalog import SCORES, spec, topic
from schemas.codec import AvroCodec
from schemas.records import ScoreAwarded
from sinks.redis_layout import board_key, boards_key, decode_score
from streams.rules.boards import BoardLine

Boards = dict[str, dict[str, BoardLine]]


async def postgres_boards(database_url: str) -> Boards:
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch("select board_id, member_id, total, exact_count from board_totals")
    finally:
        await conn.close()
    boards: Boards = {}
    for row in rows:
        line = BoardLine(row["member_id"], Decimal(row["total"]), row["exact_count"])
        boards.setdefault(row["board_id"], {})[row["member_id"]] = line
    return boards


async def redis_boards(redis_url: str, prefix: str) -> Boards:
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    try:
        boards: Boards = {}
        members = await cast(Awaitable[set[str]], client.smembers(boards_key(prefix)))
        for board_id in sorted(members):
            lines = await client.zrange(board_key(prefix, board_id), 0, -1, withscores=True)
            for member_id, score in lines:
                total, exact = decode_score(score)
                boards.setdefault(board_id, {})[member_id] = BoardLine(member_id, total, exact)
        return boards
    finally:
        await client.aclose()


async def scores_topic(settings: Settings) -> tuple[Boards, Counter[str]]:
    """Boards summed from ``scores`` read_committed to its end, and each key's count."""
    codec = AvroCodec.from_settings(settings)
    reader = consumer(settings)
    await reader.start()
    try:
        tps = [
            TopicPartition(topic(SCORES, settings.topic_prefix), p)
            for p in range(spec(SCORES).partitions)
        ]
        reader.assign(tps)
        await reader.seek_to_beginning(*tps)
        ends = await reader.end_offsets(tps)
        sums: dict[str, dict[str, tuple[Decimal, int]]] = {}
        keys: Counter[str] = Counter()
        while [tp for tp in tps if await reader.position(tp) < ends[tp]]:
            batch = await reader.getmany(timeout_ms=1000, max_records=20_000)
            for records in batch.values():
                for record in records:
                    award = codec.decode(record.value or b"")
                    assert isinstance(award, ScoreAwarded)
                    keys[award.idempotency_key] += 1
                    for board in award.board_ids:
                        total, exact = sums.setdefault(board, {}).get(
                            award.member_id, (Decimal("0.00"), 0)
                        )
                        sums[board][award.member_id] = (
                            total + award.points_delta,
                            exact + award.exact_delta,
                        )
        boards = {
            board: {m: BoardLine(m, t, e) for m, (t, e) in lines.items()}
            for board, lines in sums.items()
        }
        return boards, keys
    finally:
        await reader.stop()
        codec.close()


def nonzero(boards: Boards) -> Boards:
    """Boards without 0 lines (a guess superseded after scoring may leave one)."""
    kept = {
        board: {m: line for m, line in lines.items() if line.total or line.exact_count}
        for board, lines in boards.items()
    }
    return {board: lines for board, lines in kept.items() if lines}


def differences(actual: Boards, expected: Boards, limit: int = 10) -> list[str]:
    """A few lines that differ, for a readable assertion message."""
    out = []
    for board in sorted(set(actual) | set(expected)):
        a, e = actual.get(board, {}), expected.get(board, {})
        for member in sorted(set(a) | set(e)):
            if a.get(member) != e.get(member):
                out.append(f"{board} {member}: got {a.get(member)} want {e.get(member)}")
                if len(out) >= limit:
                    return out
    return out
