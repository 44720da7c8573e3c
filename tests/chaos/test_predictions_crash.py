"""The round of the end-to-end test, with the worker and the sinks killed -9 again and again.

While the poller plays the round, a killer SIGKILLs the worker, the sinks or both at
random moments (12 kills, seeded) and restarts them at once. How a killed worker gets its
partitions back: it restarts with the same static group member id (``SCORELINE_WORKER_ID``),
so the group hands it its partitions without waiting for the dead member to expire (the
embedded broker never expires it; Apache Kafka would after ``session.timeout.ms``), and
its transactional producers, opened with the same transactional ids, fence the dead ones
and abort their open transactions. That is the path a real deployment takes on Apache
Kafka with static membership. The sinks assign their partitions themselves and seek to
the offsets stored with their data. The end state must equal the oracle exactly.
"""

from __future__ import annotations

import asyncio
import os
import random

import pytest

from core.settings import Settings
from producers.clock import ManualClock
from producers.simulator import publish_simulation, register_leagues
from tests.builders import KICKOFF
from tests.e2e import RoundScenario, a_round, create_topics, football_poller
from tests.oracle import differences, nonzero, postgres_boards, redis_boards, scores_topic
from tests.processes import Role
from tests.support import eventually

KILLS = 12
CONVERGE_S = int(os.environ.get("CHAOS_CONVERGE_S", "480"))


async def killer(roles: dict[str, Role], rng: random.Random, kills: list[str]) -> None:
    """SIGKILL a role (or several) at random moments and restart it at once."""
    for _ in range(KILLS):
        await asyncio.sleep(rng.uniform(1.0, 5.0))  # chaos pacing: a random moment
        victims = rng.choice(
            [["worker"], ["boards"], ["sinks"], ["worker", "sinks"], ["worker", "boards", "sinks"]]
        )
        for name in victims:
            roles[name].kill()
        for name in victims:
            roles[name].start()
        kills.append("+".join(victims))


async def test_kill_9_ten_times_and_the_round_still_equals_the_oracle(
    settings: Settings, database_url: str, roles: dict[str, Role]
) -> None:
    scenario: RoundScenario = a_round(members=int(os.environ.get("CHAOS_MEMBERS", "5000")))
    expected = nonzero(scenario.oracle)
    rng = random.Random(20261122)
    await create_topics(settings)
    await register_leagues(database_url, scenario.entries.leagues)
    for role in roles.values():
        role.start()
    kills: list[str] = []
    chaos = asyncio.create_task(killer(roles, rng, kills))
    await publish_simulation(settings, scenario.entries)

    clock = ManualClock(KICKOFF)
    async with football_poller(settings, database_url, scenario.season, clock) as poller:
        for moment in scenario.poll_times():
            clock.set(moment)
            await poller.poll_rounds()
            await asyncio.sleep(rng.uniform(0.0, 1.0))  # spread results over the kills
    await chaos
    assert len(kills) == KILLS

    async def converged() -> bool:
        assert settings.redis_url is not None
        pg = nonzero(await postgres_boards(database_url))
        rd = nonzero(
            await redis_boards(settings.redis_url.get_secret_value(), settings.redis_prefix)
        )
        return pg == expected and rd == expected

    try:
        await eventually(converged, timeout=CONVERGE_S, interval=2.0, what="end state")
    except AssertionError:
        got = nonzero(await postgres_boards(database_url))
        on_topic = nonzero((await scores_topic(settings))[0])
        pytest.fail(
            f"after kills {kills}: Postgres != oracle: {differences(got, expected)}\n"
            f"scores topic != oracle: {differences(on_topic, expected)}\n"
            f"worker:\n{roles['worker'].tail()}\nsinks:\n{roles['sinks'].tail()}"
        )
    topic_boards, keys = await scores_topic(settings)
    assert [key for key, n in keys.items() if n > 1] == [], "a score was committed twice"
    assert nonzero(topic_boards) == expected, "scores (read_committed) != oracle"
    assert sum(role.starts for role in roles.values()) >= KILLS + 3
