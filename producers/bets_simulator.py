"""Markets and bets, simulated: a season of market events, and the bets the upstream app sends.

Pure and deterministic from a seed, no Kafka. :func:`generate_markets` makes the market feed
as the market poller normalizes it (``MarketUpdated`` / ``MarketResolved``): binary
"this/that" markets and football 1X2 match markets that open, move, close, resolve, and
sometimes get voided, stay unresolved or are resolved again (a correction).
:func:`generate_bets` makes, from any such events (these or the poller's), a season of bets:
credit bets on binary markets, singles and parlays of up to 10 legs on match markets, each
member's placed inside the markets' open windows, plus bets that must be rejected for each
rule and a few redeliveries. :func:`oracle_for` says what the system must end with.

Two rules cannot be broken on the wire and so are not simulated: more than 2 decimals on a
stake or 4 on a price or odds (the Avro decimals cannot carry them); unit tests cover them.
"""

from __future__ import annotations

import bisect
import random
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import ROUND_DOWN, Decimal

from schemas.records import (
    CENTS,
    PRICE_TICK,
    BetKind,
    BetLeg,
    BetPlaced,
    MarketOutcome,
    MarketResolved,
    MarketUpdated,
    RejectionReason,
)
from schemas.records.fixtures import MarketKind
from streams.rules.markets import (
    BALANCE_CAP,
    MAX_LEGS,
    MAX_STAKE,
    MIN_STAKE,
    Budget,
    MarketEvent,
    MarketsOracle,
    MarketTimeline,
    max_payout,
    oracle,
    timelines,
    validate,
    views_at,
)

__all__ = [
    "INJECTED",
    "SEASON_START",
    "SimulatedBets",
    "SimulatedMarkets",
    "generate_bets",
    "generate_markets",
    "oracle_for",
]

#: Monday of ISO week 2026-W32, the default season's first day.
SEASON_START = datetime(2026, 8, 3, tzinfo=UTC)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)
MINUTE, HOUR, DAY = 60_000, 3_600_000, 86_400_000
_YES_NO = ("Yes", "No")
_ONE_X_TWO = ("home", "draw", "away")

#: Invalid bets :func:`generate_bets` injects, and the reason each must be rejected with.
INJECTED: Mapping[str, RejectionReason] = {
    "stake_low": RejectionReason.INVALID_STAKE,
    "stake_high": RejectionReason.INVALID_STAKE,
    "price_low": RejectionReason.INVALID_PRICE,
    "price_high": RejectionReason.INVALID_PRICE,
    "odds": RejectionReason.INVALID_ODDS,
    "legs": RejectionReason.INVALID_LEGS,
    "selection": RejectionReason.INVALID_SELECTION,
    "closed": RejectionReason.MARKET_CLOSED,
    "expired": RejectionReason.MARKET_EXPIRED,
    "insufficient": RejectionReason.INSUFFICIENT_BALANCE,
    "payout_limit": RejectionReason.PAYOUT_LIMIT,
}


def _at(ms: int) -> datetime:
    return _EPOCH + ms * _MS


def _ms(at: datetime) -> int:
    return (at - _EPOCH) // _MS


def _tick(value: float) -> Decimal:
    return Decimal(str(min(max(round(value, 4), 0.0001), 0.9999)))


# --- markets -----------------------------------------------------------------------------


@dataclass(frozen=True)
class SimulatedMarkets:
    """The market feed of a season, in event-time order.

    ``reresolved`` maps each market resolved more than once to its outcomes in version
    order (None: void): one binary and one match market change outcome, one binary market
    is resolved again with the same outcome, one goes void and back to its first outcome.
    """

    events: tuple[MarketEvent, ...]
    binary_ids: tuple[str, ...]
    match_ids: tuple[str, ...]
    voided: frozenset[str]
    unresolved: frozenset[str]
    reresolved: Mapping[str, tuple[str | None, ...]]


def generate_markets(
    *,
    seed: int,
    binary: int = 100,
    rounds: int = 12,
    matches_per_round: int = 10,
    start: datetime = SEASON_START,
    void_rate: float = 0.04,
    unresolved_rate: float = 0.03,
    early_close_rate: float = 0.05,
) -> SimulatedMarkets:
    """``binary`` Yes/No markets over the season and ``rounds`` weekly rounds of 1X2 markets.

    A market is listed (active), moves every 6-24 hours, closes 1-30 minutes after its end
    date (or, with ``early_close_rate``, 1-48 hours before it) and resolves 1-24 hours after
    closing; with ``void_rate`` it resolves void, with ``unresolved_rate`` never. The
    re-resolutions of :class:`SimulatedMarkets` come a day apart after every other event.
    """
    rng = random.Random(seed)  # noqa: S311 - a simulation, not security
    origin = _ms(start)
    span = max(rounds, 4) * 7 * DAY
    events: list[MarketEvent] = []
    firsts: dict[str, tuple[MarketKind, str | None, int]] = {}
    voided: set[str] = set()
    unresolved: set[str] = set()

    def market(
        market_id: str,
        kind: MarketKind,
        opened: int,
        end: int,
        probs: list[float],
        match_id: str | None,
    ) -> None:
        names = _YES_NO if kind is MarketKind.BINARY else _ONE_X_TWO
        early = rng.random() < early_close_rate
        close = end - rng.randint(HOUR, 48 * HOUR) if early else end + rng.randint(1, 30) * MINUTE
        version, t = 0, opened
        while True:
            version += 1
            closing = t >= close
            events.append(
                _update(
                    market_id,
                    kind,
                    names,
                    probs,
                    version,
                    _at(min(t, close)),
                    _at(end),
                    match_id,
                    closing,
                )
            )
            if closing:
                break
            t += rng.randint(6 * HOUR, 24 * HOUR)
            probs = _move(rng, probs)
        if rng.random() < unresolved_rate:
            unresolved.add(market_id)
            return
        resolved_at = close + rng.randint(HOUR, 24 * HOUR)
        outcome: str | None = rng.choices(names, weights=probs)[0]
        if rng.random() < void_rate:
            outcome = None
            voided.add(market_id)
        events.append(_resolution(market_id, kind, outcome, 1, resolved_at, match_id))
        firsts[market_id] = (kind, outcome, resolved_at)

    binary_ids = [f"pm-{i:04d}" for i in range(1, binary + 1)]
    for market_id in binary_ids:
        opened = origin + rng.randint(0, span - 10 * DAY)
        end = min(opened + rng.randint(7, 42) * DAY + rng.randint(0, DAY), origin + span)
        p = rng.uniform(0.05, 0.95)
        market(market_id, MarketKind.BINARY, opened, end, [p, 1 - p], None)
    match_ids = []
    for r in range(rounds):
        round_start = origin + (r + 1) * 7 * DAY + 5 * DAY  # Saturdays
        for n in range(matches_per_round):
            match_id = f"{r + 1:02d}{n + 1:02d}"
            market_id = f"mm-{match_id}"
            match_ids.append(market_id)
            kickoff = round_start + rng.randint(0, 7 * 4 * 2) * 15 * MINUTE  # Sat/Sun
            home = rng.uniform(0.2, 0.65)
            draw = rng.uniform(0.2, 0.3)
            opened = kickoff - 8 * DAY - rng.randint(0, DAY)
            market(
                market_id,
                MarketKind.MATCH_1X2,
                opened,
                kickoff,
                [home, draw, 1 - home - draw],
                match_id,
            )
    reresolved = _reresolve(rng, events, firsts, voided)
    events.sort(key=_event_order)
    return SimulatedMarkets(
        events=tuple(events),
        binary_ids=tuple(binary_ids),
        match_ids=tuple(match_ids),
        voided=frozenset(voided),
        unresolved=frozenset(unresolved),
        reresolved=reresolved,
    )


def _move(rng: random.Random, probs: list[float]) -> list[float]:
    moved = [max(0.02, p * rng.uniform(0.85, 1.15)) for p in probs]
    total = sum(moved)
    return [p / total for p in moved]


def _update(
    market_id: str,
    kind: MarketKind,
    names: Sequence[str],
    probs: Sequence[float],
    version: int,
    at: datetime,
    end: datetime,
    match_id: str | None,
    closed: bool,
) -> MarketUpdated:
    outcomes = []
    for name, p in zip(names, probs, strict=True):
        price = _tick(p)
        odds = None
        if kind is not MarketKind.BINARY:  # a 6% margin, 2 decimals, above 1
            odds = max(
                Decimal("1.01"),
                (Decimal(1) / (price * Decimal("1.06"))).quantize(CENTS, ROUND_DOWN),
            )
        outcomes.append(MarketOutcome(name=name, price=price, odds=odds))
    question = (
        f"Will {market_id} resolve Yes?" if kind is MarketKind.BINARY else f"Match {match_id}: 1X2"
    )
    return MarketUpdated(
        market_id=market_id,
        question=question,
        outcomes=tuple(outcomes),
        active=not closed,
        closed=closed,
        end_date=end,
        version=version,
        updated_at=at,
        kind=kind,
        match_id=match_id,
    )


def _resolution(
    market_id: str,
    kind: MarketKind,
    outcome: str | None,
    version: int,
    at_ms: int,
    match_id: str | None,
) -> MarketResolved:
    return MarketResolved(
        market_id=market_id,
        outcome=outcome,
        void=outcome is None,
        version=version,
        resolved_at=_at(at_ms),
        kind=kind,
        match_id=match_id,
    )


def _reresolve(
    rng: random.Random,
    events: list[MarketEvent],
    firsts: Mapping[str, tuple[MarketKind, str | None, int]],
    voided: set[str],
) -> dict[str, tuple[str | None, ...]]:
    """Resolve four markets again, a day apart, after everything else happened."""
    after = max(
        _ms(e.updated_at if isinstance(e, MarketUpdated) else e.resolved_at) for e in events
    )
    decided = sorted(m for m, (_, outcome, _) in firsts.items() if outcome is not None)
    binaries = [m for m in decided if firsts[m][0] is MarketKind.BINARY]
    matches = [m for m in decided if firsts[m][0] is not MarketKind.BINARY]
    if len(binaries) < 3 or not matches:
        return {}
    changed, same, back = rng.sample(binaries, 3)
    match = rng.choice(matches)
    plans: list[tuple[str, list[str | None]]] = []
    for market_id in (changed, match, same, back):
        kind, first, _ = firsts[market_id]
        names = _YES_NO if kind is MarketKind.BINARY else _ONE_X_TWO
        other = rng.choice([n for n in names if n != first])
        later: list[str | None] = [first] if market_id == same else [other]
        if market_id == back:
            later = [None, first]
        plans.append((market_id, [first, *later]))
    out: dict[str, tuple[str | None, ...]] = {}
    day = 0
    for market_id, outcomes in plans:
        kind = firsts[market_id][0]
        match_id = market_id.removeprefix("mm-") if kind is not MarketKind.BINARY else None
        for version, outcome in enumerate(outcomes[1:], start=2):
            day += 1
            events.append(
                _resolution(market_id, kind, outcome, version, after + day * DAY, match_id)
            )
        out[market_id] = tuple(outcomes)
    return out


def _event_order(event: MarketEvent) -> tuple[datetime, str, int, int]:
    if isinstance(event, MarketUpdated):
        return (event.updated_at, event.market_id, 0, event.version)
    return (event.resolved_at, event.market_id, 1, event.version)


# --- bets --------------------------------------------------------------------------------


@dataclass(frozen=True)
class SimulatedBets:
    """What the upstream app sends for a season, and what the harness knows of it.

    ``bets`` is the publish order (placement order, redeliveries included: the same record
    again up to a minute later); ``injected`` maps each bet made invalid on purpose to the
    reason it must be rejected with; ``verdicts`` is every unique bet's verdict as judged
    while generating (None: accepted); ``duplicated`` the bet ids sent twice.
    """

    members: tuple[str, ...]
    bets: tuple[BetPlaced, ...]
    injected: Mapping[str, RejectionReason] = field(default_factory=dict)
    verdicts: Mapping[str, RejectionReason | None] = field(default_factory=dict)
    duplicated: frozenset[str] = frozenset()


@dataclass(slots=True)
class _Market:
    """Where and when bets can go on one market, read from its events."""

    market_id: str
    kind: MarketKind
    times: list[int]
    outcomes: list[tuple[MarketOutcome, ...]]
    open_from: int
    open_to: int
    closed_from: int | None
    expired: tuple[int, int] | None

    def outcomes_at(self, t: int) -> tuple[MarketOutcome, ...]:
        return self.outcomes[max(bisect.bisect_right(self.times, t) - 1, 0)]


def _markets(events: Iterable[MarketEvent]) -> list[_Market]:
    updates: dict[str, list[MarketUpdated]] = {}
    resolved: dict[str, int] = {}
    for e in events:
        if isinstance(e, MarketUpdated):
            updates.setdefault(e.market_id, []).append(e)
        else:
            resolved[e.market_id] = min(
                resolved.get(e.market_id, _ms(e.resolved_at)), _ms(e.resolved_at)
            )
    out = []
    for market_id in sorted(updates):
        ups = sorted(updates[market_id], key=lambda u: (u.updated_at, u.version))
        open_from: int | None = None
        closed_from: int | None = None
        end: int | None = None
        for u in ups:
            is_open = u.active and not u.closed
            if open_from is None and is_open:
                open_from = _ms(u.updated_at)
            elif open_from is not None and not is_open:
                closed_from = _ms(u.updated_at)
                break
            if is_open:
                end = _ms(u.end_date) if u.end_date is not None else None
        if open_from is None:
            continue
        first_resolved = resolved.get(market_id)
        if first_resolved is not None:
            closed_from = min(closed_from or first_resolved, first_resolved)
        stops = [x for x in (closed_from, end) if x is not None]
        open_to = min(stops) if stops else _ms(ups[-1].updated_at)
        expired = None
        if end is not None and (closed_from is None or end < closed_from):
            expired = (end, closed_from if closed_from is not None else end + DAY)
        if open_from < open_to:
            out.append(
                _Market(
                    market_id,
                    ups[-1].kind,
                    [_ms(u.updated_at) for u in ups],
                    [u.outcomes for u in ups],
                    open_from,
                    open_to,
                    closed_from,
                    expired,
                )
            )
    return out


def _within(rng: random.Random, low: int, high: int) -> int:
    """An instant in [low, high)."""
    return low + int(rng.random() * (high - low))


def _cents(cents: int) -> Decimal:
    return Decimal(cents).scaleb(-2)


def _stake(rng: random.Random) -> Decimal:
    """10 to 2,000 credits, mostly small and whole; the bounds themselves now and then."""
    u = rng.random()
    if u < 0.01:
        return MIN_STAKE
    if u < 0.012:
        return MAX_STAKE
    low, high = (1_000, 5_000) if u < 0.8 else (5_000, 50_000) if u < 0.98 else (50_000, 200_000)
    cents = rng.randint(low, high)
    return _cents(cents - cents % 100 if rng.random() < 0.7 else cents)


def _odds(outcome: MarketOutcome) -> Decimal:
    if outcome.odds is not None and outcome.odds > 1:
        return outcome.odds
    return max(Decimal("1.01"), (Decimal(1) / outcome.price).quantize(CENTS, ROUND_DOWN))


#: Bet kinds: 45% credit, 30% single, 25% parlay; the defects that need one kind.
_KIND_CHOICES = (BetKind.CREDIT, BetKind.SINGLE, BetKind.PARLAY)
_KIND_WEIGHTS = (45, 30, 25)
_KINDS: Mapping[str, BetKind] = {
    "price_low": BetKind.CREDIT,
    "price_high": BetKind.CREDIT,
    "payout_limit": BetKind.CREDIT,
    "odds": BetKind.SINGLE,
    "legs": BetKind.PARLAY,
}
#: Legs of a parlay: mostly 2-4, up to 10.
_LEGS = (2,) * 40 + (3,) * 25 + (4,) * 15 + (5,) * 8 + (6, 7, 8, 9, 10) * 2 + (10,) * 2


class _Generator:
    def __init__(self, events: Sequence[MarketEvent], rng: random.Random) -> None:
        self.rng = rng
        self.timelines: dict[str, MarketTimeline] = timelines(events)
        markets = _markets(events)
        self.binaries = [m for m in markets if m.kind is MarketKind.BINARY]
        self.matches = [m for m in markets if m.kind is not MarketKind.BINARY]
        #: (market, window): after it closed (a week), and between its end and its closing.
        self.closed = [
            (m, (m.closed_from, m.closed_from + 7 * DAY))
            for m in markets
            if m.closed_from is not None
        ]
        self.expiring = [(m, m.expired) for m in markets if m.expired is not None]
        self.by_day: dict[int, list[_Market]] = {}
        for m in self.matches:
            for day in range(m.open_from // DAY, (m.open_to - 1) // DAY + 1):
                self.by_day.setdefault(day, []).append(m)
        if not self.binaries and not self.matches:
            raise ValueError("no market of these events is ever open to bets")

    def open_matches(self, t: int, exclude: _Market) -> list[_Market]:
        return [
            m
            for m in self.by_day.get(t // DAY, ())
            if m.open_from <= t < m.open_to and m is not exclude
        ]

    def plan(self, tag: str) -> tuple[int, BetKind, list[_Market], str]:
        """When, which kind, on which markets: a slot of a member's season, and its tag
        (``valid`` when the markets allow no such defect)."""
        rng = self.rng
        if tag in ("closed", "expired"):
            windows = self.closed if tag == "closed" else self.expiring
            if windows:
                m, (start, end) = rng.choice(windows)
                kind = BetKind.CREDIT if m.kind is MarketKind.BINARY else BetKind.SINGLE
                return _within(rng, start, end), kind, [m], tag
            tag = "valid"
        kind = _KINDS.get(tag) or rng.choices(_KIND_CHOICES, weights=_KIND_WEIGHTS)[0]
        if not (self.binaries if kind is BetKind.CREDIT else self.matches):
            kind = BetKind.SINGLE if kind is BetKind.CREDIT else BetKind.CREDIT
            tag = tag if tag not in _KINDS else "valid"
        if kind is BetKind.CREDIT:
            m = rng.choice(self.binaries)
            return _within(rng, m.open_from, m.open_to), kind, [m], tag
        m = rng.choice(self.matches)
        t = _within(rng, m.open_from, m.open_to)
        if kind is BetKind.SINGLE:
            return t, kind, [m], tag
        others = self.open_matches(t, m)
        if tag == "legs":  # 11 legs, or two on one market
            legs = [m, *rng.sample(others, MAX_LEGS)] if len(others) >= MAX_LEGS else [m, m]
            return t, kind, legs, tag
        count = min(rng.choice(_LEGS), len(others) + 1)
        if count < 2:
            return t, BetKind.SINGLE, [m], tag
        return t, kind, [m, *rng.sample(others, count - 1)], tag

    def bet(
        self,
        bet_id: str,
        member_id: str,
        t: int,
        kind: BetKind,
        markets: list[_Market],
        tag: str,
        budget: Budget,
    ) -> tuple[BetPlaced, bool]:
        """The bet of a slot, and whether the tag's defect was applied."""
        rng = self.rng
        legs = []
        favourite = 0.2 + 0.08 * len(markets) if kind is BetKind.PARLAY else 0.0
        for m in markets:
            outcomes = m.outcomes_at(t)
            if rng.random() < favourite:  # long parlays mostly back favourites
                outcome = max(outcomes, key=lambda o: o.price)
            else:
                outcome = rng.choice(outcomes)
            if kind is BetKind.CREDIT:
                legs.append(
                    BetLeg(market_id=m.market_id, selection=outcome.name, price=outcome.price)
                )
            else:
                legs.append(
                    BetLeg(market_id=m.market_id, selection=outcome.name, odds=_odds(outcome))
                )
        stake = _stake(rng)
        if stake > budget.available and budget.available >= 2 * MIN_STAKE:
            stake = (budget.available / 2).quantize(Decimal(1), ROUND_DOWN)
        bet = BetPlaced(
            bet_id=bet_id,
            member_id=member_id,
            kind=kind,
            stake=stake,
            legs=tuple(legs),
            placed_at=_at(t),
        )
        headroom = BALANCE_CAP - budget.ceiling
        multiple = max_payout(bet) / stake
        if multiple > 1 and stake * (multiple - 1) > headroom:  # keep under the cap
            fitted = (headroom / (multiple - 1) * Decimal("0.99")).quantize(CENTS, ROUND_DOWN)
            bet = replace(bet, stake=max(fitted, MIN_STAKE))
        return self.defect(bet, tag, budget)

    def defect(self, bet: BetPlaced, tag: str, budget: Budget) -> tuple[BetPlaced, bool]:
        rng, leg = self.rng, bet.legs[0]
        if tag == "stake_low":
            return replace(
                bet, stake=rng.choice((Decimal("9.99"), _cents(rng.randint(1, 999))))
            ), True
        if tag == "stake_high":
            return replace(
                bet,
                stake=rng.choice((Decimal("10000.01"), _cents(rng.randint(1_000_001, 5_000_000)))),
            ), True
        if tag in ("price_low", "price_high"):
            price = (
                Decimal("0.0000")
                if tag == "price_low"
                else rng.choice((Decimal("1.0000"), Decimal("1.2500")))
            )
            return replace(
                bet, legs=(BetLeg(market_id=leg.market_id, selection=leg.selection, price=price),)
            ), True
        if tag == "odds":
            odds = rng.choice((Decimal("1.0000"), Decimal("0.5000")))
            return replace(
                bet, legs=(BetLeg(market_id=leg.market_id, selection=leg.selection, odds=odds),)
            ), True
        if tag == "selection":
            legs = (
                BetLeg(market_id=leg.market_id, selection="Maybe", odds=leg.odds, price=leg.price),
                *bet.legs[1:],
            )
            return replace(bet, legs=legs), True
        if tag == "insufficient":
            if budget.available >= MAX_STAKE:
                return bet, False
            stake = min(
                MAX_STAKE, max(MIN_STAKE, budget.available + _cents(rng.randint(1, 10_000)))
            )
            return replace(bet, stake=stake), True
        if tag == "payout_limit":
            need = ((BALANCE_CAP - budget.ceiling) / 9_999 + 1).quantize(Decimal(1), ROUND_DOWN)
            stake = max(MIN_STAKE, need)
            if stake > budget.available:
                return bet, False
            legs = (BetLeg(market_id=leg.market_id, selection=leg.selection, price=PRICE_TICK),)
            return replace(bet, stake=stake, legs=legs), True
        return bet, tag in INJECTED  # closed, expired, legs: planned in


def generate_bets(
    events: Sequence[MarketEvent],
    *,
    members: int = 2_000,
    bets: int = 100_000,
    seed: int,
    invalid_rate: float = 0.02,
    duplicate_rate: float = 0.002,
) -> SimulatedBets:
    """``bets`` bets of ``members`` members on the markets of ``events``.

    Each member's bets are placed inside their markets' open windows (from the events), in
    the member's placement order; 45% are credit bets, 30% singles, 25% parlays (2-10 legs
    on match markets open at once). A stake is cut to what the member has left and what keeps
    their balance under the cap, so valid bets pass. With ``invalid_rate`` a bet gets one of
    the :data:`INJECTED` defects instead (when it can: an ``insufficient`` bet needs a
    member who has staked already). Ids: ``m00001``..., ``b-{member}-{n:03d}``.
    """
    for name, rate in (("invalid_rate", invalid_rate), ("duplicate_rate", duplicate_rate)):
        if not 0 <= rate <= 1:
            raise ValueError(f"{name} must be in [0, 1]: {rate}")
    rng = random.Random(seed)  # noqa: S311 - a simulation, not security
    gen = _Generator(events, rng)
    member_ids = tuple(f"m{i:05d}" for i in range(1, members + 1))
    counts = Counter(rng.choices(range(members), k=bets))
    tags = tuple(INJECTED)
    placed: list[tuple[int, int, BetPlaced]] = []
    injected: dict[str, RejectionReason] = {}
    verdicts: dict[str, RejectionReason | None] = {}
    for index, member_id in enumerate(member_ids):
        slots = []
        for n in range(counts[index]):
            tag = rng.choice(tags) if rng.random() < invalid_rate else "valid"
            t, kind, markets, tag = gen.plan(tag)
            slots.append((t, n, tag, kind, markets))
        slots.sort(key=lambda s: (s[0], s[1]))
        budget = Budget()
        for n, (t, _, tag, kind, markets) in enumerate(slots, start=1):
            bet_id = f"b-{member_id}-{n:03d}"
            bet, defective = gen.bet(bet_id, member_id, t, kind, markets, tag, budget)
            rejection = validate(bet, views_at(bet, gen.timelines), budget)
            verdicts[bet_id] = rejection.reason if rejection is not None else None
            if defective:
                injected[bet_id] = INJECTED[tag]
            if rejection is None:
                budget = budget.accept(bet)
            placed.append((t, len(placed), bet))
    duplicated: set[str] = set()
    for t, _, bet in list(placed):
        if rng.random() < duplicate_rate:
            placed.append((t + rng.randint(1, MINUTE), len(placed), bet))
            duplicated.add(bet.bet_id)
    placed.sort(key=lambda p: (p[0], p[1]))
    return SimulatedBets(
        members=member_ids,
        bets=tuple(bet for _, _, bet in placed),
        injected=injected,
        verdicts=verdicts,
        duplicated=frozenset(duplicated),
    )


def oracle_for(
    markets: SimulatedMarkets | Iterable[MarketEvent], bets: SimulatedBets
) -> MarketsOracle:
    """What the system must end with for these market events and bets (:func:`oracle`)."""
    events = markets.events if isinstance(markets, SimulatedMarkets) else markets
    return oracle(events, bets.bets)
