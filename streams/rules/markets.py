"""Credit markets and sports bets: validity, payouts, settlement, ledger, PnL, the oracle.

Pure: no I/O, no clock (times come in as arguments), no Kafka. The settlement worker, the
ledger sink and the PnL boards call these functions; :func:`oracle` composes them into what
the system must end with, from the market events and the bets alone.

Two games share one credits ledger per member (``Game.MARKETS``: ``credit`` bets on binary
markets at a price; ``Game.BETTING``: ``single`` and ``parlay`` bets on match markets at
decimal odds). Money is ``Decimal`` with 2 decimals (:data:`CENTS`), prices and odds have 4.

**Validity** (:func:`validate`), checked in this order; the first failure is the reason:

1. the bet: ``malformed`` (an empty bet, member or market id); ``invalid_legs`` (credit and
   single: 1 leg; parlay: 2-10 legs on distinct markets; a credit leg has a price and no
   odds, a sports leg odds and no price); ``invalid_stake`` (10.00 <= stake <= 10,000.00,
   at most 2 decimals); ``invalid_price`` (credit: 0.0001 <= price <= 0.9999, at most 4
   decimals); ``invalid_odds`` (sports: 1 < odds <= 1,000, at most 4 decimals);
2. each leg's market as of ``placed_at``, leg by leg: ``unknown_market`` (not listed yet);
   ``market_closed`` (inactive, closed or resolved); ``market_expired`` (``placed_at`` at
   or after its end date, even when the feed has not closed it yet); ``invalid_selection``
   (not one of its outcomes); ``invalid_legs`` (a credit bet on a match market, or a sports
   bet on a binary one);
3. the member: ``insufficient_balance`` (stake > available credits, :class:`Budget`);
   ``payout_limit`` (the bet could take the balance above :data:`BALANCE_CAP`).

The market is judged as of ``placed_at`` (:class:`MarketTimeline`), never as of the moment a
worker happens to read the bet. The decimals rules only bite in-process: the Avro wire
(``decimal(18, 2)``, ``decimal(6, 4)``, ``decimal(10, 4)``) cannot carry more decimals.

**Payouts** (stake included): a winning credit bet pays ``stake / price``, a sports bet
``stake x`` the product of its winning legs' odds (void legs drop out, odds 1), multiplied
exactly (an inexact product raises) and rounded down to 0.01 once; a lost bet pays 0 (a
parlay is lost when any leg is lost); a void bet (every leg void) refunds the stake. A bet
settles when the last of its markets resolves (:func:`settle`).

**Resettlement**: a market resolved again (a higher resolution version) with a different
result gives the bet a new settlement version; the same result again changes nothing.
Versions come from the resolutions in event time (:func:`settlement_history`).

**Ledger** (:class:`LedgerEntry`, one unique key each; balance = sum of the ledger):
``grant:{member}`` +:data:`INITIAL_GRANT` before the member's first bet;
``bet:{bet}:stake`` -stake at acceptance; ``bet:{bet}:payout:v{n}`` (won) or
``bet:{bet}:refund:v{n}`` (void) +payout of settlement version n;
``bet:{bet}:reversal:v{n}`` -payout of version n-1, written with version n. Zero amounts
are not written.

**Balances stay in [0, 1,000,000] by construction, never by clamping.** Stakes are paid from
the grant only: available = grant - stakes of accepted bets (winnings and refunds count in
the balance and the PnL, but are never staked again). So balance >= grant - stakes >= 0
whatever is settled, resettled or reversed, in any order, and a reversal can never take a
balance below zero. A bet is accepted only if the balance stays under the cap even if every
accepted bet of the member won: grant - stakes + sum of max payouts <= :data:`BALANCE_CAP`.
Clamping instead (crediting up to the cap, or flooring a reversal at zero) would make an
entry's amount depend on which other entries were applied first, and a partitioned ledger
cannot order those; with these two rules every entry's amount is a function of its bet alone.

**Processing order** (what the worker must follow for the oracle to hold):

1. A market's events in their order on its partition (``fixtures.markets`` is keyed by
   market_id). Its state at an instant is :meth:`MarketTimeline.at`.
2. Each member's bets in placement order (``placed_at``, then ``bet_id``); a ``bet_id`` seen
   again counts once (the first read stands). A bet's verdict depends only on the member's
   earlier accepted bets (:class:`Budget`) and its markets as of ``placed_at``, never on any
   settlement, so no payout can race an acceptance. ``entries.bets`` is keyed by bet_id, so a
   worker needs a per-member order: key it by member_id (the upstream app publishes each
   member's bets in placement order) or merge by ``placed_at`` before judging.
3. A bet's settlements: on each resolution of one of its markets, :func:`settlement_history`
   of every resolution of its markets known so far (event time: ``resolved_at``, market,
   version); emit the versions not emitted yet. Single-market bets follow their partition.
   A parlay emits nothing until all its markets resolved, so the order in which partitions
   are read only matters if a re-resolution of one of its markets is read after a
   resolution of another that is later in event time (the simulated season has one
   re-resolved match market, resolved again after every other event, so it cannot).

**PnL** (:func:`pnl_delta`): payouts - stakes of settled bets. A first settlement counts
``payout - stake``, a resettlement ``payout - previous payout``, each on the overall board
and on the ISO week (UTC) of its ``settled_at``: ``pnl:<game>:overall``,
``pnl:<game>:week:2026-W47``. Open bets count nothing.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import (
    ROUND_DOWN,
    Context,
    Decimal,
    DivisionByZero,
    Inexact,
    InvalidOperation,
    Overflow,
)
from enum import StrEnum
from itertools import pairwise

from schemas.catalog import ENTRIES_BETS
from schemas.records import (
    CENTS,
    PRICE_TICK,
    BetKind,
    BetPlaced,
    BetSettled,
    EntryRejected,
    Game,
    MarketResolved,
    MarketUpdated,
    RejectionReason,
    ResultCorrected,
    SettlementStatus,
)
from schemas.records.fixtures import MarketKind
from streams.rules.boards import BoardLine

__all__ = [
    "BALANCE_CAP",
    "CENTS",
    "INITIAL_GRANT",
    "MAX_LEGS",
    "MAX_ODDS",
    "MAX_PRICE",
    "MAX_STAKE",
    "MIN_LEGS",
    "MIN_PRICE",
    "MIN_STAKE",
    "ODDS_TICK",
    "Budget",
    "EntryKind",
    "LedgerEntry",
    "MarketEvent",
    "MarketTimeline",
    "MarketView",
    "MarketsOracle",
    "Rejection",
    "Result",
    "balances",
    "correction_notice",
    "credit_payout",
    "game_of",
    "grant_entry",
    "iso_week",
    "latest_resolutions",
    "max_payout",
    "next_settlement",
    "oracle",
    "parlay_payout",
    "pnl_board_ids",
    "pnl_boards",
    "pnl_delta",
    "rejection_record",
    "settle",
    "settlement_entries",
    "settlement_history",
    "settlement_key",
    "stake_entry",
    "timelines",
    "validate",
    "views_at",
]

MIN_STAKE = Decimal("10.00")
MAX_STAKE = Decimal("10000.00")
MIN_PRICE = PRICE_TICK
MAX_PRICE = Decimal("0.9999")
#: Decimal odds have 4 decimals on the wire (``decimal(10, 4)``).
ODDS_TICK = PRICE_TICK
MAX_ODDS = Decimal("1000")
MIN_LEGS, MAX_LEGS = 2, 10
#: Credits every member starts with (ledger entry ``grant:{member_id}``).
INITIAL_GRANT = Decimal("10000.00")
#: No balance ever exceeds this (see "Balances" above).
BALANCE_CAP = Decimal("1000000.00")
_ZERO = Decimal("0.00")

MarketEvent = MarketUpdated | MarketResolved


# --- markets as of an instant ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MarketView:
    """What validation reads of a market at one instant."""

    market_id: str
    kind: MarketKind
    outcomes: frozenset[str]
    active: bool
    closed: bool
    end_date: datetime | None
    resolved: bool = False


_Status = tuple[MarketKind, frozenset[str], bool, bool, datetime | None]


@dataclass(frozen=True, slots=True)
class MarketTimeline:
    """A market's status changes in event time, and its resolutions.

    Price moves that change nothing validation reads are not kept, so a timeline stays
    small however often prices move. Add a market's events in their partition order (time
    order); an older one is put in its place, exact unless a dropped price move was the
    only sign of a reopening. :func:`timelines` sorts first.
    """

    market_id: str
    changes: tuple[tuple[datetime, int, _Status], ...] = ()
    resolutions: tuple[MarketResolved, ...] = ()

    def add(self, event: MarketEvent) -> MarketTimeline:
        """The timeline with ``event``; ValueError for another market's event."""
        if event.market_id != self.market_id:
            raise ValueError(f"event of {event.market_id} added to {self.market_id}")
        if isinstance(event, MarketResolved):
            if event in self.resolutions:
                return self
            ordered = sorted((*self.resolutions, event), key=_resolution_order)
            return replace(self, resolutions=tuple(ordered))
        status: _Status = (
            event.kind,
            frozenset(o.name for o in event.outcomes),
            event.active,
            event.closed,
            event.end_date,
        )
        key = (event.updated_at, event.version)
        at = bisect.bisect_right(self.changes, key, key=lambda c: (c[0], c[1]))
        if at and self.changes[at - 1][2] == status:
            return self  # a price move: nothing validation reads changed
        change = (event.updated_at, event.version, status)
        after = self.changes[at:]
        if after and after[0][2] == status:  # an older event: the next change is its repeat
            after = after[1:]
        return replace(self, changes=(*self.changes[:at], change, *after))

    def at(self, when: datetime) -> MarketView | None:
        """The market as of ``when`` (events at ``when`` included); None before its listing."""
        index = bisect.bisect_right(self.changes, when, key=lambda c: c[0])
        if index == 0:
            return None
        kind, outcomes, active, closed, end_date = self.changes[index - 1][2]
        resolved = bool(self.resolutions) and self.resolutions[0].resolved_at <= when
        return MarketView(self.market_id, kind, outcomes, active, closed, end_date, resolved)

    @property
    def latest_resolution(self) -> MarketResolved | None:
        """The resolution with the highest version (None while unresolved)."""
        return max(self.resolutions, key=lambda r: r.version, default=None)


def _resolution_order(r: MarketResolved) -> tuple[datetime, int]:
    return (r.resolved_at, r.version)


def timelines(events: Iterable[MarketEvent]) -> dict[str, MarketTimeline]:
    """A timeline per market from its events (any order: sorted by time, then version)."""
    out: dict[str, MarketTimeline] = {}
    for event in sorted(events, key=_event_time):
        current = out.get(event.market_id) or MarketTimeline(event.market_id)
        out[event.market_id] = current.add(event)
    return out


def _event_time(event: MarketEvent) -> tuple[datetime, int]:
    if isinstance(event, MarketUpdated):
        return (event.updated_at, event.version)
    return (event.resolved_at, event.version)


def views_at(
    bet: BetPlaced, markets: Mapping[str, MarketTimeline], when: datetime | None = None
) -> dict[str, MarketView | None]:
    """The bet's markets as of ``when`` (default ``placed_at``), None when not listed."""
    at = bet.placed_at if when is None else when
    out: dict[str, MarketView | None] = {}
    for leg in bet.legs:
        timeline = markets.get(leg.market_id)
        out[leg.market_id] = timeline.at(at) if timeline is not None else None
    return out


# --- validity ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a bet is refused: the reason code and a line for humans."""

    reason: RejectionReason
    detail: str


@dataclass(frozen=True, slots=True)
class Budget:
    """What a member may still stake and still win, from their accepted bets alone.

    ``available`` (grant - stakes) is what the next stake is checked against; ``ceiling``
    (available + the max payouts of every accepted bet) is the most the balance could ever
    reach, and must stay <= :data:`BALANCE_CAP`.
    """

    staked: Decimal = _ZERO
    potential: Decimal = _ZERO
    grant: Decimal = INITIAL_GRANT

    @property
    def available(self) -> Decimal:
        return self.grant - self.staked

    @property
    def ceiling(self) -> Decimal:
        return self.grant - self.staked + self.potential

    def accept(self, bet: BetPlaced) -> Budget:
        """The budget after accepting ``bet`` (which :func:`validate` passed)."""
        return Budget(self.staked + bet.stake, self.potential + max_payout(bet), self.grant)


def validate(
    bet: BetPlaced,
    markets: Mapping[str, MarketView | None],
    budget: Budget,
    at: datetime | None = None,
) -> Rejection | None:
    """Why ``bet`` must be rejected, or None to accept it (checks in the module's order).

    ``markets`` holds the view of each leg's market as of ``at`` (default ``placed_at``;
    :func:`views_at`), None or absent when not listed; ``budget`` is the member's before
    this bet.
    """
    when = bet.placed_at if at is None else at
    problem = _shape(bet) or _amounts(bet)
    if problem is not None:
        return problem
    for leg in bet.legs:
        view = markets.get(leg.market_id)
        where = f"market {leg.market_id}"
        if view is None:
            return Rejection(RejectionReason.UNKNOWN_MARKET, f"{where} is not listed")
        if view.resolved or view.closed or not view.active:
            return Rejection(RejectionReason.MARKET_CLOSED, f"{where} is closed")
        if view.end_date is not None and when >= view.end_date:
            return Rejection(RejectionReason.MARKET_EXPIRED, f"{where} ended {view.end_date}")
        if leg.selection not in view.outcomes:
            return Rejection(RejectionReason.INVALID_SELECTION, f"{where} has no {leg.selection}")
        if (view.kind is MarketKind.BINARY) != (bet.kind is BetKind.CREDIT):
            return Rejection(RejectionReason.INVALID_LEGS, f"a {bet.kind} bet on a {view.kind}")
    if bet.stake > budget.available:
        detail = f"stake {bet.stake} > available {budget.available}"
        return Rejection(RejectionReason.INSUFFICIENT_BALANCE, detail)
    ceiling = budget.ceiling - bet.stake + max_payout(bet)
    if ceiling > BALANCE_CAP:
        detail = f"could reach {ceiling} > cap {BALANCE_CAP}"
        return Rejection(RejectionReason.PAYOUT_LIMIT, detail)
    return None


def _shape(bet: BetPlaced) -> Rejection | None:
    if not bet.bet_id or not bet.member_id or any(not leg.market_id for leg in bet.legs):
        return Rejection(RejectionReason.MALFORMED, "empty bet, member or market id")
    legs, count = bet.legs, len(bet.legs)
    if bet.kind is BetKind.PARLAY:
        if not MIN_LEGS <= count <= MAX_LEGS:
            return Rejection(RejectionReason.INVALID_LEGS, f"a parlay of {count} legs")
        if len({leg.market_id for leg in legs}) != count:
            return Rejection(RejectionReason.INVALID_LEGS, "two legs on the same market")
    elif count != 1:
        return Rejection(RejectionReason.INVALID_LEGS, f"a {bet.kind} bet of {count} legs")
    credit = bet.kind is BetKind.CREDIT
    if any((leg.odds if credit else leg.price) is not None for leg in legs):
        wrong = "odds" if credit else "a price"
        return Rejection(RejectionReason.INVALID_LEGS, f"a {bet.kind} leg with {wrong}")
    return None


def _amounts(bet: BetPlaced) -> Rejection | None:
    if not _fits(bet.stake, MIN_STAKE, MAX_STAKE, CENTS):
        return Rejection(RejectionReason.INVALID_STAKE, f"stake {bet.stake}")
    for leg in bet.legs:
        if bet.kind is BetKind.CREDIT:
            if leg.price is None or not _fits(leg.price, MIN_PRICE, MAX_PRICE, PRICE_TICK):
                return Rejection(RejectionReason.INVALID_PRICE, f"price {leg.price}")
        elif (
            leg.odds is None or not _fits(leg.odds, ODDS_TICK, MAX_ODDS, ODDS_TICK) or leg.odds <= 1
        ):
            return Rejection(RejectionReason.INVALID_ODDS, f"odds {leg.odds}")
    return None


def _fits(value: Decimal, low: Decimal, high: Decimal, tick: Decimal) -> bool:
    """``low <= value <= high`` and a multiple of ``tick``."""
    return value.is_finite() and low <= value <= high and value == value.quantize(tick)


def rejection_record(bet: BetPlaced, rejection: Rejection, entry_topic: str) -> EntryRejected:
    """The ``entries.rejected`` record; ``rejected_at`` is ``placed_at`` (deterministic)."""
    return EntryRejected(
        entry_topic=entry_topic,
        entry_id=bet.bet_id,
        member_id=bet.member_id,
        reason=rejection.reason,
        detail=rejection.detail,
        rejected_at=bet.placed_at,
    )


# --- payouts -----------------------------------------------------------------------------


#: Products and quotients of stakes, odds and prices, exactly: an inexact result raises.
_EXACT = Context(prec=2_000, traps=[InvalidOperation, Inexact, Overflow, DivisionByZero])
#: The one rounding, down to 0.01, at the end.
_DOWN = Context(prec=2_000, rounding=ROUND_DOWN, traps=[InvalidOperation, Overflow])


def credit_payout(stake: Decimal, price: Decimal) -> Decimal:
    """What a winning credit bet pays: ``stake / price`` rounded down to 0.01."""
    if not price > 0:
        raise ValueError(f"price must be positive: {price}")
    cents = _DOWN.divide_int(_EXACT.scaleb(stake, 2), price)  # floor: both are positive
    return _EXACT.scaleb(cents, -2)


def parlay_payout(stake: Decimal, odds: Iterable[Decimal]) -> Decimal:
    """``stake x`` the product of ``odds``, exact, rounded down to 0.01 once (a single too)."""
    product = stake
    for leg_odds in odds:
        product = _EXACT.multiply(product, leg_odds)
    return product.quantize(CENTS, context=_DOWN)


def max_payout(bet: BetPlaced) -> Decimal:
    """What the bet pays if every leg wins (prices and odds must be set)."""
    if bet.kind is BetKind.CREDIT:
        price = bet.legs[0].price
        if price is None:
            raise ValueError(f"credit bet {bet.bet_id} has no price")
        return credit_payout(bet.stake, price)
    odds = [leg.odds for leg in bet.legs]
    if any(o is None for o in odds):
        raise ValueError(f"bet {bet.bet_id} has a leg without odds")
    return parlay_payout(bet.stake, (o for o in odds if o is not None))


# --- settlement --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Result:
    """A bet's result against a set of resolutions."""

    status: SettlementStatus
    payout: Decimal


def _leg_status(selection: str, resolution: MarketResolved) -> SettlementStatus:
    if resolution.void or resolution.outcome is None:  # no outcome: nothing won, refund
        return SettlementStatus.VOID
    return SettlementStatus.WON if resolution.outcome == selection else SettlementStatus.LOST


def settle(bet: BetPlaced, resolutions: Mapping[str, MarketResolved]) -> Result | None:
    """The result against each market's resolution; None while a market is unresolved."""
    statuses = []
    for leg in bet.legs:
        resolution = resolutions.get(leg.market_id)
        if resolution is None:
            return None
        statuses.append(_leg_status(leg.selection, resolution))
    if SettlementStatus.LOST in statuses:
        return Result(SettlementStatus.LOST, _ZERO)
    if all(s is SettlementStatus.VOID for s in statuses):
        return Result(SettlementStatus.VOID, bet.stake)
    if bet.kind is BetKind.CREDIT:
        return Result(SettlementStatus.WON, max_payout(bet))
    won = (leg.odds for leg, s in zip(bet.legs, statuses, strict=True) if s is SettlementStatus.WON)
    return Result(SettlementStatus.WON, parlay_payout(bet.stake, (o for o in won if o is not None)))


def settlement_key(bet_id: str, version: int) -> str:
    """``bet:{bet_id}:settlement:v{version}``: the idempotency key of a BetSettled."""
    return f"bet:{bet_id}:settlement:v{version}"


def next_settlement(
    bet: BetPlaced,
    previous: BetSettled | None,
    resolutions: Mapping[str, MarketResolved],
    at: datetime,
) -> BetSettled | None:
    """The next settlement version at ``at``, or None (unresolved, or the result is unchanged)."""
    result = settle(bet, resolutions)
    if result is None:
        return None
    if previous is not None and (previous.status, previous.payout) == (
        result.status,
        result.payout,
    ):
        return None
    version = previous.version + 1 if previous is not None else 1
    return BetSettled(
        bet_id=bet.bet_id,
        member_id=bet.member_id,
        status=result.status,
        stake=bet.stake,
        payout=result.payout,
        version=version,
        idempotency_key=settlement_key(bet.bet_id, version),
        settled_at=at,
        previous_payout=previous.payout if previous is not None else None,
        board_ids=pnl_board_ids(game_of(bet), at),
    )


def settlement_history(bet: BetPlaced, resolutions: Iterable[MarketResolved]) -> list[BetSettled]:
    """Every settlement version of ``bet``, from the resolutions of its markets (others ignored).

    Resolutions apply in event time: by ``resolved_at`` (a version's time is taken as at
    least its predecessors', so one market's versions apply in version order), then market
    id, then version; a version seen twice counts once (the first). After each, the bet is
    settled (:func:`next_settlement`) at that resolution's time.
    """
    markets = {leg.market_id for leg in bet.legs}
    by_market: dict[str, dict[int, MarketResolved]] = {}
    for r in resolutions:
        if r.market_id in markets:
            by_market.setdefault(r.market_id, {}).setdefault(r.version, r)
    events: list[tuple[datetime, str, int, MarketResolved]] = []
    for market_id, versions in by_market.items():
        effective: datetime | None = None
        for version in sorted(versions):
            r = versions[version]
            effective = r.resolved_at if effective is None else max(effective, r.resolved_at)
            events.append((effective, market_id, version, r))
    events.sort(key=lambda e: e[:3])
    latest: dict[str, MarketResolved] = {}
    history: list[BetSettled] = []
    for at, market_id, _, r in events:
        latest[market_id] = r
        settled = next_settlement(bet, history[-1] if history else None, latest, at)
        if settled is not None:
            history.append(settled)
    return history


def latest_resolutions(events: Iterable[MarketEvent]) -> dict[str, MarketResolved]:
    """Per market, its resolution with the highest version."""
    out: dict[str, MarketResolved] = {}
    for event in events:
        if isinstance(event, MarketResolved):
            current = out.get(event.market_id)
            if current is None or event.version > current.version:
                out[event.market_id] = event
    return out


def correction_notice(previous: BetSettled, settled: BetSettled) -> ResultCorrected:
    """The ``notifications`` record of a resettlement (``settled`` replaces ``previous``)."""
    return ResultCorrected(
        member_id=settled.member_id,
        subject=f"bet:{settled.bet_id}",
        old_result=f"{previous.status} {previous.payout}",
        new_result=f"{settled.status} {settled.payout}",
        delta=settled.payout - previous.payout,
        version=settled.version,
        corrected_at=settled.settled_at,
    )


# --- ledger ------------------------------------------------------------------------------


class EntryKind(StrEnum):
    """What a ledger entry is: the grant, a stake, a payout, a refund, a reversal."""

    GRANT = "grant"
    STAKE = "stake"
    PAYOUT = "payout"
    REFUND = "refund"
    REVERSAL = "reversal"


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """One balance change; ``key`` is unique (applying an entry twice is applying it once)."""

    key: str
    member_id: str
    kind: EntryKind
    amount: Decimal
    at: datetime
    bet_id: str | None = None
    version: int | None = None


def grant_entry(member_id: str, at: datetime) -> LedgerEntry:
    """``grant:{member_id}``: :data:`INITIAL_GRANT`, at the member's first bet."""
    return LedgerEntry(f"grant:{member_id}", member_id, EntryKind.GRANT, INITIAL_GRANT, at)


def stake_entry(bet: BetPlaced) -> LedgerEntry:
    """``bet:{bet_id}:stake``: the stake debited when the bet is accepted."""
    return LedgerEntry(
        f"bet:{bet.bet_id}:stake",
        bet.member_id,
        EntryKind.STAKE,
        -bet.stake,
        bet.placed_at,
        bet.bet_id,
    )


def settlement_entries(settled: BetSettled) -> tuple[LedgerEntry, ...]:
    """A settlement version's entries: the reversal of the previous credit, then the new one."""
    out: list[LedgerEntry] = []
    prefix, n = f"bet:{settled.bet_id}", settled.version
    if settled.previous_payout:
        out.append(
            LedgerEntry(
                f"{prefix}:reversal:v{n}",
                settled.member_id,
                EntryKind.REVERSAL,
                -settled.previous_payout,
                settled.settled_at,
                settled.bet_id,
                n,
            )
        )
    if settled.payout:
        void = settled.status is SettlementStatus.VOID
        kind = EntryKind.REFUND if void else EntryKind.PAYOUT
        out.append(
            LedgerEntry(
                f"{prefix}:{kind}:v{n}",
                settled.member_id,
                kind,
                settled.payout,
                settled.settled_at,
                settled.bet_id,
                n,
            )
        )
    return tuple(out)


def balances(entries: Iterable[LedgerEntry]) -> dict[str, Decimal]:
    """Balance per member: the sum of their entries."""
    out: dict[str, Decimal] = {}
    for entry in entries:
        out[entry.member_id] = out.get(entry.member_id, _ZERO) + entry.amount
    return out


# --- PnL ---------------------------------------------------------------------------------


def game_of(bet: BetPlaced) -> Game:
    """Credit bets play ``markets``; singles and parlays play ``betting``."""
    return Game.MARKETS if bet.kind is BetKind.CREDIT else Game.BETTING


def iso_week(at: datetime) -> str:
    """The ISO week of ``at`` in UTC: ``2026-W47``."""
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"at must be timezone-aware: {at!r}")
    year, week, _ = at.astimezone(UTC).isocalendar()
    return f"{year}-W{week:02d}"


def pnl_board_ids(game: Game | str, at: datetime) -> tuple[str, str]:
    """``(pnl:<game>:overall, pnl:<game>:week:<ISO week of at>)``."""
    return (f"pnl:{game}:overall", f"pnl:{game}:week:{iso_week(at)}")


def pnl_delta(settled: BetSettled) -> Decimal:
    """What a settlement version adds to PnL: payout - stake, or payout - previous payout."""
    before = settled.stake if settled.previous_payout is None else settled.previous_payout
    return settled.payout - before


def pnl_boards(settlements: Iterable[BetSettled]) -> dict[str, dict[str, BoardLine]]:
    """``{board_id: {member_id: BoardLine}}`` summed over settlement versions (each once).

    A member with a settled bet has a line (0 included); ``exact_count`` is always 0: PnL
    boards declare no tiebreaker, so ties go to the member id.
    """
    sums: dict[str, dict[str, Decimal]] = {}
    for settled in settlements:
        delta = pnl_delta(settled)
        for board_id in settled.board_ids:
            board = sums.setdefault(board_id, {})
            board[settled.member_id] = board.get(settled.member_id, _ZERO) + delta
    return {
        board_id: {m: BoardLine(m, total, 0) for m, total in board.items()}
        for board_id, board in sums.items()
    }


# --- the oracle --------------------------------------------------------------------------


@dataclass(frozen=True)
class MarketsOracle:
    """What the system must end with, computed from the market events and the bets alone.

    ``settlements`` is the ``settlements`` topic content (every version once, ordered by
    ``settled_at``, bet, version); ``final`` the latest version per settled bet;
    ``ledger`` every entry by key; ``notifications`` one ResultCorrected per resettlement.
    """

    accepted: Mapping[str, BetPlaced]
    rejected: Mapping[str, EntryRejected]
    settlements: Sequence[BetSettled]
    final: Mapping[str, BetSettled]
    ledger: Mapping[str, LedgerEntry]
    balances: Mapping[str, Decimal]
    boards: Mapping[str, Mapping[str, BoardLine]]
    notifications: Sequence[ResultCorrected]


def oracle(
    events: Iterable[MarketEvent], bets: Iterable[BetPlaced], entry_topic: str = ENTRIES_BETS
) -> MarketsOracle:
    """Judge every bet in the processing order, settle the accepted ones, sum it all up.

    ``bets`` in log order, redeliveries included (a bet_id counts once: the first read).
    """
    events = list(events)
    markets = timelines(events)
    first: dict[str, BetPlaced] = {}
    for bet in bets:
        first.setdefault(bet.bet_id, bet)
    by_member: dict[str, list[BetPlaced]] = {}
    for bet in first.values():
        by_member.setdefault(bet.member_id, []).append(bet)
    accepted: dict[str, BetPlaced] = {}
    rejected: dict[str, EntryRejected] = {}
    ledger: list[LedgerEntry] = []
    for member_id in sorted(by_member):
        ordered = sorted(by_member[member_id], key=lambda b: (b.placed_at, b.bet_id))
        ledger.append(grant_entry(member_id, ordered[0].placed_at))
        budget = Budget()
        for bet in ordered:
            rejection = validate(bet, views_at(bet, markets), budget)
            if rejection is not None:
                rejected[bet.bet_id] = rejection_record(bet, rejection, entry_topic)
                continue
            accepted[bet.bet_id] = bet
            budget = budget.accept(bet)
            ledger.append(stake_entry(bet))
    resolutions: dict[str, list[MarketResolved]] = {}
    for event in events:
        if isinstance(event, MarketResolved):
            resolutions.setdefault(event.market_id, []).append(event)
    settlements: list[BetSettled] = []
    notifications: list[ResultCorrected] = []
    for bet in accepted.values():
        known = [r for leg in bet.legs for r in resolutions.get(leg.market_id, ())]
        history = settlement_history(bet, known)
        settlements += history
        notifications += (correction_notice(a, b) for a, b in pairwise(history))
        for settled in history:
            ledger += settlement_entries(settled)
    settlements.sort(key=lambda s: (s.settled_at, s.bet_id, s.version))
    by_key: dict[str, LedgerEntry] = {}
    for entry in ledger:
        if entry.key in by_key:
            raise RuntimeError(f"ledger key {entry.key} made twice")  # a bug in these rules
        by_key[entry.key] = entry
    return MarketsOracle(
        accepted=accepted,
        rejected=rejected,
        settlements=tuple(settlements),
        final={s.bet_id: s for s in settlements},  # in version order per bet: the last stays
        ledger=by_key,
        balances=balances(ledger),
        boards=pnl_boards(settlements),
        notifications=tuple(notifications),
    )
