"""A small season of markets and bets through the real worker, equal to the oracle.

30 markets (binary and 1X2, voids, unresolved ones, re-resolutions), 200 members, 3,000
bets (credit bets, singles, parlays up to 10 legs, every kind of rejection, redeliveries)
from ``producers.bets_simulator``, published as the market poller and the upstream app
would: in time order, each bet after the market events up to its placement. The worker
(``scoreline worker``, whose settlement task this is) and the boards stage run as
processes. Read with read_committed, ``settlements``, ``credits.ledger``,
``entries.rejected``, ``notifications`` and the PnL on ``scores`` must equal
``streams.rules.markets.oracle`` (each idempotency key once), and ``leaderboard.updates``
must end with the oracle's PnL boards.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import KafkaError

from core.kafka import consumer, producer
from core.settings import Settings
from producers.bets_simulator import (
    SimulatedBets,
    SimulatedMarkets,
    generate_bets,
    generate_markets,
    oracle_for,
)
from schemas.catalog import (
    CREDITS_LEDGER,
    ENTRIES_BETS,
    ENTRIES_REJECTED,
    FIXTURES_MARKETS,
    LEADERBOARD_UPDATES,
    NOTIFICATIONS,
    SCORES,
    SETTLEMENTS,
    spec,
    topic,
)
from schemas.codec import AvroCodec
from schemas.records import (
    AvroRecord,
    BetKind,
    BetLeg,
    BetPlaced,
    BetSettled,
    EntryRejected,
    LeaderboardEntryChanged,
    MarketOutcome,
    MarketResolved,
    MarketUpdated,
    ResultCorrected,
    ScoreAwarded,
)
from schemas.records.outputs import LedgerEntryPosted
from streams import settlement
from streams.rules.markets import MarketEvent, MarketsOracle, oracle
from streams.settlement import SettlementProcessor
from streams.settling import SettlingState, event_time, ledger_posted
from streams.settling import resume as real_resume
from tests.e2e import create_topics, group_offset
from tests.processes import Role
from tests.support import eventually

CONVERGE_S = 240
R = TypeVar("R", bound=AvroRecord)


@dataclass(frozen=True)
class MarketSeason:
    markets: SimulatedMarkets
    bets: SimulatedBets
    oracle: MarketsOracle


def a_market_season(*, seed: int = 21, members: int = 200, bets: int = 3_000) -> MarketSeason:
    """30 markets (15 binary, 3 rounds of 5 match markets) and their bets."""
    markets = generate_markets(seed=seed, binary=15, rounds=3, matches_per_round=5)
    placed = generate_bets(
        markets.events, members=members, bets=bets, seed=seed + 1, invalid_rate=0.03
    )
    return MarketSeason(markets, placed, oracle_for(markets, placed))


async def publish_season(
    settings: Settings, season: MarketSeason, *, rng: random.Random | None = None
) -> None:
    """The season's market events and bets (:func:`publish`)."""
    await publish(settings, season.markets.events, season.bets.bets, rng=rng)


async def publish(
    settings: Settings,
    market_events: Sequence[MarketEvent],
    bets: Sequence[BetPlaced],
    *,
    rng: random.Random | None = None,
) -> None:
    """Market events and bets in time order; a bet goes out once the market events up to
    its placement are acknowledged (what the upstream app's members saw). With ``rng``,
    random pauses spread the publishing out (for the crash test)."""
    codec = AvroCodec.from_settings(settings)
    out = producer(settings)
    await out.start()
    markets_topic = topic(FIXTURES_MARKETS, settings.topic_prefix)
    bets_topic = topic(ENTRIES_BETS, settings.topic_prefix)
    try:
        events = list(market_events)
        sent: list[asyncio.Future[object]] = []
        for n, bet in enumerate(bets):
            if events and event_time(events[0]) <= bet.placed_at:
                await asyncio.gather(*sent)  # the bets before these events
                sent = []
                while events and event_time(events[0]) <= bet.placed_at:
                    event = events.pop(0)
                    value = codec.encode(event, FIXTURES_MARKETS)
                    sent.append(await out.send(markets_topic, value, key=event.market_id.encode()))
                await asyncio.gather(*sent)
                sent = []
            value = codec.encode(bet, ENTRIES_BETS)
            sent.append(await out.send(bets_topic, value, key=bet.member_id.encode()))
            if rng is not None and n % 50 == 0:
                await asyncio.gather(*sent)
                sent = []
                await asyncio.sleep(rng.uniform(0.0, 2.0))  # chaos pacing: a random moment
        for event in events:
            value = codec.encode(event, FIXTURES_MARKETS)
            sent.append(await out.send(markets_topic, value, key=event.market_id.encode()))
        await asyncio.gather(*sent)
    finally:
        await out.stop()
        codec.close()


async def read_committed(settings: Settings, name: str) -> list[AvroRecord]:
    """Every record of a catalog topic, read_committed, from the start to its end."""
    codec = AvroCodec.from_settings(settings)
    reader = consumer(settings)
    await reader.start()
    try:
        tps = [
            TopicPartition(topic(name, settings.topic_prefix), p)
            for p in range(spec(name).partitions)
        ]
        reader.assign(tps)
        await reader.seek_to_beginning(*tps)
        ends = await reader.end_offsets(tps)
        records: list[AvroRecord] = []
        while [tp for tp in tps if await reader.position(tp) < ends[tp]]:
            batch = await reader.getmany(timeout_ms=1000, max_records=20_000)
            for part in batch.values():
                records += [codec.decode(r.value or b"") for r in part]
        return records
    finally:
        await reader.stop()
        codec.close()


async def records_of(settings: Settings, name: str, kind: type[R]) -> list[R]:
    return [r for r in await read_committed(settings, name) if isinstance(r, kind)]


async def differences(settings: Settings, expected: MarketsOracle) -> list[str]:
    """What the output topics hold that the oracle does not (empty: equal)."""
    problems: list[str] = []
    settled = await records_of(settings, SETTLEMENTS, BetSettled)
    ledger = await records_of(settings, CREDITS_LEDGER, LedgerEntryPosted)
    rejected = await records_of(settings, ENTRIES_REJECTED, EntryRejected)
    notices = await records_of(settings, NOTIFICATIONS, ResultCorrected)
    awards = await records_of(settings, SCORES, ScoreAwarded)
    keys = Counter(r.idempotency_key for r in settled)
    keys.update(r.idempotency_key for r in ledger)
    keys.update(r.idempotency_key for r in awards)
    keys.update(f"rejected:{r.entry_id}" for r in rejected)
    twice = [k for k, n in keys.items() if n > 1]
    if twice:
        problems.append(f"{len(twice)} keys twice, e.g. {twice[:5]}")
    want_settled = {s.idempotency_key: s for s in expected.settlements}
    got_settled = {s.idempotency_key: s for s in settled}
    _compare(problems, "settlements", got_settled, want_settled)
    want_ledger = {k: ledger_posted(e) for k, e in expected.ledger.items()}
    _compare(problems, "ledger", {e.idempotency_key: e for e in ledger}, want_ledger)
    balances: dict[str, Decimal] = {}
    for entry in ledger:
        balances[entry.member_id] = balances.get(entry.member_id, Decimal(0)) + entry.amount
    if balances != dict(expected.balances):
        problems.append("balances != oracle")
    _compare(problems, "rejected", {r.entry_id: r for r in rejected}, dict(expected.rejected))
    if sorted(notices, key=repr) != sorted(expected.notifications, key=repr):
        problems.append(f"notifications: {len(notices)} != {len(expected.notifications)}")
    boards: dict[str, dict[str, Decimal]] = {}
    for award in awards:
        for board in award.board_ids:
            line = boards.setdefault(board, {})
            line[award.member_id] = line.get(award.member_id, Decimal(0)) + award.points_delta
    want_boards = {
        b: {m: line.total for m, line in lines.items()} for b, lines in expected.boards.items()
    }
    if boards != want_boards:
        problems.append("PnL on scores != oracle boards")
    return problems


def _compare(
    problems: list[str], what: str, got: Mapping[str, object], want: Mapping[str, object]
) -> None:
    missing = sorted(set(want) - set(got))
    extra = sorted(set(got) - set(want))
    wrong = sorted(k for k in set(got) & set(want) if got[k] != want[k])
    if missing or extra or wrong:
        problems.append(
            f"{what}: {len(missing)} missing {missing[:3]}, {len(extra)} extra {extra[:3]}, "
            f"{len(wrong)} differ {[(got[k], want[k]) for k in wrong[:1]]}"
        )


async def leaderboard_pnl(settings: Settings) -> dict[str, dict[str, Decimal]]:
    """The PnL boards as ``leaderboard.updates`` ends: each line's highest version."""
    latest: dict[tuple[str, str], LeaderboardEntryChanged] = {}
    for update in await read_committed(settings, LEADERBOARD_UPDATES):
        if isinstance(update, LeaderboardEntryChanged) and update.board_id.startswith("pnl:"):
            key = (update.board_id, update.member_id)
            if key not in latest or update.version > latest[key].version:
                latest[key] = update
    boards: dict[str, dict[str, Decimal]] = {}
    for (board, member), update in latest.items():
        boards.setdefault(board, {})[member] = update.total
    return boards


def oracle_pnl(expected: MarketsOracle) -> dict[str, dict[str, Decimal]]:
    return {b: {m: line.total for m, line in lines.items()} for b, lines in expected.boards.items()}


async def converge(settings: Settings, expected: MarketsOracle, roles: dict[str, Role]) -> None:
    """Wait until the outputs equal the oracle; fail with what differs and the logs."""
    last: list[str] = []

    async def equal() -> bool:
        nonlocal last
        last = await differences(settings, expected)
        return not last and await leaderboard_pnl(settings) == oracle_pnl(expected)

    try:
        await eventually(equal, timeout=CONVERGE_S, interval=2.0, what="outputs == oracle")
    except AssertionError:
        logs = "\n".join(f"{n}:\n{r.tail()}" for n, r in roles.items() if r.starts)
        pytest.fail(f"outputs != oracle: {last}\n{logs}")


async def test_a_season_of_bets_settles_equal_to_the_oracle(
    settings: Settings, roles: dict[str, Role]
) -> None:
    season = a_market_season()
    expected = season.oracle
    # The season covers what the issue asks for.
    assert season.markets.voided and season.markets.reresolved and expected.notifications
    assert len(expected.rejected) >= 50 and any(len(b.legs) > 2 for b in season.bets.bets)
    await create_topics(settings)
    roles["worker"].start()
    roles["boards"].start()
    await publish_season(settings, season)
    await converge(settings, expected, roles)
    assert roles["worker"].alive, roles["worker"].tail()


async def test_a_big_market_settles_in_chunks_and_resumes_after_an_aborted_transaction(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """2,000 bets on one market, settled 100 bets per partition per transaction; a broker
    error in the middle of the second chunks aborts that transaction; the processor
    rebuilds its state (a settlement under way, from the changelog) and finishes it."""
    monkeypatch.setattr(settlement, "SETTLE_CHUNK", 100)
    monkeypatch.setattr(settlement, "SETTLE_SLICE", 25)
    calls = 0

    def resume_failing_once(state: SettlingState, chunk: int | None = None) -> Any:
        nonlocal calls
        calls += 1
        if calls == 22:  # 4 partitions x 3 slices in the first transaction, then a commit
            raise KafkaError("injected: the broker went away in the middle of a chunk")
        return real_resume(state, chunk)

    monkeypatch.setattr(settlement, "resume", resume_failing_once)
    t0 = datetime(2026, 8, 3, tzinfo=UTC)
    listed = MarketUpdated(
        market_id="pm-big",
        question="Big?",
        outcomes=(
            MarketOutcome(name="Yes", price=Decimal("0.3000")),
            MarketOutcome(name="No", price=Decimal("0.7000")),
        ),
        active=True,
        closed=False,
        end_date=t0 + timedelta(days=30),
        version=1,
        updated_at=t0,
    )
    bets = [
        BetPlaced(
            bet_id=f"b{n:05d}",
            member_id=f"m{n % 700:04d}",
            kind=BetKind.CREDIT,
            stake=Decimal(10 + n % 90),
            legs=(
                BetLeg(
                    market_id="pm-big",
                    selection="Yes" if n % 3 else "No",
                    price=Decimal("0.3000"),
                ),
            ),
            placed_at=t0 + timedelta(minutes=n),
        )
        for n in range(2_000)
    ]
    resolved = MarketResolved(
        market_id="pm-big", outcome="Yes", version=1, resolved_at=t0 + timedelta(days=31)
    )
    expected = oracle([listed, resolved], bets)
    assert len(expected.settlements) == 2_000
    await create_topics(settings)
    processor = SettlementProcessor(settings)
    task = asyncio.create_task(processor.run(processor.stop))
    try:
        await publish(settings, [listed], bets)
        # Every bet judged (accepted, open) before the market resolves.
        await eventually(
            lambda: judged(settings, processor.group_id, len(bets)), timeout=60, what="judged"
        )
        assert calls == 0
        await publish(settings, [resolved], [])
        last: list[str] = []

        async def equal() -> bool:
            nonlocal last
            last = await differences(settings, expected)
            return not last

        await eventually(equal, timeout=120, interval=1.0, what=f"outputs == oracle ({last})")
    finally:
        processor.stop.set()
        await asyncio.wait_for(task, timeout=30)
    assert calls > 22, "the settlement went on after the aborted transaction"


async def judged(settings: Settings, group_id: str, count: int) -> bool:
    """Whether ``group_id`` committed ``count`` records of ``entries.bets`` in all."""
    name = topic(ENTRIES_BETS, settings.topic_prefix)
    tps = [TopicPartition(name, p) for p in range(spec(ENTRIES_BETS).partitions)]
    return sum([await group_offset(settings, group_id, tp) for tp in tps]) == count
