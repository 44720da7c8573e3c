"""Reprocess end to end: a round scored live, re-scored with another exact-score rule, promoted.

A small round (6 matches, one corrected, 300 members in 5 leagues) runs through the real
poller, worker, boards stage and sinks until Postgres and Redis equal the oracle under rule
version 1. Then, as an operator would, through the ``scoreline`` command line:

1. ``reprocess --rules-version 2 --param exact_score=10`` re-scores the round beside the
   live pipeline: its totals equal the oracle under version 2, a second run resumes and adds
   nothing, and the API still serves the version 1 totals;
2. ``--promote`` (a dry run) publishes nothing; ``--promote --execute`` publishes the deltas;
   the live pipeline converges: Postgres, Redis and the API equal the oracle under version 2,
   and ``scores`` read_committed carries exactly the deltas (count, sum, each key once); a
   second ``--promote --execute`` changes nothing; the version 1 totals stay readable;
3. a result corrected after the promotion moves the totals to the oracle under version 2
   with the corrected result (the rule change is not counted twice);
4. ``--retire --rules-version 1 --execute`` drops the old totals.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

import asyncpg
import httpx
import pytest
from aiokafka import TopicPartition

import streams.reprocess
from api.app import create_app
from core import kafka
from core.ops.reprocess import Boards, plan_promotion, rescore_deltas
from core.settings import Settings
from producers.clock import ManualClock
from producers.season import final_score
from producers.simulator import oracle_for, publish_simulation, register_leagues, ruleset_for
from schemas.catalog import FIXTURES_MATCHES, SCORES, spec, topic
from schemas.codec import AvroCodec
from schemas.records import MatchStatus, MatchUpdated, ScoreAwarded
from sinks.liveness import exclusive_lease
from streams.reprocess import Progress as RunProgress
from streams.reprocess import (
    ReprocessJob,
    Reprocessor,
    ReprocessRunningError,
    lease_name,
    register_run,
)
from streams.rules.boards import BoardLine, rank_board
from streams.rules.predictions import PredictionRules, latest_results, oracle_totals
from tests.builders import KICKOFF, TOURNAMENT_ID, a_match
from tests.e2e import RoundScenario, a_round, create_topics, football_poller, play
from tests.integration.test_predictions_e2e import api_board
from tests.oracle import differences, nonzero, postgres_boards, redis_boards, scores_topic
from tests.processes import Role, Run, scoreline
from tests.support import eventually

CONVERGE_S = 240
RULESET_ID = f"predictions:{TOURNAMENT_ID}"
NEW_RULES = PredictionRules(RULESET_ID, 2, exact_score=Decimal("10"))


async def reprocess(settings: Settings, version: int, *args: str) -> Run:
    command = ("reprocess", "--tournament", TOURNAMENT_ID, "--rules-version", str(version))
    return await scoreline(settings, *command, *args)


@pytest.fixture(scope="module")
def scenario() -> RoundScenario:
    return a_round(seed=7, matches=6, members=300, leagues=5)


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            yield client


async def version_boards(database_url: str, version: int) -> Boards:
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "select board_id, member_id, total, exact_count from board_totals_by_version "
            "where ruleset_id = $1 and rule_version = $2",
            RULESET_ID,
            version,
        )
    finally:
        await conn.close()
    boards: Boards = {}
    for r in rows:
        boards.setdefault(r["board_id"], {})[r["member_id"]] = BoardLine(
            r["member_id"], Decimal(r["total"]), r["exact_count"]
        )
    return boards


async def read_all(settings: Settings, name: str) -> list[tuple[int, object]]:
    """Every value of a topic, decoded, read_committed to its end: (partition, record)."""
    codec = AvroCodec.from_settings(settings)
    reader = kafka.consumer(settings)
    await reader.start()
    try:
        tps = [
            TopicPartition(topic(name, settings.topic_prefix), p)
            for p in range(spec(name).partitions)
        ]
        reader.assign(tps)
        await reader.seek_to_beginning(*tps)
        ends = await reader.end_offsets(tps)
        found: list[tuple[int, object]] = []
        while [tp for tp in tps if await reader.position(tp) < ends[tp]]:
            for tp, records in (await reader.getmany(timeout_ms=1000)).items():
                found += [(tp.partition, codec.decode(r.value or b"")) for r in records]
        return found
    finally:
        await reader.stop()
        codec.close()


async def converged(settings: Settings, database_url: str, expected: Boards, when: str) -> None:
    assert settings.redis_url is not None
    redis_url = settings.redis_url.get_secret_value()

    async def equal() -> bool:
        got = nonzero(await postgres_boards(database_url))
        cached = nonzero(await redis_boards(redis_url, settings.redis_prefix))
        return got == expected and cached == expected

    try:
        await eventually(equal, timeout=CONVERGE_S, interval=1.0, what=when)
    except AssertionError:
        got = nonzero(await postgres_boards(database_url))
        pytest.fail(f"{when}: Postgres != oracle: {differences(got, expected)}")


async def api_lines(
    api: httpx.AsyncClient, board: str, scenario: RoundScenario
) -> list[tuple[int, str, str, int]]:
    """The board as the API serves it, without its 0 lines (as ``nonzero`` boards)."""
    leagues = {lg.league_id: lg for lg in scenario.entries.leagues}
    league = leagues.get(board.removeprefix("league:"))
    token = league.access_token if league is not None else None
    lines = await api_board(api, board, {"X-League-Token": token} if token else {})
    return [line for line in lines if (line[2], line[3]) != ("0.00", 0)]


def ranked(lines: dict[str, BoardLine]) -> list[tuple[int, str, str, int]]:
    return [(r.rank, r.member_id, str(r.total), r.exact_count) for r in rank_board(lines.values())]


async def test_reprocess_then_promote_moves_every_total_to_the_new_rules_once(
    settings: Settings,
    database_url: str,
    scenario: RoundScenario,
    roles: dict[str, Role],
    api: httpx.AsyncClient,
) -> None:
    old = nonzero(scenario.oracle)
    new_ruleset = ruleset_for(scenario.season, NEW_RULES)
    new = nonzero(oracle_for(scenario.season, replace(scenario.entries, ruleset=new_ruleset)))
    assert new != old, "the new rule changes the totals"
    boards = sorted(old, key=lambda b: -len(old[b]))[:2] + [f"tournament:{TOURNAMENT_ID}"]

    await create_topics(settings)
    await register_leagues(database_url, scenario.entries.leagues)
    await publish_simulation(settings, scenario.entries)
    for role in roles.values():
        role.start()
    clock = ManualClock(KICKOFF)
    async with football_poller(settings, database_url, scenario.season, clock) as poller:
        assert sum(r.published for r in await play(poller, clock, scenario.poll_times())) > 0
    await converged(settings, database_url, old, "the round under v1")

    # 1. The reprocess: its own totals under v2; nothing live changes.
    run = await reprocess(settings, 2, "--param", "exact_score=10")
    assert run.code == 0, run
    assert "next: scoreline reprocess" in run.out, run.out  # printed once caught up
    assert nonzero(await version_boards(database_url, 2)) == new
    again = await reprocess(settings, 2)  # resumes at its offsets: nothing to add
    assert again.code == 0, again
    assert nonzero(await version_boards(database_url, 2)) == new
    other = await reprocess(settings, 2, "--param", "exact_score=11")
    assert other.code == 1 and "other rules" in " ".join(other.stderr.split()), other
    assert nonzero(await postgres_boards(database_url)) == old
    for board in boards:
        assert await api_lines(api, board, scenario) == ranked(old[board])

    # 2. Promote: a dry run first, once the live pipeline has processed everything.
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    try:

        async def ready() -> bool:
            return not (await plan_promotion(settings, pool, TOURNAMENT_ID, 2)).blockers

        await eventually(ready, timeout=CONVERGE_S, interval=1.0, what="promotion ready")
    finally:
        await pool.close()
    dry = await reprocess(settings, 2, "--promote")
    assert dry.code == 0, dry
    assert "dry run" in dry.out and "--execute" in dry.out, dry.out
    _, keys = await scores_topic(settings)
    assert not [k for k in keys if k.startswith("rescore:")], "a dry run publishes nothing"

    promoted = await reprocess(settings, 2, "--promote", "--execute")
    assert promoted.code == 0, promoted
    assert "promoted" in promoted.out and "kept as v1" in promoted.out, promoted.out
    await converged(settings, database_url, new, "the round under v2 after the promotion")
    for board in boards:
        assert await api_lines(api, board, scenario) == ranked(new[board])

    on_topic, keys = await scores_topic(settings)
    assert [k for k, n in keys.items() if n > 1] == [], "an award appears twice on scores"
    assert nonzero(on_topic) == new
    expected = rescore_deltas(old, new, ruleset_id=RULESET_ID, version=2, now=KICKOFF)
    awards = [
        v
        for _, v in await read_all(settings, SCORES)
        if isinstance(v, ScoreAwarded) and v.idempotency_key.startswith("rescore:")
    ]
    assert len(awards) == len(expected) > 0
    assert sorted((a.idempotency_key, a.points_delta, a.exact_delta) for a in awards) == sorted(
        (d.idempotency_key, d.points_delta, d.exact_delta) for d in expected
    )
    assert sum(a.points_delta for a in awards) == sum(d.points_delta for d in expected)

    second = await reprocess(settings, 2, "--promote", "--execute")
    assert second.code == 0 and "nothing to do" in second.out, second
    _, keys_after = await scores_topic(settings)
    assert keys_after == keys, "a second promotion publishes nothing"
    assert nonzero(await version_boards(database_url, 1)) == old, "v1 stays readable"

    # 3. A result corrected after the promotion: new (v2) - old (v2), never - old (v1).
    await eventually(
        lambda: "rules.promoted" in roles["worker"].tail(400),
        timeout=60,
        what="the worker read the promotion",
    )
    updates = [
        v for _, v in await read_all(settings, FIXTURES_MATCHES) if isinstance(v, MatchUpdated)
    ]
    latest = latest_results(updates)
    match_id = sorted(latest)[0]
    last = max(
        (u for u in updates if u.match_id == match_id and u.status is MatchStatus.FINISHED),
        key=lambda u: (u.result_version, u.provider_version),
    )
    corrected = replace(
        last,
        home_score=last.home_score + 1,
        result_version=last.result_version + 1,
        provider_version=last.provider_version + 1,
        updated_at=last.updated_at + timedelta(hours=1),
    )
    await publish_matches(settings, [corrected])
    final = nonzero(
        oracle_totals(
            scenario.entries.predictions, latest_results([*updates, corrected]), NEW_RULES
        )
    )
    assert final != new
    await converged(settings, database_url, final, "a correction after the promotion")

    # 4. The old totals go when retired.
    listed = await scoreline(settings, "reprocess", "--tournament", TOURNAMENT_ID, "--status")
    assert listed.code == 0, listed
    assert "scoreline-reprocess-predictions-17-v2" in listed.out and "done" in listed.out
    retired = await reprocess(settings, 1, "--retire", "--execute")
    assert retired.code == 0, retired
    assert await version_boards(database_url, 1) == {}
    assert nonzero(await version_boards(database_url, 2)) == new


async def test_a_run_stopped_between_any_two_batches_resumes_to_the_same_totals(
    settings: Settings, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run after run, each stopped after its first committed batch, adds up to the oracle."""
    scenario = a_round(seed=3, matches=4, members=150, leagues=3)
    rules = PredictionRules(RULESET_ID, 5, exact_score=Decimal("10"))
    updates = [
        a_match(
            plan.match_id,
            score=final_score(plan),
            tournament_id=TOURNAMENT_ID,
            kickoff_at=plan.kickoff,
        )
        for plan in scenario.season.matches
    ]
    first = updates[0]
    updates.append(  # a corrected result
        replace(first, home_score=first.home_score + 1, result_version=2, provider_version=2)
    )
    expected = nonzero(oracle_totals(scenario.entries.predictions, latest_results(updates), rules))
    await create_topics(settings)
    await publish_simulation(settings, scenario.entries)
    await publish_matches(settings, updates)
    monkeypatch.setattr(streams.reprocess, "MAX_BATCH", 97)
    job = ReprocessJob(TOURNAMENT_ID, rules)
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=4)
    try:
        async with pool.acquire() as conn:
            await register_run(conn, job, settings.topic_prefix)
            async with exclusive_lease(conn, lease_name(job.consumer(settings.topic_prefix))):
                with pytest.raises(ReprocessRunningError):  # one run of a version at a time
                    await Reprocessor(settings, pool, job).run(asyncio.Event())
        runs, reached = 0, None
        while reached is None or not reached.caught_up:
            stop = asyncio.Event()

            def after_one_batch(progress: RunProgress, stop: asyncio.Event = stop) -> None:
                if progress.read > 0:  # read counts from this run's start
                    stop.set()  # stopped with one batch committed: the next run resumes

            reached = await Reprocessor(settings, pool, job).run(stop, progress=after_one_batch)
            runs += 1
            assert runs < 200, "no progress"
        assert runs > 5, f"the round took {runs} run(s): too few to test resuming"
        assert nonzero(await version_boards(database_url, 5)) == expected
    finally:
        await pool.close()


async def publish_matches(settings: Settings, updates: list[MatchUpdated]) -> None:
    codec = AvroCodec.from_settings(settings)
    out = kafka.producer(settings)
    await out.start()
    try:
        name = topic(FIXTURES_MATCHES, settings.topic_prefix)
        for update in updates:
            value = codec.encode(update, FIXTURES_MATCHES)
            await out.send_and_wait(name, key=update.match_id.encode(), value=value)
    finally:
        await out.stop()
        codec.close()
