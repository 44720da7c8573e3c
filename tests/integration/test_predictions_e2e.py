"""A simulated round end to end: poller -> worker -> sinks -> Postgres, Redis, API.

20 matches (one corrected), 5,000 members in 50 leagues, with late, duplicate and
superseded guesses. The real roles run as processes (``scoreline worker``,
``scoreline sinks``); the football poller polls the replay provider over HTTP on a clock
the test drives. The end state must equal what the pure scoring functions compute from the
simulator's own data: in Postgres, in Redis, on ``scores`` read_committed, and in the API.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from aiokafka import TopicPartition

from api.app import create_app
from core.kafka import consumer, producer
from core.settings import Settings
from producers.clock import ManualClock
from producers.simulator import publish_simulation, register_leagues
from schemas.catalog import FIXTURES_MATCHES, spec, topic
from streams.app import app_id
from streams.rules.boards import rank_board
from tests.builders import KICKOFF
from tests.e2e import RoundScenario, a_round, create_topics, football_poller, group_offset, play
from tests.oracle import differences, nonzero, postgres_boards, redis_boards, scores_topic
from tests.processes import Role
from tests.support import eventually

CONVERGE_S = 420


@pytest.fixture(scope="module")
def scenario() -> RoundScenario:
    return a_round()


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            yield client


async def test_a_round_ends_equal_to_the_oracle(
    settings: Settings,
    database_url: str,
    scenario: RoundScenario,
    roles: dict[str, Role],
    api: httpx.AsyncClient,
) -> None:
    expected = scenario.oracle
    await create_topics(settings)
    await register_leagues(database_url, scenario.entries.leagues)
    await publish_simulation(settings, scenario.entries)
    for role in roles.values():
        role.start()

    clock = ManualClock(KICKOFF)
    async with football_poller(settings, database_url, scenario.season, clock) as poller:
        results = await play(poller, clock, scenario.poll_times())
        assert sum(r.published for r in results) > 0
        again = await poller.poll_rounds()  # the same payloads once more
        assert again.published == 0, "an unchanged provider payload publishes nothing"

    async def postgres_converged() -> bool:
        return nonzero(await postgres_boards(database_url)) == nonzero(expected)

    try:
        await eventually(postgres_converged, timeout=CONVERGE_S, interval=1.0, what="Postgres")
    except AssertionError:
        got = await postgres_boards(database_url)
        pytest.fail(
            f"Postgres != oracle: {differences(nonzero(got), nonzero(expected))}\n"
            f"worker:\n{roles['worker'].tail()}\nsinks:\n{roles['sinks'].tail()}"
        )

    # A replayed fixtures.matches record (the corrected result, again) changes nothing.
    replayed = await replay_last_match_update(settings)
    await eventually(
        lambda: worker_passed(settings, replayed), timeout=60, what="worker read the replay"
    )

    async def redis_converged() -> bool:
        assert settings.redis_url is not None
        got = await redis_boards(settings.redis_url.get_secret_value(), settings.redis_prefix)
        return nonzero(got) == nonzero(expected)

    await eventually(redis_converged, timeout=120, interval=1.0, what="Redis == oracle")
    assert nonzero(await postgres_boards(database_url)) == nonzero(expected)

    topic_boards, keys = await scores_topic(settings)
    assert [key for key, n in keys.items() if n > 1] == [], "an award appears twice on scores"
    assert nonzero(topic_boards) == nonzero(expected)

    league = max((b for b in expected if b.startswith("league:")), key=lambda b: len(expected[b]))
    leagues = {lg.league_id: lg for lg in scenario.entries.leagues}
    token = leagues[league.removeprefix("league:")].access_token
    headers = {"X-League-Token": token} if token else {}
    assert await api_board(api, league, headers) == [
        (line.rank, line.member_id, str(line.total), line.exact_count)
        for line in rank_board(expected[league].values())
    ]


async def api_board(
    client: httpx.AsyncClient, board_id: str, headers: dict[str, str]
) -> list[tuple[int, str, str, int]]:
    lines: list[tuple[int, str, str, int]] = []
    cursor = None
    while True:
        params = {"limit": 200} | ({"cursor": cursor} if cursor else {})
        page = await client.get(f"/boards/{board_id}", params=params, headers=headers)
        assert page.status_code == 200, page.text
        body = page.json()
        lines += [(d["rank"], d["member_id"], d["total"], d["exact_count"]) for d in body["data"]]
        cursor = body["next_cursor"]
        if cursor is None:
            return lines


async def replay_last_match_update(settings: Settings) -> tuple[TopicPartition, int]:
    """Publish the newest record of a fixtures.matches partition again; its new position."""
    reader = consumer(settings)
    await reader.start()
    try:
        name = topic(FIXTURES_MATCHES, settings.topic_prefix)
        tps = [TopicPartition(name, p) for p in range(spec(FIXTURES_MATCHES).partitions)]
        ends = await reader.end_offsets(tps)
        tp = max(tps, key=lambda t: ends[t])
        reader.assign([tp])
        reader.seek(tp, ends[tp] - 1)
        batch = await reader.getmany(tp, timeout_ms=5000)
        record = batch[tp][0]
    finally:
        await reader.stop()
    out = producer(settings)
    await out.start()
    try:
        sent = await out.send_and_wait(
            name, key=record.key, value=record.value, partition=tp.partition
        )
    finally:
        await out.stop()
    return tp, sent.offset


async def worker_passed(settings: Settings, position: tuple[TopicPartition, int]) -> bool:
    tp, offset = position
    return await group_offset(settings, app_id(settings), tp) > offset
