"""The simulated market feed and bets: determinism, counts, every rejection, the oracle."""

from __future__ import annotations

from collections import Counter, defaultdict
from decimal import Decimal

import pytest

from producers.bets_simulator import (
    INJECTED,
    SimulatedBets,
    SimulatedMarkets,
    generate_bets,
    generate_markets,
    oracle_for,
)
from schemas.records import (
    BetKind,
    Game,
    MarketResolved,
    MarketUpdated,
    RejectionReason,
    SettlementStatus,
)
from schemas.records.fixtures import MarketKind
from streams.rules.markets import (
    BALANCE_CAP,
    INITIAL_GRANT,
    MAX_LEGS,
    MarketsOracle,
    game_of,
    timelines,
    views_at,
)


@pytest.fixture(scope="module")
def season() -> SimulatedMarkets:
    return generate_markets(seed=7)


@pytest.fixture(scope="module")
def bets(season: SimulatedMarkets) -> SimulatedBets:
    return generate_bets(season.events, members=2_000, bets=100_000, seed=8)


@pytest.fixture(scope="module")
def expected(season: SimulatedMarkets, bets: SimulatedBets) -> MarketsOracle:
    return oracle_for(season, bets)


def test_the_same_seed_gives_the_same_season() -> None:
    assert generate_markets(seed=3) == generate_markets(seed=3)
    assert generate_markets(seed=3).events != generate_markets(seed=4).events
    markets = generate_markets(seed=3, binary=20, rounds=4)
    small = generate_bets(markets.events, members=50, bets=2_000, seed=1, invalid_rate=0.2)
    assert generate_bets(markets.events, members=50, bets=2_000, seed=1, invalid_rate=0.2) == small
    other = generate_bets(markets.events, members=50, bets=2_000, seed=2, invalid_rate=0.2)
    assert other.bets != small.bets


def test_markets(season: SimulatedMarkets) -> None:
    updates = [e for e in season.events if isinstance(e, MarketUpdated)]
    market_ids = {e.market_id for e in updates}
    assert len(market_ids) >= 200
    assert market_ids == set(season.binary_ids) | set(season.match_ids)
    kinds = Counter(u.kind for u in updates if u.version == 1)
    assert kinds[MarketKind.BINARY] == 100 and kinds[MarketKind.MATCH_1X2] == 120
    for u in updates:
        assert {o.name for o in u.outcomes} == (
            {"Yes", "No"} if u.kind is MarketKind.BINARY else {"home", "draw", "away"}
        )
        assert all(Decimal("0.0001") <= o.price <= Decimal("0.9999") for o in u.outcomes)
        if u.kind is MarketKind.MATCH_1X2:
            assert all(o.odds is not None and o.odds > 1 for o in u.outcomes)
    times = [e.updated_at if isinstance(e, MarketUpdated) else e.resolved_at for e in season.events]
    assert times == sorted(times), "event-time order"
    assert season.voided and season.unresolved


def test_markets_resolved_again(season: SimulatedMarkets) -> None:
    resolutions: dict[str, list[MarketResolved]] = {}
    for e in season.events:
        if isinstance(e, MarketResolved):
            resolutions.setdefault(e.market_id, []).append(e)
    again = {m: rs for m, rs in resolutions.items() if len(rs) > 1}
    assert set(again) == set(season.reresolved)
    for market_id, rs in again.items():
        assert [r.version for r in rs] == list(range(1, len(rs) + 1))
        assert tuple(r.outcome for r in rs) == season.reresolved[market_id]
    changed = [m for m, outcomes in season.reresolved.items() if outcomes[-1] != outcomes[0]]
    assert len(changed) == 2
    assert {m.startswith("mm-") for m in changed} == {True, False}, "a match and a binary"
    assert any(len(set(o)) == 1 for o in season.reresolved.values()), "the same outcome again"
    assert any(o[0] == o[-1] and len(o) == 3 for o in season.reresolved.values()), "and back"
    first_resolutions = [rs[0].resolved_at for rs in resolutions.values()]
    corrections = [r.resolved_at for rs in again.values() for r in rs[1:]]
    assert min(corrections) > max(first_resolutions)


def test_members_and_bets(bets: SimulatedBets) -> None:
    assert len(bets.members) == 2_000
    assert bets.members[0] == "m00001" and bets.members[-1] == "m02000"
    unique = {b.bet_id: b for b in bets.bets}
    assert len(unique) == 100_000
    assert len(bets.bets) == 100_000 + len(bets.duplicated) and bets.duplicated
    copies = Counter(b.bet_id for b in bets.bets)
    assert {b for b, n in copies.items() if n > 1} == bets.duplicated
    kinds = Counter(b.kind for b in unique.values())
    assert min(kinds.values()) > 15_000, kinds
    legs = Counter(len(b.legs) for b in unique.values() if b.kind is BetKind.PARLAY)
    assert set(range(2, MAX_LEGS + 1)) <= set(legs)
    placed = [b.placed_at for b in bets.bets if b.bet_id not in bets.duplicated]
    assert placed == sorted(placed), "published in placement order"
    for member in ("m00001", "m01000"):
        mine = [b for b in unique.values() if b.member_id == member]
        assert [b.bet_id for b in mine] == sorted(b.bet_id for b in mine)
        assert [b.placed_at for b in mine] == sorted(b.placed_at for b in mine)


def test_every_rejection_kind_is_there(bets: SimulatedBets, expected: MarketsOracle) -> None:
    reasons = Counter(r.reason for r in expected.rejected.values())
    assert set(INJECTED.values()) <= set(reasons)
    assert all(reasons[r] >= 50 for r in INJECTED.values()), reasons
    for bet_id, reason in bets.injected.items():
        assert expected.rejected[bet_id].reason is reason, bet_id
    # Natural rejections (a member out of credits, a bet too big for the cap) stay rare.
    assert len(expected.rejected) - len(bets.injected) < 2_500
    assert len(expected.accepted) + len(expected.rejected) == 100_000


def test_the_generator_judged_as_the_oracle(bets: SimulatedBets, expected: MarketsOracle) -> None:
    judged = {b: (r.reason if (r := expected.rejected.get(b)) else None) for b in bets.verdicts}
    assert judged == dict(bets.verdicts)


def test_bets_are_placed_while_their_markets_are_open(
    season: SimulatedMarkets, bets: SimulatedBets
) -> None:
    by_market = timelines(season.events)
    late = {
        b
        for b, r in bets.injected.items()
        if r in (RejectionReason.MARKET_CLOSED, RejectionReason.MARKET_EXPIRED)
    }
    for bet in bets.bets:
        for market_id, view in views_at(bet, by_market).items():
            assert view is not None, (bet.bet_id, market_id)
            is_open = view.active and not view.closed and not view.resolved
            in_time = view.end_date is None or bet.placed_at < view.end_date
            assert (is_open and in_time) != (bet.bet_id in late), bet.bet_id


def test_the_oracle_end_state(bets: SimulatedBets, expected: MarketsOracle) -> None:
    final = expected.final
    statuses = Counter(s.status for s in final.values())
    assert statuses[SettlementStatus.WON] and statuses[SettlementStatus.LOST]
    assert statuses[SettlementStatus.VOID]
    assert len(final) < len(expected.accepted), "bets on unresolved markets stay open"
    # each version once, counted from 1
    keys = Counter((s.bet_id, s.version) for s in expected.settlements)
    assert max(keys.values()) == 1
    assert len({s.idempotency_key for s in expected.settlements}) == len(expected.settlements)
    resettled = [s for s in expected.settlements if s.version > 1]
    assert resettled and len(expected.notifications) == len(resettled)
    assert any(expected.accepted[s.bet_id].kind is BetKind.PARLAY for s in resettled)
    # balances: the ledger, within bounds, and what the bets say
    for member in bets.members:
        if member not in expected.balances:
            continue
        assert Decimal(0) <= expected.balances[member] <= BALANCE_CAP
    staked: defaultdict[str, Decimal] = defaultdict(Decimal)
    for bet in expected.accepted.values():
        staked[bet.member_id] += bet.stake
    won: defaultdict[str, Decimal] = defaultdict(Decimal)
    for s in final.values():
        won[s.member_id] += s.payout
    for member, balance in expected.balances.items():
        assert balance == INITIAL_GRANT - staked[member] + won[member]
    grants = [e for e in expected.ledger.values() if e.key.startswith("grant:")]
    assert len(grants) == len(expected.balances)
    assert sum(e.amount for e in expected.ledger.values()) == sum(expected.balances.values())
    # PnL: per game, payouts - stakes of settled bets
    assert all(b.startswith(("pnl:markets:", "pnl:betting:")) for b in expected.boards)
    overall = expected.boards["pnl:markets:overall"]
    pnl: defaultdict[str, Decimal] = defaultdict(Decimal)
    for s in final.values():
        if game_of(expected.accepted[s.bet_id]) is Game.MARKETS:
            pnl[s.member_id] += s.payout - s.stake
    assert {m: line.total for m, line in overall.items()} == dict(pnl)
    weeks = [b for b in expected.boards if b.startswith("pnl:betting:week:")]
    assert len(weeks) >= 10 and "pnl:betting:week:2026-W34" in weeks


def test_bets_on_binary_markets_only() -> None:
    binary_only = [
        e
        for e in generate_markets(seed=5, binary=10, rounds=1).events
        if e.market_id.startswith("pm-")
    ]
    simulated = generate_bets(binary_only, members=20, bets=500, seed=1, invalid_rate=0.3)
    assert {b.kind for b in simulated.bets} == {BetKind.CREDIT}
    assert RejectionReason.INVALID_ODDS not in set(simulated.injected.values())
    assert RejectionReason.INVALID_PRICE in set(simulated.injected.values())
    with pytest.raises(ValueError, match="ever open to bets"):
        generate_bets([], members=1, bets=1, seed=1)
