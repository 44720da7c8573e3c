"""The season of the settlement test, with the worker killed -9 again and again.

While the season is published (spread out with seeded pauses), a killer SIGKILLs the
worker at random moments once its settlement task runs (12 kills, seeded) and restarts it
at once. The restarted
settlement task opens its transactional producer with the same transactional id (derived
from the prefix and its partitions), which fences the dead one and aborts its open
transaction; it rebuilds its state from the changelog (``streams.settlement.state``) and
the market events below the recorded positions, and resumes at the committed offsets. The
outputs read with read_committed must end equal to the oracle, each idempotency key once:
no bet settled twice, no payout missing.
"""

from __future__ import annotations

import asyncio
import os
import random

from core.settings import Settings
from tests.e2e import create_topics
from tests.integration.test_settlement import a_market_season, converge, publish_season
from tests.processes import Role
from tests.support import eventually

KILLS = 12


def settling(worker: Role) -> bool:
    """Whether the worker's current run has restored its settlement state (it settles)."""
    text = worker.log_path.read_text(errors="replace") if worker.log_path.exists() else ""
    return "settlement.restored" in text.rsplit("===== start", 1)[-1]


async def killer(worker: Role, rng: random.Random, kills: list[float]) -> None:
    """SIGKILL the worker at random moments while it settles, and restart it at once."""
    for _ in range(KILLS):
        await eventually(lambda: settling(worker), timeout=60, what="the settlement runs")
        pause = rng.uniform(0.0, 2.0)
        await asyncio.sleep(pause)  # chaos pacing: a random moment
        worker.kill()
        worker.start()
        kills.append(pause)


async def test_kill_9_twelve_times_and_the_season_still_equals_the_oracle(
    settings: Settings, roles: dict[str, Role]
) -> None:
    season = a_market_season(members=int(os.environ.get("CHAOS_MEMBERS", "200")))
    rng = random.Random(20261122)
    await create_topics(settings)
    roles["worker"].start()
    roles["boards"].start()
    kills: list[float] = []
    chaos = asyncio.create_task(killer(roles["worker"], rng, kills))
    await publish_season(settings, season, rng=random.Random(7))
    await chaos
    assert len(kills) == KILLS
    assert roles["worker"].starts == KILLS + 1
    # The last restart rebuilds the final state too, and must add nothing to it.
    await eventually(lambda: settling(roles["worker"]), timeout=60, what="the last restart")
    await converge(settings, season.oracle, roles)
    assert roles["worker"].alive, roles["worker"].tail()
