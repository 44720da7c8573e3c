"""A full season of markets and bets through every role, equal to the oracle to the cent.

220 markets (binary credit markets and 1X2 match markets, voids, re-resolutions), 2,000
members and 100,000 bets (credit bets, singles, parlays of up to 10 legs, rejections)
from ``producers.bets_simulator``, published in time order as the market poller and the
upstream app would. The worker (settlement), the boards stage and the sinks run as
processes. At the end the credit ledger and the balances in Postgres, the PnL boards in
Postgres and Redis, the ``settlements`` topic read with read_committed and the API all
equal what ``streams.rules.markets.oracle`` computes from the simulator's data.
"""

from __future__ import annotations

import os
import random
from collections import Counter
from collections.abc import Mapping
from decimal import Decimal

import asyncpg

from core.settings import Settings
from producers.bets_simulator import generate_bets, generate_markets, oracle_for
from schemas.catalog import SETTLEMENTS
from schemas.records import BetSettled
from streams.rules.boards import BoardLine
from streams.rules.markets import MarketsOracle
from tests.api import api_client
from tests.e2e import create_topics
from tests.integration.test_settlement import publish, read_committed
from tests.oracle import Boards, differences, nonzero, postgres_boards, redis_boards
from tests.processes import Role
from tests.support import eventually

MEMBERS = int(os.environ.get("MARKETS_E2E_MEMBERS", "2000"))
BETS = int(os.environ.get("MARKETS_E2E_BETS", "100000"))
CONVERGE_S = 600


def pnl_only(boards: Mapping[str, Mapping[str, BoardLine]]) -> Boards:
    return {b: dict(lines) for b, lines in boards.items() if b.startswith("pnl:")}


async def assert_ledger_equals(database_url: str, expected: MarketsOracle) -> None:
    """The credit ledger and balances in Postgres are the oracle's, to the cent."""
    pool = await asyncpg.connect(database_url)
    try:
        ledger = {
            row["idempotency_key"]: row["amount"]
            for row in await pool.fetch("select idempotency_key, amount from credit_ledger")
        }
        balances = {
            row["member_id"]: row["balance"]
            for row in await pool.fetch("select member_id, balance from credit_balances")
        }
        drift = await pool.fetch(
            "select b.member_id from credit_balances b join ("
            " select member_id, sum(amount) as total from credit_ledger group by member_id"
            ") l using (member_id) where b.balance <> l.total"
        )
    finally:
        await pool.close()
    assert ledger == {key: entry.amount for key, entry in expected.ledger.items()}
    assert balances == dict(expected.balances)
    assert drift == [], "a balance differs from the sum of its ledger"
    assert all(Decimal(0) <= b <= Decimal(1_000_000) for b in balances.values())


async def test_a_season_of_markets_ends_equal_to_the_oracle(
    settings: Settings, database_url: str, roles: dict[str, Role]
) -> None:
    markets = generate_markets(seed=7)
    placed = generate_bets(markets.events, members=MEMBERS, bets=BETS, seed=8)
    expected = oracle_for(markets, placed)
    assert len({e.market_id for e in markets.events}) >= 200
    assert len(expected.accepted) + len(expected.rejected) >= BETS
    await create_topics(settings)
    for role in roles.values():
        role.start()
    await publish(settings, markets.events, placed.bets)

    pool = await asyncpg.connect(database_url)

    async def settled() -> bool:
        dead = [name for name, role in roles.items() if not role.alive]
        assert not dead, f"{dead} died: {[roles[name].tail() for name in dead]}"
        try:
            entries = await pool.fetchval("select count(*) from credit_ledger")
        except asyncpg.UndefinedTableError:  # the sinks have not migrated yet
            return False
        if entries != len(expected.ledger):
            return False
        lines = nonzero(pnl_only(await postgres_boards(database_url)))
        return lines == nonzero(pnl_only(expected.boards))

    await eventually(settled, timeout=CONVERGE_S, interval=2.0, what="ledger and PnL boards")

    await pool.close()
    await assert_ledger_equals(database_url, expected)

    assert settings.redis_url is not None
    cached = nonzero(
        pnl_only(await redis_boards(settings.redis_url.get_secret_value(), settings.redis_prefix))
    )
    expected_boards = nonzero(pnl_only(expected.boards))
    assert cached == expected_boards, differences(cached, expected_boards)

    on_topic = [r for r in await read_committed(settings, SETTLEMENTS) if isinstance(r, BetSettled)]
    versions = Counter((s.bet_id, s.version) for s in on_topic)
    assert [key for key, n in versions.items() if n > 1] == [], "a settlement version twice"
    assert {(s.bet_id, s.version, s.status, s.payout) for s in on_topic} == {
        (s.bet_id, s.version, s.status, s.payout) for s in expected.settlements
    }

    sample = random.Random(9).sample(sorted(expected.balances), 25)
    async with api_client(settings) as client:
        for member_id in sample:
            body = (await client.get(f"/members/{member_id}/balance")).json()
            assert body["balance"] == f"{expected.balances[member_id]:.2f}", body
        overall = next(board for board in expected_boards if board.endswith(":overall"))
        page = (await client.get(f"/boards/{overall}", params={"limit": 50})).json()
    best = sorted(expected_boards[overall].values(), key=lambda line: (-line.total, line.member_id))
    assert [(row["member_id"], row["total"]) for row in page["data"]] == [
        (line.member_id, f"{line.total:.2f}") for line in best[:50]
    ]
