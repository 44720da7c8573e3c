"""The season of the settlement test, with the worker and the sinks killed -9 again and again.

While the season is published (spread out with seeded pauses), a killer SIGKILLs the
worker (once its settlement task runs), the sinks, or both, at random moments (12 kills,
seeded) and restarts them at once. The restarted
settlement task opens its transactional producer with the same transactional id (derived
from the prefix and its partitions), which fences the dead one and aborts its open
transaction; it rebuilds its state from the changelog (``streams.settlement.state``) and
the market events below the recorded positions, and resumes at the committed offsets. The
outputs read with read_committed must end equal to the oracle, each idempotency key once:
no bet settled twice, no payout missing; and the credit ledger and balances the sinks
wrote to Postgres must equal the oracle's (each ledger key once: it is the primary key).
"""

from __future__ import annotations

import asyncio
import os
import random

import asyncpg

from core.settings import Settings
from tests.e2e import create_topics
from tests.integration.test_markets_e2e import assert_ledger_equals
from tests.integration.test_settlement import a_market_season, converge, publish_season
from tests.processes import Role
from tests.support import eventually

KILLS = 12


def settling(worker: Role) -> bool:
    """Whether the worker's current run has restored its settlement state (it settles)."""
    text = worker.log_path.read_text(errors="replace") if worker.log_path.exists() else ""
    return "settlement.restored" in text.rsplit("===== start", 1)[-1]


async def killer(roles: dict[str, Role], rng: random.Random, kills: list[str]) -> None:
    """SIGKILL the worker (while it settles), the sinks, or both, and restart at once."""
    for _ in range(KILLS):
        victims = rng.choice([["worker"], ["sinks"], ["worker", "sinks"]])
        if "worker" in victims:
            await eventually(
                lambda: settling(roles["worker"]), timeout=60, what="the settlement runs"
            )
        await asyncio.sleep(rng.uniform(0.0, 2.0))  # chaos pacing: a random moment
        for name in victims:
            roles[name].kill()
        for name in victims:
            roles[name].start()
        kills.append("+".join(victims))


async def test_kill_9_twelve_times_and_the_season_still_equals_the_oracle(
    settings: Settings, database_url: str, roles: dict[str, Role]
) -> None:
    season = a_market_season(members=int(os.environ.get("CHAOS_MEMBERS", "200")))
    rng = random.Random(20261122)
    await create_topics(settings)
    for role in roles.values():
        role.start()
    kills: list[str] = []
    chaos = asyncio.create_task(killer(roles, rng, kills))
    await publish_season(settings, season, rng=random.Random(7))
    await chaos
    assert len(kills) == KILLS
    assert roles["worker"].starts + roles["sinks"].starts >= KILLS + 2
    # The last restart rebuilds the final state too, and must add nothing to it.
    await eventually(lambda: settling(roles["worker"]), timeout=60, what="the last restart")
    await converge(settings, season.oracle, roles)
    assert roles["worker"].alive, roles["worker"].tail()

    # The sinks, killed too, end with the oracle's ledger and balances in Postgres.
    async def stored() -> bool:
        conn = await asyncpg.connect(database_url)
        try:
            return bool(
                await conn.fetchval("select count(*) from credit_ledger")
                == len(season.oracle.ledger)
            )
        except asyncpg.UndefinedTableError:
            return False
        finally:
            await conn.close()

    await eventually(stored, timeout=240, interval=1.0, what="the ledger in Postgres")
    await assert_ledger_equals(database_url, season.oracle)
    assert roles["sinks"].alive, roles["sinks"].tail()
