"""A simulated round of the predictions game, driven end to end through the real roles."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg
import httpx
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from core.kafka import producer
from core.settings import Settings
from core.topics import apply_catalog
from producers.clock import ManualClock
from producers.football import FootballPoller, PollResult
from producers.replay import ReplayServer, create_replay_app
from producers.season import Season, generate_season
from producers.simulator import SimulatedEntries, generate_entries, oracle_for
from schemas.codec import AvroCodec
from streams.rules.boards import BoardLine
from streams.state import committed_offset
from tests.builders import KICKOFF, SEASON_ID, TOURNAMENT_ID


@dataclass(frozen=True)
class RoundScenario:
    season: Season
    entries: SimulatedEntries
    oracle: dict[str, dict[str, BoardLine]]

    def poll_times(self) -> list[datetime]:
        """A moment just after each full time and each correction, in order."""
        moments = {plan.full_time for plan in self.season.matches}
        moments |= {plan.corrected_at for plan in self.season.matches if plan.corrected_at}
        return [moment + timedelta(seconds=1) for moment in sorted(moments)]


def a_round(
    *, seed: int = 11, matches: int = 20, members: int = 5000, leagues: int = 50
) -> RoundScenario:
    season = generate_season(
        seed,
        tournament_id=TOURNAMENT_ID,
        season_id=SEASON_ID,
        teams=max(2 * matches, 2),
        rounds=1,
        matches_per_round=matches,
        first_kickoff=KICKOFF,
        round_interval=timedelta(days=7),
        kickoff_spread=timedelta(hours=2),
        correction_rate=0.0,
        corrections_at_least=1,
    )
    entries = generate_entries(season, members=members, leagues=leagues, seed=seed)
    return RoundScenario(season, entries, oracle_for(season, entries))


async def group_offset(settings: Settings, group_id: str, tp: TopicPartition) -> int:
    """The offset ``group_id`` committed for ``tp`` (0 when none)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        return await committed_offset(admin, group_id, tp)
    finally:
        await admin.close()


async def create_topics(settings: Settings) -> None:
    await apply_catalog(settings)


@asynccontextmanager
async def football_poller(
    settings: Settings, database_url: str, season: Season, clock: ManualClock
) -> AsyncIterator[FootballPoller]:
    """The real poller against the replay provider over HTTP, on a clock the test drives."""
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=4)
    out = producer(settings)
    await out.start()
    codec = AvroCodec.from_settings(settings)
    try:
        async with (
            ReplayServer(create_replay_app(season, clock)) as server,
            httpx.AsyncClient(base_url=server.base_url, timeout=10) as client,
        ):
            yield FootballPoller(
                client,
                out,
                codec,
                pool,
                tournament_id=season.tournament_id,
                season_id=season.season_id,
                prefix=settings.topic_prefix,
                base_url=server.base_url,
            )
    finally:
        await out.stop()
        await pool.close()
        codec.close()


async def play(
    poller: FootballPoller, clock: ManualClock, times: list[datetime]
) -> list[PollResult]:
    """Poll the round at each moment: kick-offs, goals and full times reach the topics."""
    results = []
    for moment in times:
        clock.set(moment)
        results.append(await poller.poll_rounds())
    return results
