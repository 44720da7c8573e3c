"""The Postgres sink against a real broker and database: exactly-once effects, DLQ, versions.

Each test has its own topics (prefix) and ids; the module shares one database.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from core import kafka
from core.exceptions import SchemaDecodeError
from core.logging import get_logger
from core.settings import Settings
from core.topics import apply_topics
from schemas.catalog import (
    DLQ_SINKS,
    ENTRIES_PREDICTIONS,
    FIXTURES_MATCHES,
    LEADERBOARD_UPDATES,
    RULES,
    SCORES,
    topic,
)
from schemas.codec import AvroCodec
from schemas.fast_decode import RecordDecoder
from schemas.records import (
    AvroRecord,
    DeadLetter,
    Game,
    LeaderboardEntryChanged,
    MatchStatus,
    MatchUpdated,
    PredictionPlaced,
    RuleSet,
    ScoreAwarded,
    Tiebreaker,
)
from sinks.base import RunnerConfig
from sinks.postgres import CONSUMER, run_postgres_sink
from tests.support import eventually, unique

log = get_logger("test.sink.postgres")
ROOT = Path(__file__).resolve().parents[2]
KICKOFF = datetime(2026, 5, 1, 18, 0, tzinfo=UTC)

Runner = Callable[..., Coroutine[Any, Any, None]]


# -- shared helpers (the Redis and rebuild tests import them) -------------------------


@pytest.fixture
async def topics(settings: Settings) -> None:
    """Every catalog topic, created under this test's prefix."""
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


async def produce(
    settings: Settings,
    logical_topic: str,
    records: Iterable[tuple[bytes | None, bytes | AvroRecord]],
) -> int:
    """Send (key, value) pairs to the prefixed topic; values are encoded for it."""
    codec = AvroCodec()
    producer = kafka.producer(settings, linger_ms=20, max_batch_size=256 * 1024)
    await producer.start()
    count = 0
    try:
        name = topic(logical_topic, settings.topic_prefix)
        pending = []
        for key, value in records:
            data = value if isinstance(value, bytes) else codec.encode(value, logical_topic)
            pending.append(await producer.send(name, value=data, key=key))
            count += 1
            if len(pending) >= 5000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return count


@contextlib.asynccontextmanager
async def running(
    run: Runner, settings: Settings, config: RunnerConfig | None = None
) -> AsyncIterator[asyncio.Task[None]]:
    """Run a sink entrypoint in a task; stop it (promptly) on exit."""
    stop = asyncio.Event()
    task = asyncio.create_task(run(settings, stop, config=config))
    try:
        yield task
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=15)


async def end_offsets(settings: Settings, logical_topic: str) -> dict[int, int]:
    consumer = kafka.consumer(settings)
    await consumer.start()
    try:
        from aiokafka import TopicPartition

        name = topic(logical_topic, settings.topic_prefix)
        partitions = [TopicPartition(name, p) for p in consumer.partitions_for_topic(name)]
        ends = await consumer.end_offsets(partitions)
        return {tp.partition: offset for tp, offset in ends.items()}
    finally:
        await consumer.stop()


async def read_all(settings: Settings, logical_topic: str) -> list[Any]:
    """Every record of a prefixed topic up to its current end."""
    from aiokafka import TopicPartition

    ends = await end_offsets(settings, logical_topic)
    name = topic(logical_topic, settings.topic_prefix)
    consumer = kafka.consumer(settings)
    await consumer.start()
    try:
        partitions = [TopicPartition(name, p) for p in ends]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        records: list[Any] = []
        while sum(1 for r in records) < sum(ends.values()):
            batch = await consumer.getmany(timeout_ms=200)
            for messages in batch.values():
                records.extend(messages)
        return records
    finally:
        await consumer.stop()


def a_score(
    member: str,
    boards: Sequence[str],
    points: str,
    *,
    key: str | None = None,
    exact: int = 0,
) -> ScoreAwarded:
    return ScoreAwarded(
        member_id=member,
        board_ids=tuple(boards),
        points_delta=Decimal(points),
        exact_delta=exact,
        reason="exact" if exact else "outcome",
        source="match:m1",
        rule_version=1,
        result_version=1,
        idempotency_key=key or unique("score:"),
        awarded_at=KICKOFF + timedelta(hours=2),
    )


def some_scores(
    n: int, *, members: int, boards: Sequence[str], seed: int = 7
) -> list[ScoreAwarded]:
    """Scores of one tournament: each on its board, plus the member's one or two leagues."""
    rng = random.Random(seed)
    run = unique("")
    tournament, leagues = boards[0], list(boards[1:])
    scores = []
    for i in range(n):
        m = rng.randrange(members)
        own = {leagues[m % len(leagues)], leagues[(m * 7 + 3) % len(leagues)] if m % 3 == 0 else ""}
        points = rng.choice(["0.00", "1.00", "2.00", "3.00", "5.50"])
        exact = 1 if points == "5.50" else 0
        scores.append(
            a_score(
                f"member-{run}-{m}",
                [tournament, *sorted(own - {""})],
                points,
                key=f"score:{run}:{i}:1:1",
                exact=exact,
            )
        )
    return scores


def expected_totals(scores: Iterable[ScoreAwarded]) -> dict[tuple[str, str], tuple[Decimal, int]]:
    totals: dict[tuple[str, str], tuple[Decimal, int]] = defaultdict(lambda: (Decimal(0), 0))
    seen: set[str] = set()
    for score in scores:
        if score.idempotency_key in seen:
            continue
        seen.add(score.idempotency_key)
        for board in dict.fromkeys(score.board_ids):
            total, exact = totals[(board, score.member_id)]
            totals[(board, score.member_id)] = (
                total + score.points_delta,
                exact + score.exact_delta,
            )
    return dict(totals)


async def board_totals(
    pool: asyncpg.Pool, boards: Sequence[str]
) -> dict[tuple[str, str], tuple[Decimal, int]]:
    rows = await pool.fetch(
        "select board_id, member_id, total, exact_count from board_totals where board_id = any($1)",
        list(boards),
    )
    return {(r["board_id"], r["member_id"]): (r["total"], r["exact_count"]) for r in rows}


async def stored_positions(pool: asyncpg.Pool, settings: Settings, logical_topic: str) -> int:
    """Sum of the stored next offsets of the sink on a topic."""
    value = await pool.fetchval(
        "select coalesce(sum(next_offset), 0) from sink_offsets where consumer = $1 and topic = $2",
        CONSUMER,
        topic(logical_topic, settings.topic_prefix),
    )
    return int(value)


async def caught_up(pool: asyncpg.Pool, settings: Settings, logical_topic: str, end: int) -> None:
    async def done() -> bool:
        return await stored_positions(pool, settings, logical_topic) >= end

    await eventually(done, timeout=60, what=f"sink stored positions up to {end} on {logical_topic}")


def keyed(scores: Iterable[ScoreAwarded]) -> list[tuple[bytes | None, bytes | AvroRecord]]:
    return [(s.member_id.encode(), s) for s in scores]


# -- tests ----------------------------------------------------------------------------


async def test_scores_land_once_and_totals_survive_redelivery_restart_and_rewind(
    settings: Settings, topics: None, pool: asyncpg.Pool
) -> None:
    boards = [unique("tournament:"), unique("league:"), unique("league:")]
    scores = some_scores(600, members=40, boards=boards)
    expected = expected_totals(scores)
    sent = await produce(settings, SCORES, keyed(scores))

    async with running(run_postgres_sink, settings):
        await caught_up(pool, settings, SCORES, sent)
    assert await board_totals(pool, boards) == expected
    count = await pool.fetchval(
        "select count(*) from scores where idempotency_key = any($1)",
        [s.idempotency_key for s in scores],
    )
    assert count == len(scores)

    # Redelivery: the same records again (new offsets, same idempotency keys).
    sent += await produce(settings, SCORES, keyed(scores))
    async with running(run_postgres_sink, settings):  # a new runner resumes where it stopped
        await caught_up(pool, settings, SCORES, sent)
    assert await board_totals(pool, boards) == expected

    # Rewind: the operator sets the positions back to 0; everything is read again.
    await pool.execute(
        "update sink_offsets set next_offset = 0 where consumer = $1 and topic = $2",
        CONSUMER,
        topic(SCORES, settings.topic_prefix),
    )
    async with running(run_postgres_sink, settings):
        await caught_up(pool, settings, SCORES, sent)
    assert await board_totals(pool, boards) == expected


async def test_throughput_of_200k_scores_is_measured(
    settings: Settings, topics: None, pool: asyncpg.Pool
) -> None:
    """Not a timing assertion: logs the rate, from a full topic to every position stored."""
    boards = [unique("tournament:"), *(unique("league:") for _ in range(50))]
    scores = some_scores(200_000, members=20_000, boards=boards, seed=11)
    sent = await produce(settings, SCORES, keyed(scores))

    started = time.perf_counter()
    async with running(run_postgres_sink, settings):
        await caught_up(pool, settings, SCORES, sent)
        elapsed = time.perf_counter() - started
    log.info(
        "bench.sink.postgres",
        scores=sent,
        board_lines=sum(len(s.board_ids) for s in scores),
        seconds=round(elapsed, 2),
        scores_per_s=round(sent / elapsed),
    )
    assert await board_totals(pool, boards) == expected_totals(scores)


async def test_poison_records_go_to_the_dlq_and_the_next_records_land(
    settings: Settings, topics: None, pool: asyncpg.Pool
) -> None:
    board = unique("league:")
    member = unique("member-")
    before = [a_score(member, [board], "1.00") for _ in range(3)]
    after = [a_score(member, [board], "2.00") for _ in range(3)]
    not_avro = b"not avro at all"
    wrong_type = AvroCodec().encode(a_match(unique("match-"), 1, 1), FIXTURES_MATCHES)
    nul_member = a_score("bad\x00member", [board], "7.00")  # Postgres text refuses NUL
    key = member.encode()  # one key: one partition, one batch, in this order
    sent = await produce(
        settings,
        SCORES,
        [
            *((key, s) for s in before),
            (key, not_avro),
            (key, wrong_type),
            (key, nul_member),
            *((key, s) for s in after),
        ],
    )

    async with running(run_postgres_sink, settings):
        await caught_up(pool, settings, SCORES, sent)

    assert await board_totals(pool, [board]) == {(board, member): (Decimal("9.00"), 0)}
    letters = await read_all(settings, DLQ_SINKS)
    assert [m.offset for m in letters] == [0, 1, 2]
    headers = [DeadLetter.from_headers(m.headers) for m in letters]
    assert [h.error_class for h in headers] == [
        "SchemaDecodeError",
        "UnexpectedRecordError",
        "ConstraintViolationError",
    ]
    assert [h.source_offset for h in headers] == [3, 4, 5]
    assert {h.source_topic for h in headers} == {topic(SCORES, settings.topic_prefix)}
    assert [m.key for m in letters] == [key, key, key]
    assert letters[0].value == not_avro
    assert letters[1].value == wrong_type
    assert AvroCodec().decode(letters[2].value) == nul_member
    assert ("consumer", CONSUMER.encode()) in letters[0].headers


def a_match(
    match_id: str, result_version: int, provider_version: int, home: int = 0
) -> MatchUpdated:
    return MatchUpdated(
        match_id=match_id,
        tournament_id="t1",
        home_team_id="h",
        home_team_name="Home",
        away_team_id="a",
        away_team_name="Away",
        status=MatchStatus.FINISHED,
        home_score=home,
        away_score=0,
        kickoff_at=KICKOFF,
        provider="replay",
        provider_version=provider_version,
        result_version=result_version,
        updated_at=KICKOFF + timedelta(hours=2, seconds=provider_version),
    )


async def test_matches_keep_the_highest_version(
    settings: Settings, topics: None, pool: asyncpg.Pool
) -> None:
    match_id = unique("match-")
    key = match_id.encode()
    first = [a_match(match_id, 1, 1, home=1), a_match(match_id, 1, 3, home=3)]
    first.append(a_match(match_id, 1, 2, home=2))  # older, read later: ignored
    sent = await produce(settings, FIXTURES_MATCHES, [(key, m) for m in first])

    async def stored() -> tuple[int, int, int]:
        row = await pool.fetchrow(
            "select result_version, provider_version, home_score from matches where match_id = $1",
            match_id,
        )
        return (row["result_version"], row["provider_version"], row["home_score"])

    async with running(run_postgres_sink, settings):
        await caught_up(pool, settings, FIXTURES_MATCHES, sent)
        assert await stored() == (1, 3, 3)
        # A lower result version with a higher provider version loses; a correction wins.
        later = [a_match(match_id, 0, 9, home=9), a_match(match_id, 2, 1, home=5)]
        sent += await produce(settings, FIXTURES_MATCHES, [(key, m) for m in later])
        await caught_up(pool, settings, FIXTURES_MATCHES, sent)
        assert await stored() == (2, 1, 5)
        sent += await produce(settings, FIXTURES_MATCHES, [(key, first[1])])  # a replay
        await caught_up(pool, settings, FIXTURES_MATCHES, sent)
    assert await stored() == (2, 1, 5)


async def test_entries_are_stored_once_and_rule_sets_by_version(
    settings: Settings, topics: None, pool: asyncpg.Pool
) -> None:
    match_id = unique("match-")
    entries = [
        PredictionPlaced(
            entry_id=f"{match_id}:e{i}",
            member_id=f"m{i}",
            match_id=match_id,
            league_ids=("l1", "l2"),
            home_goals=i % 3,
            away_goals=1,
            placed_at=KICKOFF - timedelta(hours=1),
        )
        for i in range(50)
    ]
    ruleset_id = unique("rules-")
    rule_sets = [
        RuleSet(
            ruleset_id=ruleset_id,
            game=Game.PREDICTIONS,
            version=v,
            params={"exact": str(3 + v), "outcome": "1"},
            effective_from=KICKOFF,
        )
        for v in (1, 2, 1)
    ]
    key = match_id.encode()
    sent = await produce(settings, ENTRIES_PREDICTIONS, [(key, e) for e in entries + entries])
    sent_rules = await produce(settings, RULES, [(ruleset_id.encode(), r) for r in rule_sets])

    async with running(run_postgres_sink, settings):
        await caught_up(pool, settings, ENTRIES_PREDICTIONS, sent)
        await caught_up(pool, settings, RULES, sent_rules)

    rows = await pool.fetch(
        "select entry_id, league_ids, home_goals from prediction_entries where match_id = $1",
        match_id,
    )
    assert sorted(r["entry_id"] for r in rows) == sorted(e.entry_id for e in entries)
    assert {tuple(r["league_ids"]) for r in rows} == {("l1", "l2")}
    stored_rules = await pool.fetch(
        "select version, game, params from rule_sets where ruleset_id = $1 order by version",
        ruleset_id,
    )
    assert [(r["version"], r["game"]) for r in stored_rules] == [
        (1, "predictions"),
        (2, "predictions"),
    ]
    assert json.loads(stored_rules[1]["params"]) == {"exact": "5", "outcome": "1"}


def test_the_fast_decoder_agrees_with_the_codec() -> None:
    codec = AvroCodec()
    records: list[tuple[AvroRecord, str]] = [
        (a_score("m", ["b1", "b2"], "3.50", exact=1), SCORES),
        (a_match("x", 2, 7, home=4), FIXTURES_MATCHES),
        (
            LeaderboardEntryChanged(
                board_id="b",
                member_id="m",
                total=Decimal("-12.50"),
                tiebreakers=(Tiebreaker(name="exact_scores", value=Decimal(2)),),
                rank=3,
                version=9,
                updated_at=KICKOFF,
            ),
            LEADERBOARD_UPDATES,
        ),
    ]
    decode = RecordDecoder(codec, [r.schema_name for r, _ in records])
    for record, logical in records:
        data = codec.encode(record, logical)
        assert decode(data) == codec.decode(data) == record
        with pytest.raises(SchemaDecodeError):
            decode(data + b"\x00")
        with pytest.raises(SchemaDecodeError):
            decode(data[:-1])


_SINK_PROCESS = """
import asyncio
from core.logging import configure_logging
from core.settings import Settings
from sinks.base import RunnerConfig
from sinks.postgres import run_postgres_sink
configure_logging("WARNING")
config = RunnerConfig(max_records=5000)  # many small commits: a kill lands between or in one
asyncio.run(run_postgres_sink(Settings(), asyncio.Event(), config=config))
"""


async def test_a_sink_killed_mid_batch_applies_everything_once(
    settings: Settings, topics: None, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    """SIGKILL a sink process three times while it writes; rows and positions stay in step."""
    boards = [unique("tournament:"), *(unique("league:") for _ in range(5))]
    scores = some_scores(60_000, members=3_000, boards=boards, seed=3)
    keys = [s.idempotency_key for s in scores]
    sent = await produce(settings, SCORES, keyed(scores))
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": str(settings.kafka_bootstrap_servers),
        "DATABASE_URL": settings.database_url.get_secret_value() if settings.database_url else "",
        "REDIS_URL": settings.redis_url.get_secret_value() if settings.redis_url else "",
        "SCORELINE_TOPIC_PREFIX": settings.topic_prefix,
        "SCORELINE_REDIS_PREFIX": settings.redis_prefix,
        "SCORELINE_HOME": str(tmp_path / ".scoreline"),
    }

    async def applied() -> int:
        return int(
            await pool.fetchval("select count(*) from scores where idempotency_key = any($1)", keys)
        )

    for kill in range(3):
        progress = await stored_positions(pool, settings, SCORES)
        with open(tmp_path / f"sink-{kill}.log", "wb") as output:
            process = subprocess.Popen(
                [sys.executable, "-c", _SINK_PROCESS], env=env, cwd=ROOT, stderr=output
            )
            try:  # kill it once it has committed something more
                await caught_up(pool, settings, SCORES, progress + 1)
            finally:
                process.kill()  # SIGKILL: no clean-up, likely in the middle of a transaction
                process.wait(timeout=10)
        assert process.returncode == -signal.SIGKILL
        # Rows and positions were committed together: every stored position covers
        # exactly the scores stored (the keys are unique, nothing is dead-lettered).
        assert await stored_positions(pool, settings, SCORES) == await applied()
        log.info("test.sink.killed", kill=kill, applied=await applied())

    async with running(run_postgres_sink, settings):
        await caught_up(pool, settings, SCORES, sent)
    assert await applied() == len(scores)
    assert await board_totals(pool, boards) == expected_totals(scores)
