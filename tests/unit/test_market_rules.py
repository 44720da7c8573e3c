"""Credit markets and sports bets: validity, payouts, settlement, ledger, PnL, the oracle."""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from decimal import Context, Decimal
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.records import (
    CENTS,
    BetKind,
    BetLeg,
    BetPlaced,
    Game,
    MarketOutcome,
    MarketResolved,
    MarketUpdated,
    RejectionReason,
    SettlementStatus,
)
from schemas.records.fixtures import MarketKind
from streams.rules import markets
from streams.rules.markets import (
    BALANCE_CAP,
    INITIAL_GRANT,
    Budget,
    EntryKind,
    MarketTimeline,
    MarketView,
    Result,
    balances,
    correction_notice,
    credit_payout,
    iso_week,
    latest_resolutions,
    max_payout,
    next_settlement,
    oracle,
    parlay_payout,
    pnl_board_ids,
    pnl_delta,
    settle,
    settlement_entries,
    settlement_history,
    stake_entry,
    timelines,
    validate,
    views_at,
)

OPEN = datetime(2026, 11, 16, 12, 0, tzinfo=UTC)  # Monday of ISO week 2026-W47
END = OPEN + timedelta(days=5)
PLACED = OPEN + timedelta(hours=1)
R = RejectionReason
S = SettlementStatus
D = Decimal


# --- builders ----------------------------------------------------------------------------


def a_market(
    market_id: str = "pm-1",
    *,
    kind: MarketKind = MarketKind.BINARY,
    active: bool = True,
    closed: bool = False,
    end_date: datetime | None = END,
    version: int = 1,
    at: datetime = OPEN,
) -> MarketUpdated:
    names = ("Yes", "No") if kind is MarketKind.BINARY else ("home", "draw", "away")
    return MarketUpdated(
        market_id=market_id,
        question=f"{market_id}?",
        outcomes=tuple(MarketOutcome(name=n, price=D("0.4000")) for n in names),
        active=active,
        closed=closed,
        end_date=end_date,
        version=version,
        updated_at=at,
        kind=kind,
    )


def a_resolution(
    market_id: str = "pm-1",
    outcome: str | None = "Yes",
    *,
    version: int = 1,
    at: datetime = END + timedelta(hours=2),
) -> MarketResolved:
    return MarketResolved(
        market_id=market_id,
        outcome=outcome,
        void=outcome is None,
        version=version,
        resolved_at=at,
    )


def a_view(
    market_id: str = "pm-1",
    *,
    kind: MarketKind = MarketKind.BINARY,
    active: bool = True,
    closed: bool = False,
    end_date: datetime | None = END,
) -> MarketView:
    """The market as of :data:`PLACED`."""
    listing = a_market(market_id, kind=kind, active=active, closed=closed, end_date=end_date)
    view = MarketTimeline(market_id).add(listing).at(PLACED)
    assert view is not None
    return view


def a_credit_bet(
    bet_id: str = "b1",
    *,
    stake: str = "100.00",
    price: str = "0.4000",
    selection: str = "Yes",
    market_id: str = "pm-1",
    member_id: str = "m1",
    placed_at: datetime = PLACED,
) -> BetPlaced:
    leg = BetLeg(market_id=market_id, selection=selection, price=D(price))
    return BetPlaced(
        bet_id=bet_id,
        member_id=member_id,
        kind=BetKind.CREDIT,
        stake=D(stake),
        legs=(leg,),
        placed_at=placed_at,
    )


def a_sports_bet(
    bet_id: str = "s1",
    *,
    stake: str = "10.00",
    legs: tuple[tuple[str, str, str], ...] = (("mm-1", "home", "2.0000"),),
    member_id: str = "m1",
    placed_at: datetime = PLACED,
) -> BetPlaced:
    return BetPlaced(
        bet_id=bet_id,
        member_id=member_id,
        kind=BetKind.SINGLE if len(legs) == 1 else BetKind.PARLAY,
        stake=D(stake),
        legs=tuple(BetLeg(market_id=m, selection=s, odds=D(o)) for m, s, o in legs),
        placed_at=placed_at,
    )


def match_views(*market_ids: str) -> dict[str, MarketView | None]:
    return {m: a_view(m, kind=MarketKind.MATCH_1X2) for m in market_ids}


def reason(
    bet: BetPlaced, views: Mapping[str, MarketView | None] | None = None, **budget: str
) -> R | None:
    if views is None:
        views = (
            {"pm-1": a_view()}
            if bet.kind is BetKind.CREDIT
            else match_views(*(leg.market_id for leg in bet.legs))
        )
    found = validate(bet, views, Budget(**{k: D(v) for k, v in budget.items()}))
    return found.reason if found is not None else None


# --- payouts at the boundaries -----------------------------------------------------------


@pytest.mark.parametrize(
    ("stake", "price", "payout"),
    [
        ("10.00", "0.0001", "100000.00"),
        ("10000.00", "0.0001", "100000000.00"),
        ("10.00", "0.9999", "10.00"),  # 10.0010001... rounded down
        ("10000.00", "0.9999", "10001.00"),  # 10001.0001...
        ("10.00", "0.3000", "33.33"),  # 33.333... down, not to nearest
        ("10.00", "0.6000", "16.66"),  # 16.666... down, where nearest would be 16.67
        ("10.00", "0.5000", "20.00"),
        ("99.99", "0.7", "142.84"),  # 142.842857...
    ],
)
def test_credit_payout_rounds_down_to_the_cent(stake: str, price: str, payout: str) -> None:
    got = credit_payout(D(stake), D(price))
    assert got == D(payout) and str(got) == payout


def test_parlay_payout_multiplies_exactly_and_rounds_once() -> None:
    assert parlay_payout(D("10.00"), [D("1.5")] * 10) == D("576.65")  # 576.650390625
    # 10 x 1.3333^3 = 23.7025...; rounding after each leg would give 13.33, 17.77, 23.69
    assert parlay_payout(D("10.00"), [D("1.3333")] * 3) == D("23.70")
    assert parlay_payout(D("10000.00"), [D("1000")] * 10) == 10**34
    assert parlay_payout(D("10.00"), []) == D("10.00")
    assert parlay_payout(D("10.00"), [D("1.0001")]) == D("10.00")  # 10.001 down


def test_payouts_refuse_nonsense() -> None:
    with pytest.raises(ValueError):
        credit_payout(D("10"), D("0"))


def test_max_payout() -> None:
    assert max_payout(a_credit_bet(stake="10.00", price="0.2500")) == D("40.00")
    legs = (("mm-1", "home", "2.0000"), ("mm-2", "away", "3.5000"))
    assert max_payout(a_sports_bet(stake="10.00", legs=legs)) == D("70.00")


# --- validity ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stake", "expected"),
    [
        ("9.99", R.INVALID_STAKE),
        ("10", None),
        ("10.00", None),
        ("10000.00", None),
        ("10000.01", R.INVALID_STAKE),
        ("10.001", R.INVALID_STAKE),
        ("0", R.INVALID_STAKE),
        ("-50", R.INVALID_STAKE),
        ("NaN", R.INVALID_STAKE),
        ("Infinity", R.INVALID_STAKE),
    ],
)
def test_stake_bounds_and_decimals(stake: str, expected: R | None) -> None:
    assert reason(a_credit_bet(stake=stake, price="0.9999")) is expected


@pytest.mark.parametrize(
    ("price", "expected"),
    [
        ("0.0001", None),
        ("0.9999", None),
        ("0.5", None),
        ("0.0000", R.INVALID_PRICE),
        ("1.0000", R.INVALID_PRICE),
        ("0.00005", R.INVALID_PRICE),
        ("0.12345", R.INVALID_PRICE),
        ("-0.5", R.INVALID_PRICE),
    ],
)
def test_price_bounds_and_decimals(price: str, expected: R | None) -> None:
    # stake 10 at 0.0001 may win 100,000: under the cap
    assert reason(a_credit_bet(stake="10.00", price=price)) is expected


@pytest.mark.parametrize(
    ("odds", "expected"),
    [
        ("1.0001", None),
        ("1000", None),
        ("1.0000", R.INVALID_ODDS),
        ("0.5", R.INVALID_ODDS),
        ("1000.0001", R.INVALID_ODDS),
        ("2.00001", R.INVALID_ODDS),
    ],
)
def test_odds_above_one(odds: str, expected: R | None) -> None:
    assert reason(a_sports_bet(legs=(("mm-1", "home", odds),))) is expected


def parlay(n: int, odds: str = "1.5000") -> BetPlaced:
    return a_sports_bet(legs=tuple((f"mm-{i}", "home", odds) for i in range(n)))


def test_parlays_have_2_to_10_legs_on_distinct_markets() -> None:
    assert reason(parlay(2)) is None
    assert reason(parlay(10)) is None
    assert reason(parlay(11)) is R.INVALID_LEGS
    one = parlay(2)
    assert reason(replace(one, legs=one.legs[:1])) is R.INVALID_LEGS
    same = a_sports_bet(legs=(("mm-1", "home", "2"), ("mm-1", "away", "3")))
    assert reason(same) is R.INVALID_LEGS


def test_the_shape_of_a_bet_matches_its_kind() -> None:
    credit = a_credit_bet()
    two_credit_legs = replace(credit, legs=credit.legs * 2)
    assert reason(two_credit_legs) is R.INVALID_LEGS
    with_odds = BetLeg(market_id="pm-1", selection="Yes", price=D("0.5"), odds=D("2"))
    assert reason(replace(credit, legs=(with_odds,))) is R.INVALID_LEGS
    no_price = BetLeg(market_id="pm-1", selection="Yes")
    assert reason(replace(credit, legs=(no_price,))) is R.INVALID_PRICE
    single = a_sports_bet()
    priced = BetLeg(market_id="mm-1", selection="home", price=D("0.5"))
    assert reason(replace(single, legs=(priced,))) is R.INVALID_LEGS
    assert reason(replace(single, member_id="")) is R.MALFORMED


def test_the_market_must_be_open_and_not_expired_at_placement() -> None:
    bet = a_credit_bet()
    assert reason(bet, {"pm-1": a_view(closed=True)}) is R.MARKET_CLOSED
    assert reason(bet, {"pm-1": a_view(active=False)}) is R.MARKET_CLOSED
    assert reason(bet, {"pm-1": None}) is R.UNKNOWN_MARKET
    assert reason(bet, {}) is R.UNKNOWN_MARKET
    assert reason(bet, {"pm-1": a_view(end_date=PLACED)}) is R.MARKET_EXPIRED  # at the end
    assert reason(bet, {"pm-1": a_view(end_date=PLACED + timedelta(milliseconds=1))}) is None
    assert reason(bet, {"pm-1": a_view(end_date=None)}) is None
    assert reason(a_credit_bet(selection="Maybe")) is R.INVALID_SELECTION
    on_match = {"pm-1": a_view(kind=MarketKind.MATCH_1X2)}
    assert reason(a_credit_bet(selection="home"), on_match) is R.INVALID_LEGS
    on_binary = {"mm-1": a_view("mm-1")}
    assert reason(a_sports_bet(legs=(("mm-1", "Yes", "2"),)), on_binary) is R.INVALID_LEGS


def test_every_leg_of_a_parlay_must_be_open() -> None:
    views = match_views("mm-0", "mm-1", "mm-2")
    views["mm-2"] = a_view("mm-2", kind=MarketKind.MATCH_1X2, closed=True)
    assert reason(parlay(3), views) is R.MARKET_CLOSED


def test_a_resolved_market_is_closed_from_its_resolution_on() -> None:
    timeline = MarketTimeline("pm-1").add(a_market()).add(a_resolution(at=PLACED))
    before = timeline.at(PLACED - timedelta(milliseconds=1))
    assert before is not None and not before.resolved
    at = timeline.at(PLACED)
    assert at is not None and at.resolved
    assert reason(a_credit_bet(), {"pm-1": at}) is R.MARKET_CLOSED


def test_the_first_failing_check_is_the_reason() -> None:
    bad_stake_on_closed = a_credit_bet(stake="5")
    assert reason(bad_stake_on_closed, {"pm-1": a_view(closed=True)}) is R.INVALID_STAKE
    assert reason(a_credit_bet(price="1"), {}) is R.INVALID_PRICE
    assert reason(a_credit_bet(stake="20000"), staked="9990") is R.INVALID_STAKE
    closed_and_broke = {"pm-1": a_view(closed=True)}
    assert reason(a_credit_bet(), closed_and_broke, staked="10000") is R.MARKET_CLOSED


def test_the_balance_must_cover_the_stake() -> None:
    assert reason(a_credit_bet(stake="100.00", price="0.9"), staked="9900") is None
    assert (
        reason(a_credit_bet(stake="100.01", price="0.9"), staked="9900") is R.INSUFFICIENT_BALANCE
    )
    assert reason(a_credit_bet(stake="10000", price="0.9")) is None  # the whole grant


def test_the_bet_may_not_take_the_balance_above_the_cap() -> None:
    # grant 10,000 - stake 99.01 + 990,100.00 = 1,000,000.99 > cap
    assert reason(a_credit_bet(stake="99.01", price="0.0001")) is R.PAYOUT_LIMIT
    # 10,000 - 99 + 990,000 = 999,901: under
    assert reason(a_credit_bet(stake="99.00", price="0.0001")) is None
    # exactly at the cap: 10,000 - 10 + 100,000 + (potential 890,010) = 1,000,000
    assert reason(a_credit_bet(stake="10.00", price="0.0001"), potential="890010") is None
    assert reason(a_credit_bet(stake="10.00", price="0.0001"), potential="890010.01") is (
        R.PAYOUT_LIMIT
    )
    assert reason(parlay(10, "1000")) is R.PAYOUT_LIMIT


def test_the_budget_counts_stakes_and_max_payouts_of_accepted_bets() -> None:
    budget = Budget().accept(a_credit_bet(stake="100.00", price="0.2500"))
    assert budget == Budget(staked=D("100.00"), potential=D("400.00"))
    assert budget.available == INITIAL_GRANT - 100
    assert budget.ceiling == INITIAL_GRANT - 100 + 400


def test_views_at_placement() -> None:
    events = [
        a_market(at=OPEN),
        a_market(closed=True, active=False, version=3, at=OPEN + timedelta(days=1)),
    ]
    by_market = timelines(events)
    assert views_at(a_credit_bet(placed_at=OPEN - timedelta(seconds=1)), by_market) == {
        "pm-1": None
    }
    open_view = views_at(a_credit_bet(placed_at=OPEN), by_market)["pm-1"]
    assert open_view is not None and not open_view.closed
    later = a_credit_bet(placed_at=OPEN + timedelta(days=1))
    closed_view = views_at(later, by_market)["pm-1"]
    assert closed_view is not None and closed_view.closed
    assert views_at(a_credit_bet(market_id="pm-x"), by_market) == {"pm-x": None}


def test_the_timeline_keeps_status_changes_only_in_any_order() -> None:
    moves = [a_market(version=v, at=OPEN + timedelta(hours=v)) for v in range(1, 50)]
    close = a_market(closed=True, version=50, at=OPEN + timedelta(hours=50))
    shuffled = [*moves, close]
    random.Random(3).shuffle(shuffled)
    timeline = timelines(shuffled)["pm-1"]
    assert len(timeline.changes) == 2
    in_order = MarketTimeline("pm-1")
    for event in [*moves, close]:
        in_order = in_order.add(event)
    assert timeline == in_order
    backwards = MarketTimeline("pm-1")
    for event in reversed([*moves, close]):
        backwards = backwards.add(event)
    assert backwards == in_order
    with pytest.raises(ValueError):
        timeline.add(a_market("pm-2"))


# --- settlement --------------------------------------------------------------------------


def test_the_latest_resolution_is_the_highest_version() -> None:
    v1, v2 = a_resolution(outcome="Yes"), a_resolution(outcome="No", version=2)
    events: list[MarketUpdated | MarketResolved] = [v2, a_market(), v1, a_resolution("pm-2", None)]
    assert latest_resolutions(events) == {"pm-1": v2, "pm-2": a_resolution("pm-2", None)}
    timeline = timelines(events)["pm-1"]
    assert timeline.latest_resolution == v2
    assert timeline.add(v1) is timeline, "a redelivered resolution changes nothing"
    assert MarketTimeline("pm-1").latest_resolution is None


def test_credit_bets_settle_won_lost_void() -> None:
    bet = a_credit_bet(stake="100.00", price="0.3000")
    assert settle(bet, {}) is None
    assert settle(bet, {"pm-1": a_resolution(outcome="Yes")}) == Result(S.WON, D("333.33"))
    assert settle(bet, {"pm-1": a_resolution(outcome="No")}) == Result(S.LOST, D("0.00"))
    assert settle(bet, {"pm-1": a_resolution(outcome=None)}) == Result(S.VOID, D("100.00"))


def resolved(*pairs: tuple[str, str | None]) -> dict[str, MarketResolved]:
    return {m: a_resolution(m, outcome) for m, outcome in pairs}


def test_a_parlay_wins_only_if_every_non_void_leg_wins() -> None:
    legs = (("mm-1", "home", "2.0000"), ("mm-2", "away", "3.0000"), ("mm-3", "draw", "1.5000"))
    bet = a_sports_bet(stake="10.00", legs=legs)
    everything = resolved(("mm-1", "home"), ("mm-2", "away"), ("mm-3", "draw"))
    assert settle(bet, everything) == Result(S.WON, D("90.00"))
    one_void = {**everything, "mm-2": a_resolution("mm-2", None)}
    assert settle(bet, one_void) == Result(S.WON, D("30.00"))  # 10 x 2 x 1.5
    one_lost = {**one_void, "mm-3": a_resolution("mm-3", "home")}
    assert settle(bet, one_lost) == Result(S.LOST, D("0.00"))
    all_void = resolved(("mm-1", None), ("mm-2", None), ("mm-3", None))
    assert settle(bet, all_void) == Result(S.VOID, D("10.00"))


def test_a_parlay_settles_only_when_its_last_market_resolves() -> None:
    legs = (("mm-1", "home", "2.0000"), ("mm-2", "away", "3.0000"))
    bet = a_sports_bet(legs=legs)
    assert settle(bet, resolved(("mm-1", "draw"))) is None  # lost already, but not settled


def test_a_ten_leg_parlay() -> None:
    bet = parlay(10, "1.2345")
    all_won = resolved(*((f"mm-{i}", "home") for i in range(10)))
    exact = Fraction(10) * Fraction("1.2345") ** 10  # 82.2020...
    expected = Decimal(int(exact * 100)).scaleb(-2)
    assert settle(bet, all_won) == Result(S.WON, expected)
    assert expected == D("82.20")
    nine_void = {
        **{f"mm-{i}": a_resolution(f"mm-{i}", None) for i in range(10)},
        "mm-4": all_won["mm-4"],
    }
    assert settle(bet, nine_void) == Result(S.WON, D("12.34"))  # one leg left: 12.345 down


def test_next_settlement_versions_and_what_they_reverse() -> None:
    bet = a_credit_bet(stake="100.00", price="0.5000")
    at = END + timedelta(hours=2)
    first = next_settlement(bet, None, resolved(("pm-1", "Yes")), at)
    assert first is not None
    assert (first.status, first.payout, first.version, first.previous_payout) == (
        S.WON,
        D("200.00"),
        1,
        None,
    )
    assert first.idempotency_key == "bet:b1:settlement:v1"
    assert first.board_ids == ("pnl:markets:overall", "pnl:markets:week:2026-W47")
    assert next_settlement(bet, first, resolved(("pm-1", "Yes")), at) is None
    second = next_settlement(bet, first, resolved(("pm-1", None)), at + timedelta(days=1))
    assert second is not None
    assert (second.status, second.payout, second.version, second.previous_payout) == (
        S.VOID,
        D("100.00"),
        2,
        D("200.00"),
    )


def test_history_of_a_market_resolved_again() -> None:
    bet = a_credit_bet(stake="100.00", price="0.5000")
    t1 = END + timedelta(hours=2)
    v1 = a_resolution(outcome="Yes", version=1, at=t1)
    v2 = a_resolution(outcome="No", version=2, at=t1 + timedelta(days=10))
    same = a_resolution(outcome="No", version=3, at=t1 + timedelta(days=11))
    back = a_resolution(outcome="Yes", version=4, at=t1 + timedelta(days=12))
    history = settlement_history(bet, [back, same, v1, v2, v1])  # any order, a duplicate
    assert [(s.version, s.status, s.payout, s.settled_at) for s in history] == [
        (1, S.WON, D("200.00"), v1.resolved_at),
        (2, S.LOST, D("0.00"), v2.resolved_at),
        (3, S.WON, D("200.00"), back.resolved_at),
    ]
    assert history[2].board_ids[1] == "pnl:markets:week:2026-W49"
    assert settlement_history(bet, [a_resolution("pm-other")]) == []


def test_history_of_a_parlay_follows_event_time() -> None:
    legs = (("mm-1", "home", "2.0000"), ("mm-2", "away", "3.0000"))
    bet = a_sports_bet(stake="10.00", legs=legs)
    t = END + timedelta(hours=2)
    a1 = a_resolution("mm-1", "home", at=t)
    a2 = a_resolution("mm-1", "draw", version=2, at=t + timedelta(hours=1))
    b1 = a_resolution("mm-2", "away", at=t + timedelta(hours=2))
    # mm-1 corrected before mm-2 resolved: one settlement, on the corrected result
    assert [(s.version, s.status) for s in settlement_history(bet, [b1, a2, a1])] == [(1, S.LOST)]
    late = a_resolution("mm-1", "draw", version=2, at=t + timedelta(hours=3))
    history = settlement_history(bet, [b1, late, a1])
    assert [(s.version, s.status, s.payout, s.settled_at) for s in history] == [
        (1, S.WON, D("60.00"), b1.resolved_at),
        (2, S.LOST, D("0.00"), late.resolved_at),
    ]


def test_a_correction_notice() -> None:
    bet = a_credit_bet(stake="100.00", price="0.5000")
    history = settlement_history(
        bet,
        [
            a_resolution(outcome="Yes"),
            a_resolution(outcome="No", version=2, at=END + timedelta(days=3)),
        ],
    )
    notice = correction_notice(history[0], history[1])
    assert (notice.member_id, notice.subject, notice.delta, notice.version) == (
        "m1",
        "bet:b1",
        D("-200.00"),
        2,
    )
    assert (notice.old_result, notice.new_result) == ("won 200.00", "lost 0.00")
    assert notice.corrected_at == history[1].settled_at


# --- ledger and PnL ----------------------------------------------------------------------


def test_ledger_entries_of_a_resettled_bet() -> None:
    bet = a_credit_bet(stake="100.00", price="0.5000")
    history = settlement_history(
        bet,
        [
            a_resolution(outcome="Yes"),
            a_resolution(outcome=None, version=2, at=END + timedelta(days=2)),
            a_resolution(outcome="No", version=3, at=END + timedelta(days=3)),
        ],
    )
    entries = [stake_entry(bet), *(e for s in history for e in settlement_entries(s))]
    assert [(e.key, e.kind, e.amount) for e in entries] == [
        ("bet:b1:stake", EntryKind.STAKE, D("-100.00")),
        ("bet:b1:payout:v1", EntryKind.PAYOUT, D("200.00")),
        ("bet:b1:reversal:v2", EntryKind.REVERSAL, D("-200.00")),
        ("bet:b1:refund:v2", EntryKind.REFUND, D("100.00")),
        ("bet:b1:reversal:v3", EntryKind.REVERSAL, D("-100.00")),
    ]  # lost: no zero payout entry
    assert balances(entries) == {"m1": D("-100.00")}


def test_iso_weeks_in_utc() -> None:
    assert iso_week(datetime(2026, 11, 22, 23, 59, 59, tzinfo=UTC)) == "2026-W47"
    assert iso_week(datetime(2026, 11, 23, 0, 0, tzinfo=UTC)) == "2026-W48"
    # Monday 01:00 in Paris is still Sunday in UTC
    paris = timezone(timedelta(hours=1))
    assert iso_week(datetime(2026, 11, 23, 0, 30, tzinfo=paris)) == "2026-W47"
    assert iso_week(datetime(2027, 1, 1, tzinfo=UTC)) == "2026-W53"
    with pytest.raises(ValueError):
        iso_week(datetime(2026, 11, 23))  # noqa: DTZ001 - naive on purpose
    assert pnl_board_ids(Game.BETTING, OPEN) == ("pnl:betting:overall", "pnl:betting:week:2026-W47")


def test_pnl_delta() -> None:
    base = next_settlement(
        a_credit_bet(stake="100.00", price="0.5000"), None, resolved(("pm-1", "Yes")), END
    )
    assert base is not None and pnl_delta(base) == D("100.00")
    lost = replace(
        base,
        status=S.LOST,
        payout=D("0.00"),
        version=2,
        previous_payout=D("200.00"),
    )
    assert pnl_delta(lost) == D("-200.00")


def test_cents_is_the_one_from_schemas() -> None:
    assert markets.CENTS is CENTS


# --- properties --------------------------------------------------------------------------

stakes = st.integers(1_000, 1_000_000).map(lambda c: Decimal(c).scaleb(-2))
prices = st.integers(1, 9_999).map(lambda t: Decimal(t).scaleb(-4))
odds_values = st.integers(10_001, 10_000_000).map(lambda t: Decimal(t).scaleb(-4))


def check_rounded_down(payout: Decimal, exact: Fraction) -> None:
    assert payout >= 0
    # In cents exactly (a 10-leg parlay can pay over 10^26: more digits than the default
    # context's 28, so quantize with room to spare, as the rules do).
    assert payout == payout.quantize(CENTS, context=Context(prec=2_000))
    assert Fraction(payout) <= exact < Fraction(payout) + Fraction(1, 100)


@given(stakes, prices)
def test_a_credit_payout_is_the_exact_value_rounded_down(stake: Decimal, price: Decimal) -> None:
    payout = credit_payout(stake, price)
    check_rounded_down(payout, Fraction(stake) / Fraction(price))
    assert payout >= stake  # a price below 1 never pays back less than the stake


@given(stakes, st.lists(odds_values, min_size=1, max_size=10), st.randoms(use_true_random=False))
def test_a_parlay_payout_is_exact_rounded_down_and_order_free(
    stake: Decimal, odds: list[Decimal], rnd: random.Random
) -> None:
    exact = Fraction(stake)
    for leg_odds in odds:
        exact *= Fraction(leg_odds)
    payout = parlay_payout(stake, odds)
    check_rounded_down(payout, exact)
    shuffled = list(odds)
    rnd.shuffle(shuffled)
    assert parlay_payout(stake, shuffled) == payout


leg_results = st.sampled_from(["won", "lost", "void"])


@given(
    stakes,
    st.lists(st.tuples(odds_values, leg_results), min_size=1, max_size=10),
    st.randoms(use_true_random=False),
)
def test_a_sports_bet_result(
    stake: Decimal, legs: list[tuple[Decimal, str]], rnd: random.Random
) -> None:
    def bet_of(
        ordered: list[tuple[int, Decimal, str]],
    ) -> tuple[BetPlaced, dict[str, MarketResolved]]:
        bet = a_sports_bet(
            stake=str(stake), legs=tuple((f"mm-{i}", "home", str(o)) for i, o, _ in ordered)
        )
        outcome = {"won": "home", "lost": "away", "void": None}
        return bet, {f"mm-{i}": a_resolution(f"mm-{i}", outcome[r]) for i, _, r in ordered}

    indexed = [(i, o, r) for i, (o, r) in enumerate(legs)]
    bet, resolutions = bet_of(indexed)
    result = settle(bet, resolutions)
    results = [r for _, r in legs]
    if "lost" in results:
        assert result == Result(S.LOST, D("0.00"))
    elif all(r == "void" for r in results):
        assert result == Result(S.VOID, stake)  # the refund is the stake, exactly
    else:
        won = [o for o, r in legs if r == "won"]
        assert result == Result(S.WON, parlay_payout(stake, won))
        assert result is not None and result.payout >= stake
    rnd.shuffle(indexed)
    assert settle(*bet_of(indexed)) == result


def _credit_bets(selections: list[tuple[str, int, int]]) -> list[BetPlaced]:
    return [
        a_credit_bet(
            f"b{n}",
            member_id=f"m{member}",
            stake=str(Decimal(cents).scaleb(-2)),
            price="0.2500",
            selection=selection,
        )
        for n, (selection, member, cents) in enumerate(selections)
    ]


@given(
    st.lists(
        st.tuples(st.sampled_from(["Yes", "No"]), st.integers(0, 3), st.integers(1_000, 50_000)),
        min_size=1,
        max_size=20,
    ),
    st.sampled_from(["Yes", "No", None]),
    st.lists(st.sampled_from(["Yes", "No", None]), min_size=1, max_size=4),
)
def test_resettling_back_to_the_original_outcome_restores_the_balances(
    selections: list[tuple[str, int, int]], original: str | None, detour: list[str | None]
) -> None:
    bets = _credit_bets(selections)
    listing = a_market()
    first = a_resolution(outcome=original)
    resolutions = [first]
    for version, outcome in enumerate([*detour, original], start=2):
        resolutions.append(
            a_resolution(outcome=outcome, version=version, at=END + timedelta(days=version))
        )
    once = oracle([listing, first], bets)
    again = oracle([listing, *resolutions], bets)
    assert again.balances == once.balances
    assert {b: s.payout for b, s in again.final.items()} == {
        b: s.payout for b, s in once.final.items()
    }
    # after the detour, back at v1's result; versions counted every change
    for bet_id, settled in again.final.items():
        assert settled.status == once.final[bet_id].status


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[list[MarketUpdated | MarketResolved], list[BetPlaced]]:
    """A few markets, bets of 3 members (limits included), resolutions resolved again."""
    binaries, matches = ["pm-0", "pm-1", "pm-2"], ["mm-0", "mm-1", "mm-2", "mm-3"]
    events: list[MarketUpdated | MarketResolved] = [a_market(m) for m in binaries]
    events += [a_market(m, kind=MarketKind.MATCH_1X2) for m in matches]
    for m in binaries + matches:
        names = ["Yes", "No", None] if m in binaries else ["home", "draw", "away", None]
        outcomes = draw(st.lists(st.sampled_from(names), max_size=3))
        for version, outcome in enumerate(outcomes, start=1):
            at = END + timedelta(hours=draw(st.integers(1, 500)), milliseconds=version)
            events.append(a_resolution(m, outcome, version=version, at=at))
    bets: list[BetPlaced] = []
    big = st.sampled_from([D("10"), D("10000"), D("2500.55"), D("99.99")])
    for n in range(draw(st.integers(0, 25))):
        member = f"m{draw(st.integers(0, 2))}"
        stake = draw(st.one_of(big, stakes))
        placed_at = PLACED + timedelta(seconds=draw(st.integers(0, 3_600)))
        if draw(st.booleans()):
            bets.append(
                a_credit_bet(
                    f"b{n}",
                    member_id=member,
                    stake=str(stake),
                    price=str(draw(prices)),
                    selection=draw(st.sampled_from(["Yes", "No"])),
                    market_id=draw(st.sampled_from(binaries)),
                    placed_at=placed_at,
                )
            )
        else:
            markets_of_bet = draw(
                st.lists(st.sampled_from(matches), min_size=1, max_size=4, unique=True)
            )
            legs = tuple(
                (m, draw(st.sampled_from(["home", "draw", "away"])), str(draw(odds_values)))
                for m in markets_of_bet
            )
            bets.append(
                a_sports_bet(
                    f"b{n}", stake=str(stake), legs=legs, member_id=member, placed_at=placed_at
                )
            )
    return events, bets


@settings(max_examples=150, deadline=None)
@given(scenarios(), st.randoms(use_true_random=False))
def test_balances_are_the_ledger_and_stay_within_bounds_in_any_order(
    scenario: tuple[list[MarketUpdated | MarketResolved], list[BetPlaced]], rnd: random.Random
) -> None:
    events, bets = scenario
    result = oracle(events, bets)
    members = {b.member_id for b in bets}
    assert set(result.balances) == members
    for member in members:
        accepted = [b for b in result.accepted.values() if b.member_id == member]
        payouts = sum((s.payout for s in result.final.values() if s.member_id == member), D(0))
        expected = INITIAL_GRANT - sum((b.stake for b in accepted), D(0)) + payouts
        assert result.balances[member] == expected
        assert D(0) <= result.balances[member] <= BALANCE_CAP
    # Any order a partitioned ledger could apply the entries in: the grant first, each
    # bet's entries in order (stake, then versions), bets interleaved at random.
    chains: dict[str, list[Decimal]] = {}
    for entry in result.ledger.values():
        chains.setdefault(entry.bet_id or f"grant:{entry.member_id}", []).append(entry.amount)
    for member in members:
        running = INITIAL_GRANT
        queues = [
            list(c)
            for k, c in sorted(chains.items())
            if k.startswith("b") and _member_of(result, k) == member
        ]
        while queues:
            queue = rnd.choice(queues)
            running += queue.pop(0)
            assert D(0) <= running <= BALANCE_CAP
            queues = [q for q in queues if q]
        assert running == result.balances[member]
    # Settlement versions: 1, 2, ... per bet, each once, alternating results.
    versions: dict[str, list[int]] = {}
    for s in result.settlements:
        versions.setdefault(s.bet_id, []).append(s.version)
    assert all(v == list(range(1, len(v) + 1)) for v in versions.values())
    # PnL: overall = sum of the weeks = final payouts - stakes of settled bets.
    for game in (Game.MARKETS, Game.BETTING):
        overall = result.boards.get(f"pnl:{game}:overall", {})
        weekly: dict[str, Decimal] = {}
        for board_id, lines in result.boards.items():
            if board_id.startswith(f"pnl:{game}:week:"):
                for m, line in lines.items():
                    weekly[m] = weekly.get(m, D(0)) + line.total
        assert {m: line.total for m, line in overall.items()} == weekly
        settled = [s for s in result.final.values() if _game(result, s.bet_id) == game]
        expected_pnl: dict[str, Decimal] = {}
        for s in settled:
            expected_pnl[s.member_id] = expected_pnl.get(s.member_id, D(0)) + s.payout - s.stake
        assert weekly == expected_pnl


def _member_of(result: markets.MarketsOracle, bet_id: str) -> str:
    return result.accepted[bet_id].member_id


def _game(result: markets.MarketsOracle, bet_id: str) -> Game:
    return markets.game_of(result.accepted[bet_id])


@settings(max_examples=50, deadline=None)
@given(scenarios())
def test_the_oracle_reads_the_bets_in_any_publish_order(
    scenario: tuple[list[MarketUpdated | MarketResolved], list[BetPlaced]],
) -> None:
    events, bets = scenario
    expected = oracle(events, bets)
    shuffled = list(reversed(bets)) + bets[:3]  # another order, and redeliveries
    got = oracle(list(reversed(events)), shuffled)
    assert got.balances == expected.balances
    assert got.ledger == expected.ledger
    assert list(got.settlements) == list(expected.settlements)
    assert got.rejected == expected.rejected
