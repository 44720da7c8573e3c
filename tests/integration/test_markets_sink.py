"""The markets Postgres sink against a real broker and database, checked against the oracle.

A simulated season (``producers.bets_simulator``) and what ``streams.rules.markets.oracle``
says the settlement processor emits for it (rejections, settlements, ledger entries) are
published to their topics; the sink must then hold exactly the oracle, to the cent, and a
redelivery, a rewind or a SIGKILL must change nothing. After every batch it writes, no
member's balance differs from the sum of their ledger.

Ids carry a per-test tag (the module shares one database).
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import AsyncIterator, Collection, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import pytest
from aiokafka import TopicPartition

from core import kafka
from core.settings import Settings
from core.topics import apply_topics
from producers.bets_simulator import generate_bets, generate_markets
from schemas.catalog import (
    CREDITS_LEDGER,
    DLQ_SINKS,
    ENTRIES_BETS,
    ENTRIES_REJECTED,
    FIXTURES_MARKETS,
    SETTLEMENTS,
    topic,
)
from schemas.records import (
    AvroRecord,
    BetPlaced,
    DeadLetter,
    MarketOutcome,
    MarketResolved,
    MarketUpdated,
)
from schemas.records.outputs import LedgerEntryPosted
from sinks.base import Batch, RunnerConfig, run_sink
from sinks.postgres_markets import CONSUMER, TOPICS, MarketsPostgresSink, create_pool
from streams.rules.markets import LedgerEntry, MarketEvent, MarketsOracle, oracle
from tests.integration.test_postgres_sink import end_offsets, produce, read_all, running
from tests.processes import Role
from tests.support import eventually, unique

Keyed = list[tuple[bytes | None, bytes | AvroRecord]]

#: Members whose balance is not the sum of their ledger, or whose entry count is off.
_UNBALANCED = """
    select coalesce(b.member_id, l.member_id) as member_id
    from credit_balances b
    full join (
        select member_id, sum(amount) as total, count(*) as n
        from credit_ledger group by member_id
    ) l on l.member_id = b.member_id
    where b.balance is distinct from l.total or b.entries is distinct from l.n
"""


# -- a season, as the upstream app and the settlement processor publish it --------------


@dataclass(frozen=True)
class Season:
    """Market events and bets (ids tagged), and what the oracle says comes of them."""

    tag: str
    events: tuple[MarketEvent, ...]
    bets: tuple[BetPlaced, ...]
    oracle: MarketsOracle
    ledger: tuple[LedgerEntryPosted, ...] = field(default=())

    def records(self, logical_topic: str) -> Keyed:
        """What goes to ``logical_topic``, keyed as the catalog says, in publishing order."""
        if logical_topic == FIXTURES_MARKETS:
            return [(e.market_id.encode(), e) for e in self.events]
        if logical_topic == ENTRIES_BETS:
            return [(b.member_id.encode(), b) for b in self.bets]
        if logical_topic == ENTRIES_REJECTED:
            return [(r.member_id.encode(), r) for r in self.oracle.rejected.values()]
        if logical_topic == SETTLEMENTS:
            return [(s.bet_id.encode(), s) for s in self.oracle.settlements]
        if logical_topic == CREDITS_LEDGER:
            return [(e.member_id.encode(), e) for e in self.ledger]
        raise ValueError(logical_topic)


def posted(entry: LedgerEntry) -> LedgerEntryPosted:
    """A ledger entry of the oracle as the processor posts it on ``credits.ledger``."""
    return LedgerEntryPosted(
        idempotency_key=entry.key,
        member_id=entry.member_id,
        kind=entry.kind.value,
        amount=entry.amount,
        bet_id=entry.bet_id,
        version=entry.version,
        posted_at=entry.at,
    )


def _tagged_event(tag: str, event: MarketEvent) -> MarketEvent:
    return replace(event, market_id=tag + event.market_id)


def _tagged_bet(tag: str, bet: BetPlaced) -> BetPlaced:
    legs = tuple(replace(leg, market_id=tag + leg.market_id) for leg in bet.legs)
    return replace(bet, bet_id=tag + bet.bet_id, member_id=tag + bet.member_id, legs=legs)


def a_season(
    *,
    seed: int,
    binary: int = 10,
    rounds: int = 2,
    matches_per_round: int = 5,
    members: int = 80,
    bets: int = 1500,
) -> Season:
    """A simulated season with ids under a fresh tag, and its oracle."""
    tag = unique("s") + "-"
    markets = generate_markets(
        seed=seed, binary=binary, rounds=rounds, matches_per_round=matches_per_round
    )
    simulated = generate_bets(markets.events, members=members, bets=bets, seed=seed)
    events = tuple(_tagged_event(tag, e) for e in markets.events)
    placed = tuple(_tagged_bet(tag, b) for b in simulated.bets)
    result = oracle(events, placed)
    ledger = tuple(posted(e) for e in result.ledger.values())
    return Season(tag, events, placed, result, ledger)


async def publish(settings: Settings, season: Season, topics: Iterable[str] = TOPICS) -> None:
    for logical_topic in topics:
        await produce(settings, logical_topic, season.records(logical_topic))


# -- what Postgres must hold -------------------------------------------------------------


def expected_state(season: Season) -> dict[str, Any]:
    """The rows of the season's ids, as :func:`stored_state` reads them, from the oracle."""
    o = season.oracle
    counts = Counter(e.member_id for e in o.ledger.values())
    bets: dict[str, tuple[Any, ...]] = {}
    for bet in season.bets:
        if bet.bet_id in bets:
            continue  # a redelivery: the first read stands
        if bet.bet_id in o.final:
            final = o.final[bet.bet_id]
            bets[bet.bet_id] = (final.status.value, None, final.payout, final.version)
        elif bet.bet_id in o.rejected:
            bets[bet.bet_id] = ("rejected", o.rejected[bet.bet_id].reason.value, None, None)
        else:
            bets[bet.bet_id] = ("open", None, None, None)
    updates: dict[str, int] = {}
    resolutions: dict[str, MarketResolved] = {}
    for event in season.events:
        if isinstance(event, MarketUpdated):
            updates[event.market_id] = max(event.version, updates.get(event.market_id, 0))
        elif event.version > getattr(resolutions.get(event.market_id), "version", 0):
            resolutions[event.market_id] = event
    markets = {}
    for market_id in updates.keys() | resolutions.keys():
        r = resolutions.get(market_id)
        resolution = (
            (r.outcome, r.void, r.version, r.resolved_at) if r else (None, False, None, None)
        )
        markets[market_id] = (updates.get(market_id), *resolution)
    return {
        "ledger": {
            e.key: (e.member_id, e.kind.value, e.amount, e.bet_id, e.version, e.at)
            for e in o.ledger.values()
        },
        "balances": {m: (balance, counts[m]) for m, balance in o.balances.items()},
        "settlements": {
            (s.bet_id, s.version): (
                s.status.value,
                s.stake,
                s.payout,
                s.previous_payout,
                s.settled_at,
            )
            for s in o.settlements
        },
        "bets": bets,
        "markets": markets,
    }


async def stored_state(pool: asyncpg.Pool, tag: str) -> dict[str, Any]:
    like = tag + "%"
    ledger = await pool.fetch(
        "select * from credit_ledger where member_id like $1 order by idempotency_key", like
    )
    balances = await pool.fetch("select * from credit_balances where member_id like $1", like)
    settlements = await pool.fetch("select * from settlements where bet_id like $1", like)
    bets = await pool.fetch("select * from bets where bet_id like $1", like)
    markets = await pool.fetch("select * from markets where market_id like $1", like)
    return {
        "ledger": {
            r["idempotency_key"]: (
                r["member_id"],
                r["kind"],
                r["amount"],
                r["bet_id"],
                r["version"],
                r["posted_at"],
            )
            for r in ledger
        },
        "balances": {r["member_id"]: (r["balance"], r["entries"]) for r in balances},
        "settlements": {
            (r["bet_id"], r["version"]): (
                r["status"],
                r["stake"],
                r["payout"],
                r["previous_payout"],
                r["settled_at"],
            )
            for r in settlements
        },
        "bets": {
            r["bet_id"]: (r["status"], r["reject_reason"], r["payout"], r["settlement_version"])
            for r in bets
        },
        "markets": {
            r["market_id"]: (
                r["version"],
                r["resolution_outcome"],
                r["void"],
                r["resolution_version"],
                r["resolved_at"],
            )
            for r in markets
        },
    }


async def assert_oracle(pool: asyncpg.Pool, season: Season) -> None:
    got, want = await stored_state(pool, season.tag), expected_state(season)
    for part in want:
        assert got[part] == want[part], f"{part}: Postgres != oracle"
    assert await pool.fetch(_UNBALANCED) == []


# -- running the sink --------------------------------------------------------------------


class CheckedSink:
    """The markets sink, checking after every batch that balance = sum of the ledger."""

    def __init__(self, inner: MarketsPostgresSink, pool: Any) -> None:
        self._inner = inner
        self._pool = pool
        self.name = inner.name
        self.topics = inner.topics
        self.batches = 0
        self.unbalanced: list[str] = []

    async def committed(self, partitions: Collection[TopicPartition]) -> dict[TopicPartition, int]:
        return await self._inner.committed(partitions)

    async def write(self, batch: Batch) -> None:
        await self._inner.write(batch)
        self.batches += 1
        async with self._pool.acquire() as conn:
            self.unbalanced += [r["member_id"] for r in await conn.fetch(_UNBALANCED)]

    async def flush(self) -> None:
        await self._inner.flush()


@dataclass
class CheckedRun:
    """Runs of the checked sink, in process; what they saw, summed."""

    batches: int = 0
    unbalanced: list[str] = field(default_factory=list)
    applied_ledger: int = 0

    async def __call__(
        self, settings: Settings, stop: asyncio.Event, *, config: RunnerConfig | None = None
    ) -> None:
        assert settings.database_url is not None
        pool = await create_pool(settings.database_url.get_secret_value())
        inner = MarketsPostgresSink(pool, topic_prefix=settings.topic_prefix)
        sink = CheckedSink(inner, pool)
        try:
            await run_sink(settings, sink, stop, config=config)
        finally:
            self.batches += sink.batches
            self.unbalanced += sink.unbalanced
            self.applied_ledger += inner.applied_ledger
            await pool.close()


SMALL_BATCHES = RunnerConfig(max_records=400)


async def stored_positions(pool: asyncpg.Pool, settings: Settings) -> dict[str, int]:
    rows = await pool.fetch(
        "select topic, sum(next_offset) as n from sink_offsets where consumer = $1 group by topic",
        CONSUMER,
    )
    return {r["topic"]: int(r["n"]) for r in rows}


async def caught_up(pool: asyncpg.Pool, settings: Settings, timeout: float = 90) -> None:
    """Wait until the sink stored every topic's end offset."""
    ends = {}
    for logical_topic in TOPICS:
        ends[topic(logical_topic, settings.topic_prefix)] = sum(
            (await end_offsets(settings, logical_topic)).values()
        )

    async def done() -> bool:
        stored = await stored_positions(pool, settings)
        return all(stored.get(name, 0) >= end for name, end in ends.items())

    await eventually(done, timeout=timeout, what=f"{CONSUMER} stored {ends}")


@pytest.fixture
async def topics(settings: Settings) -> None:
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


# -- tests -------------------------------------------------------------------------------


async def test_a_season_equals_the_oracle_and_redelivery_and_rewind_change_nothing(
    settings: Settings, topics: None, pool: asyncpg.Pool
) -> None:
    season = a_season(seed=11)
    o = season.oracle
    # The season has what the rules must get right: every kind of record, resettlements
    # (a reversal in the ledger), voids, rejections and redelivered bets.
    assert {e.kind.value for e in o.ledger.values()} == {
        "grant",
        "stake",
        "payout",
        "refund",
        "reversal",
    }
    assert any(s.version > 1 for s in o.settlements) and o.rejected
    assert len(season.bets) > len({b.bet_id for b in season.bets})
    await publish(settings, season)

    run = CheckedRun()
    async with running(run, settings, SMALL_BATCHES):
        await caught_up(pool, settings)
    await assert_oracle(pool, season)
    assert run.batches >= 10 and run.unbalanced == []
    assert run.applied_ledger == len(o.ledger)

    # Redelivery: every record again, at new offsets.
    await publish(settings, season)
    async with running(run, settings, SMALL_BATCHES):
        await caught_up(pool, settings)
    await assert_oracle(pool, season)

    # Rewind: the stored positions back to 0; everything is read a third time.
    await pool.execute("update sink_offsets set next_offset = 0 where consumer = $1", CONSUMER)
    async with running(run, settings, SMALL_BATCHES):
        await caught_up(pool, settings)
    await assert_oracle(pool, season)
    assert run.unbalanced == []
    assert run.applied_ledger == len(o.ledger)  # nothing applied twice


async def test_arrival_order_across_topics_does_not_matter(
    settings: Settings, topics: None, pool: asyncpg.Pool
) -> None:
    """Settlements, rejections and resolutions stored before their bets and markets."""
    season = a_season(seed=5, members=40, bets=600)
    resolutions = [e for e in season.events if isinstance(e, MarketResolved)]
    updates = [e for e in season.events if isinstance(e, MarketUpdated)]
    run = CheckedRun()
    await produce(settings, SETTLEMENTS, season.records(SETTLEMENTS))
    await produce(settings, ENTRIES_REJECTED, season.records(ENTRIES_REJECTED))
    await produce(settings, FIXTURES_MARKETS, [(e.market_id.encode(), e) for e in resolutions])
    async with running(run, settings, SMALL_BATCHES):
        await caught_up(pool, settings)
        assert (
            await pool.fetchval("select count(*) from bets where bet_id like $1", season.tag + "%")
            == 0
        )
        await produce(settings, FIXTURES_MARKETS, [(e.market_id.encode(), e) for e in updates])
        await produce(settings, ENTRIES_BETS, season.records(ENTRIES_BETS))
        await produce(settings, CREDITS_LEDGER, season.records(CREDITS_LEDGER))
        await caught_up(pool, settings)
    await assert_oracle(pool, season)
    assert run.unbalanced == []


def _market(market_id: str, version: int, yes: str, at: datetime) -> MarketUpdated:
    no = str(Decimal(1) - Decimal(yes))
    return MarketUpdated(
        market_id=market_id,
        question=f"Will {market_id} resolve Yes?",
        outcomes=(
            MarketOutcome(name="Yes", price=Decimal(yes)),
            MarketOutcome(name="No", price=Decimal(no)),
        ),
        active=True,
        closed=False,
        end_date=at + timedelta(days=30),
        version=version,
        updated_at=at + timedelta(minutes=version),
    )


def _resolved(market_id: str, version: int, outcome: str | None, at: datetime) -> MarketResolved:
    return MarketResolved(
        market_id=market_id,
        outcome=outcome,
        void=outcome is None,
        version=version,
        resolved_at=at + timedelta(days=version),
    )


async def test_market_updates_and_resolutions_keep_their_own_highest_version(
    settings: Settings, topics: None, pool: asyncpg.Pool
) -> None:
    market_id = unique("pm-")
    at = datetime(2026, 9, 1, tzinfo=UTC)
    key = market_id.encode()

    async def row() -> tuple[Any, ...]:
        r = await pool.fetchrow("select * from markets where market_id = $1", market_id)
        assert r is not None
        return (
            r["version"],
            r["outcomes"],
            r["resolution_outcome"],
            r["void"],
            r["resolution_version"],
        )

    run = CheckedRun()
    async with running(run, settings):
        first: list[MarketEvent] = [
            _market(market_id, 1, "0.5000", at),
            _resolved(market_id, 1, "Yes", at),
            _market(market_id, 3, "0.6000", at),  # an update after the resolution
            _market(market_id, 2, "0.5500", at),  # older, read later: ignored
        ]
        await produce(settings, FIXTURES_MARKETS, [(key, e) for e in first])
        await caught_up(pool, settings)
        version, outcomes, *resolution = await row()
        assert version == 3 and '"0.6000"' in outcomes
        assert resolution == ["Yes", False, 1]  # the update did not erase the resolution

        # A re-resolution (void) replaces it; the first resolution and update replayed
        # later (another batch) change nothing.
        await produce(settings, FIXTURES_MARKETS, [(key, _resolved(market_id, 2, None, at))])
        await caught_up(pool, settings)
        assert await row() == (3, outcomes, None, True, 2)
        await produce(settings, FIXTURES_MARKETS, [(key, first[1]), (key, first[0])])
        await caught_up(pool, settings)
        assert await row() == (3, outcomes, None, True, 2)


async def test_a_ledger_entry_that_would_break_a_balance_is_dead_lettered(
    settings: Settings, topics: None, pool: asyncpg.Pool
) -> None:
    """The balance check refuses the record at fault; the entries around it land."""
    member = unique("m-")
    at = datetime(2026, 9, 1, tzinfo=UTC)

    def entry(key: str, kind: str, amount: str) -> LedgerEntryPosted:
        return LedgerEntryPosted(
            idempotency_key=f"{key}:{member}",
            member_id=member,
            kind=kind,
            amount=Decimal(amount),
            posted_at=at,
        )

    entries = [
        entry("grant", "grant", "10000.00"),
        entry("bet:b1:stake", "stake", "-25.00"),
        entry("bet:b2:stake", "stake", "-20000.00"),  # below zero: refused
        entry("bet:b3:stake", "stake", "-10.50"),
    ]
    await produce(settings, CREDITS_LEDGER, [(member.encode(), e) for e in entries])
    run = CheckedRun()
    async with running(run, settings):
        await caught_up(pool, settings)
    balance = await pool.fetchrow(
        "select balance, entries from credit_balances where member_id = $1", member
    )
    assert balance is not None and (balance["balance"], balance["entries"]) == (
        Decimal("9964.50"),
        3,
    )
    assert run.unbalanced == []
    letters = await read_all(settings, DLQ_SINKS)
    assert len(letters) == 1
    header = DeadLetter.from_headers(letters[0].headers)
    assert header.error_class == "ConstraintViolationError"
    assert (header.source_topic, header.source_offset) == (
        topic(CREDITS_LEDGER, settings.topic_prefix),
        2,
    )
    assert ("consumer", CONSUMER.encode()) in letters[0].headers


async def test_scoreline_sinks_killed_and_restarted_ends_at_the_oracle(
    settings: Settings, topics: None, pool: asyncpg.Pool, roles: dict[str, Role]
) -> None:
    """``scoreline sinks`` runs the markets sink; SIGKILLed twice, it ends at the oracle.

    The first kill comes once the markets and bets are stored, the second at a random
    moment while the settlements and the ledger are read.
    """
    season = a_season(seed=23, members=150, bets=4000)
    sinks = roles["sinks"]
    await publish(settings, season, (FIXTURES_MARKETS, ENTRIES_BETS, ENTRIES_REJECTED))
    sinks.start()
    await caught_up(pool, settings)
    sinks.kill()

    await publish(settings, season, (SETTLEMENTS, CREDITS_LEDGER))
    sinks.start()
    before = sum((await stored_positions(pool, settings)).values())
    target = before + random.Random(23).randint(1, len(season.ledger))

    async def progressed() -> bool:
        return sum((await stored_positions(pool, settings)).values()) >= target

    await eventually(progressed, timeout=90, what=f"the sink stored {target} positions")
    sinks.kill()
    sinks.start()
    try:
        await caught_up(pool, settings, timeout=120)
    except AssertionError:
        pytest.fail(f"the markets sink did not catch up:\n{sinks.tail()}")
    await assert_oracle(pool, season)
    assert sinks.starts == 3
