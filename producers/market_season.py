"""A simulated season of prediction markets on the replay clock: pure and deterministic.

Every market (:class:`MarketPlan`) is a script from its opening to its last resolution:

- **binary** "this/that" markets (two outcomes, ``Yes``/``No`` or two names) whose price
  moves every ``move_interval`` (or stays put), close at their end date and resolve some
  minutes later; some resolve again with the other outcome (a correction), some are
  voided (Polymarket's 50-50);
- **match** markets (1X2: home, ``Draw``, away) on the football season's matches
  (:mod:`producers.season`), at decimal odds that move until kick-off, where the market
  closes; resolved at full time from the score, and again at the score's correction when
  it changes home/draw/away.

:func:`state_at` is a market's state at a clock time and :meth:`MarketSeason.states_at`
every market's. The JSON the replay provider serves (docs/providers.md, "Market feeds")
is rendered from a state alone (:mod:`producers.market_feed`), never from the time of
the request, so an unchanged market gives the same bytes.
"""

from __future__ import annotations

import hashlib
import random
import re
from bisect import bisect_right
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_DOWN, Decimal
from functools import cached_property
from typing import Any

from producers.clock import as_utc
from producers.market_normalize import implied_price
from producers.season import MatchPlan, Season, final_score, first_final_score
from schemas.records.fixtures import MarketKind

#: A closed market stays in the resolution view this long after its last resolution
#: (or, unresolved, after its end date); every resolution of a plan lands inside it.
RESOLUTION_WINDOW = timedelta(hours=24)
DRAW = "Draw"
BINARY_ID_BASE = 510_001
MATCH_ID_BASE = 520_001
_ODDS_TICK = Decimal("0.01")
_MIN_ODDS = Decimal("1.01")
_MARGIN = 0.05  # the bookmaker's overround
_SUBJECTS = (
    "Harbour Bridge", "Northern Line", "City Marathon", "Grand Arcade", "Old Lighthouse",
    "River Festival", "Summer Derby", "Night Market", "Cable Car", "Winter Regatta",
)  # fmt: skip
_NAMES = ("Ada", "Bruno", "Chloe", "Dmitri", "Esme", "Farid", "Greta", "Hugo", "Ines", "Jonas")


@dataclass(frozen=True, slots=True)
class Quote:
    """From ``at`` on: prices per outcome (binary, summing to 1) or decimal odds (match)."""

    at: datetime
    values: tuple[Decimal, ...]


@dataclass(frozen=True, slots=True)
class Resolution:
    """From ``at`` on the market resolves to ``outcome``; ``None`` is void."""

    at: datetime
    outcome: str | None


@dataclass(frozen=True, slots=True)
class MarketPlan:
    """One market, scripted: its quotes from ``opens_at``, its resolutions after ``end_date``."""

    id: int
    kind: MarketKind
    question: str
    outcomes: tuple[str, ...]
    opens_at: datetime
    end_date: datetime
    quotes: tuple[Quote, ...]
    resolutions: tuple[Resolution, ...] = ()
    match_id: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "opens_at", as_utc(self.opens_at))
        object.__setattr__(self, "end_date", as_utc(self.end_date))
        name = f"market {self.id}"
        if len(self.outcomes) < 2 or len(set(self.outcomes)) != len(self.outcomes):
            raise ValueError(f"{name}: needs two or more distinct outcomes")
        if not self.opens_at < self.end_date:
            raise ValueError(f"{name}: opens at or after its end date")
        if (self.kind is MarketKind.MATCH_1X2) != (self.match_id is not None):
            raise ValueError(f"{name}: a match market, and only one, has a match id")
        times = [q.at for q in self.quotes]
        if not times or times[0] != self.opens_at or times != sorted(set(times)):
            raise ValueError(f"{name}: quotes must start at opens_at and move forward")
        if times[-1] >= self.end_date:
            raise ValueError(f"{name}: a quote at or after the end date")
        for quote in self.quotes:
            low, high = (Decimal(0), Decimal(1)) if self.binary else (Decimal(1), None)
            if len(quote.values) != len(self.outcomes) or not all(
                low < v and (high is None or v < high) for v in quote.values
            ):
                raise ValueError(f"{name}: bad quote {quote!r}")
        previous: Resolution | None = None
        for resolution in self.resolutions:
            if resolution.outcome is not None and resolution.outcome not in self.outcomes:
                raise ValueError(f"{name}: resolves to an unknown outcome {resolution!r}")
            if resolution.at < (self.end_date if previous is None else previous.at):
                raise ValueError(f"{name}: resolutions out of order or before the end")
            if previous is not None and previous.outcome == resolution.outcome:
                raise ValueError(f"{name}: a second resolution must change the outcome")
            previous = resolution

    @property
    def binary(self) -> bool:
        return self.kind is MarketKind.BINARY

    @property
    def market_id(self) -> str:
        """The market id on Kafka (``fixtures.markets``) and in the feeds."""
        return str(self.id)

    @property
    def slug(self) -> str:
        return re.sub(r"[^a-z0-9]+", "-", self.question.lower()).strip("-") + f"-{self.id}"

    @property
    def condition_id(self) -> str:
        return "0x" + hashlib.sha256(f"condition:{self.id}".encode()).hexdigest()

    @property
    def token_ids(self) -> tuple[str, ...]:
        """CLOB token ids, one per outcome; match markets are not traded on the CLOB."""
        if not self.binary:
            return ()
        return tuple(
            str(int.from_bytes(hashlib.sha256(f"token:{self.id}:{i}".encode()).digest()[:12]))
            for i in range(len(self.outcomes))
        )


@dataclass(frozen=True, slots=True)
class MarketState:
    """A market at a moment."""

    plan: MarketPlan
    listed: bool  # opened by then
    closed: bool  # at or past its end date
    quote: Quote  # the latest quote (the first one before the market opens)
    resolution: Resolution | None  # the latest resolution
    resolution_version: int  # resolutions so far: 1 the first, 2 after a correction

    @property
    def prices(self) -> tuple[Decimal, ...]:
        if self.plan.binary:
            return self.quote.values
        return tuple(implied_price(odds) for odds in self.quote.values)

    @property
    def odds(self) -> tuple[Decimal, ...] | None:
        return None if self.plan.binary else self.quote.values

    @property
    def updated_at(self) -> datetime:
        """The latest change: a quote, the close, a resolution."""
        changes = [self.quote.at]
        if self.closed:
            changes.append(self.plan.end_date)
        if self.resolution is not None:
            changes.append(self.resolution.at)
        return max(changes)

    def in_resolution_view(self, when: datetime) -> bool:
        """Closed, and its last resolution (or its end) less than RESOLUTION_WINDOW ago."""
        last = self.plan.end_date if self.resolution is None else self.resolution.at
        return self.closed and when < last + RESOLUTION_WINDOW


def state_at(plan: MarketPlan, when: datetime) -> MarketState:
    """``plan`` as it stands at ``when``."""
    when = as_utc(when)
    index = max(0, bisect_right([q.at for q in plan.quotes], when) - 1)
    resolved = [r for r in plan.resolutions if r.at <= when]
    return MarketState(
        plan=plan,
        listed=plan.opens_at <= when,
        closed=when >= plan.end_date,
        quote=plan.quotes[index],
        resolution=resolved[-1] if resolved else None,
        resolution_version=len(resolved),
    )


@dataclass(frozen=True)
class MarketSeason:
    seed: int
    markets: tuple[MarketPlan, ...]

    @cached_property
    def _by_id(self) -> dict[str, MarketPlan]:
        return {m.market_id: m for m in self.markets}

    @cached_property
    def _by_token(self) -> dict[str, tuple[MarketPlan, int]]:
        return {t: (m, i) for m in self.markets for i, t in enumerate(m.token_ids)}

    def market(self, market_id: str) -> MarketPlan | None:
        return self._by_id.get(market_id)

    def market_of_token(self, token_id: str) -> MarketPlan | None:
        found = self._by_token.get(token_id)
        return None if found is None else found[0]

    def states_at(self, when: datetime) -> tuple[MarketState, ...]:
        """Every market's state at ``when``, by id."""
        return tuple(state_at(m, when) for m in self.markets)

    def listed(self, when: datetime) -> tuple[MarketState, ...]:
        """The markets opened by ``when`` (the market list)."""
        return tuple(s for s in self.states_at(when) if s.listed)

    def resolution_view(self, when: datetime) -> tuple[MarketState, ...]:
        """Closed markets until RESOLUTION_WINDOW after their last resolution."""
        return tuple(s for s in self.listed(when) if s.in_resolution_view(as_utc(when)))

    def odds_board(self, when: datetime) -> tuple[MarketState, ...]:
        """Open match markets (the odds feed)."""
        return tuple(s for s in self.listed(when) if not s.plan.binary and not s.closed)

    def midpoints(self, token_ids: Iterable[str], when: datetime) -> dict[str, Decimal]:
        """The price of each token of an open market; other tokens are left out."""
        found: dict[str, Decimal] = {}
        for token in token_ids:
            plan, index = self._by_token.get(token, (None, 0))
            if plan is not None and (state := state_at(plan, when)).listed and not state.closed:
                found[token] = state.quote.values[index]
        return found


# -- generating a season ---------------------------------------------------------------


def _minutes(rng: random.Random, bounds: tuple[timedelta, timedelta]) -> timedelta:
    low, high = (int(b.total_seconds() // 60) for b in bounds)
    return timedelta(minutes=rng.randint(low, max(low, high)))


def _binary(rng: random.Random, number: int) -> tuple[str, tuple[str, str]]:
    if rng.random() < 0.6:
        subject = _SUBJECTS[number % len(_SUBJECTS)]
        return f"Will the {subject} open on time, round {number + 1}?", ("Yes", "No")
    first, second = rng.sample(_NAMES, 2)
    return f"Who wins the Scoreline quiz, round {number + 1}: {first} or {second}?", (first, second)


def _price_path(
    rng: random.Random, opens: datetime, end: datetime, step: timedelta, first_wins: bool
) -> tuple[Quote, ...]:
    start = rng.uniform(0.2, 0.8)
    target = 0.95 if first_wins else 0.05
    moves = max(1, int((end - opens) / step))
    quotes: list[Quote] = []
    for k in range(moves):
        at = opens + k * step
        if at >= end or (k and rng.random() < 0.25):
            continue
        x = start + (target - start) * (k / moves) ** 2 + (rng.gauss(0, 0.03) if k else 0.0)
        yes = Decimal(f"{min(0.99, max(0.01, x)):.3f}")
        if not quotes or quotes[-1].values[0] != yes:
            quotes.append(Quote(at, (yes, 1 - yes)))
    return tuple(quotes)


def _result(score: tuple[int, int], outcomes: tuple[str, ...]) -> str:
    home, away = score
    return outcomes[0] if home > away else outcomes[2] if away > home else DRAW


def _match_market(
    rng: random.Random, plan: MatchPlan, number: int, open_before: timedelta, step: timedelta
) -> MarketPlan:
    outcomes = (plan.home.name, DRAW, plan.away.name)
    opens = plan.kickoff - open_before
    chances = [rng.uniform(0.3, 0.55), rng.uniform(0.22, 0.3)]
    chances.append(1 - sum(chances))
    quotes: list[Quote] = []
    at = opens
    while at < plan.kickoff:
        if not quotes or rng.random() < 0.75:
            moved = [max(0.05, c + rng.gauss(0, 0.02)) for c in chances]
            chances = [c / sum(moved) for c in moved]
            odds = tuple(
                max(_MIN_ODDS, Decimal(1 / (c * (1 + _MARGIN))).quantize(_ODDS_TICK, ROUND_DOWN))
                for c in chances
            )
            if not quotes or quotes[-1].values != odds:
                quotes.append(Quote(at, odds))
        at += step
    first = Resolution(plan.full_time, _result(first_final_score(plan), outcomes))
    resolutions = [first]
    corrected = _result(final_score(plan), outcomes)
    if plan.corrected_at is not None and corrected != first.outcome:
        resolutions.append(Resolution(plan.corrected_at, corrected))
    return MarketPlan(
        id=MATCH_ID_BASE + number,
        kind=MarketKind.MATCH_1X2,
        question=f"{plan.home.name} vs {plan.away.name}: home, draw or away?",
        outcomes=outcomes,
        opens_at=opens,
        end_date=plan.kickoff,
        quotes=tuple(quotes),
        resolutions=tuple(resolutions),
        match_id=plan.match_id,
    )


def generate_market_season(
    seed: int,
    *,
    first_open: datetime,
    football: Season | None = None,
    binary_markets: int = 40,
    open_spread: timedelta = timedelta(days=14),
    duration: tuple[timedelta, timedelta] = (timedelta(days=1), timedelta(days=7)),
    move_interval: timedelta = timedelta(hours=1),
    resolve_delay: tuple[timedelta, timedelta] = (timedelta(minutes=10), timedelta(hours=2)),
    correction_delay: tuple[timedelta, timedelta] = (timedelta(hours=1), timedelta(hours=6)),
    correction_rate: float = 0.1,
    void_rate: float = 0.05,
    corrections_at_least: int = 1,
    voids_at_least: int = 1,
    match_open_before: timedelta = timedelta(days=6),
    odds_interval: timedelta = timedelta(hours=6),
) -> MarketSeason:
    """``binary_markets`` binary markets opening within ``open_spread`` of ``first_open``,
    and a 1X2 market per match of ``football``, opening ``match_open_before`` kick-off.

    Times are drawn in whole minutes. Each binary market is corrected with
    ``correction_rate`` or voided with ``void_rate`` (never both); at least
    ``corrections_at_least`` are corrected and ``voids_at_least`` voided. Binary ids count
    up from 510001, match-market ids from 520001 (in match id order).
    """
    if binary_markets < 0 or not 0 <= correction_rate + void_rate <= 1:
        raise ValueError("binary_markets must be >= 0 and correction_rate + void_rate <= 1")
    if corrections_at_least + voids_at_least > binary_markets:
        raise ValueError("more corrections and voids asked for than binary markets")
    if max(resolve_delay) >= RESOLUTION_WINDOW or max(correction_delay) >= RESOLUTION_WINDOW:
        raise ValueError(f"resolutions must land within RESOLUTION_WINDOW ({RESOLUTION_WINDOW})")
    if min(duration) < move_interval or move_interval <= timedelta(0):
        raise ValueError("duration must be at least one move_interval, and that positive")
    first_open = as_utc(first_open)
    rng = random.Random(seed)  # noqa: S311 - a simulation, not security
    drafts: list[dict[str, Any]] = []
    for number in range(binary_markets):
        question, outcomes = _binary(rng, number)
        opens = first_open + _minutes(rng, (timedelta(0), open_spread))
        end = opens + _minutes(rng, duration)
        first_wins = rng.random() < 0.5
        fate = rng.random()
        fates = ((void_rate, "void"), (void_rate + correction_rate, "corrected"), (1.0, ""))
        drafts.append(
            {
                "question": question,
                "outcomes": outcomes,
                "opens": opens,
                "end": end,
                "quotes": _price_path(rng, opens, end, move_interval, first_wins),
                "winner": outcomes[0] if first_wins else outcomes[1],
                "resolved": end + _minutes(rng, resolve_delay),
                "corrected": _minutes(rng, correction_delay),
                "fate": next(name for bound, name in fates if fate < bound),
            }
        )
    forced = rng.sample(drafts, voids_at_least + corrections_at_least)
    for index, draft in enumerate(forced):
        draft["fate"] = "void" if index < voids_at_least else "corrected"
    markets = [_binary_plan(number, draft) for number, draft in enumerate(drafts)]
    matches = sorted(football.matches, key=lambda m: m.id) if football else []
    markets += [
        _match_market(rng, plan, number, match_open_before, odds_interval)
        for number, plan in enumerate(matches)
    ]
    return MarketSeason(seed, tuple(markets))


def _binary_plan(number: int, draft: Mapping[str, Any]) -> MarketPlan:
    winner, outcomes = draft["winner"], draft["outcomes"]
    resolutions = [Resolution(draft["resolved"], None if draft["fate"] == "void" else winner)]
    if draft["fate"] == "corrected":
        other = next(o for o in outcomes if o != winner)
        resolutions.append(Resolution(draft["resolved"] + draft["corrected"], other))
    return MarketPlan(
        id=BINARY_ID_BASE + number,
        kind=MarketKind.BINARY,
        question=draft["question"],
        outcomes=outcomes,
        opens_at=draft["opens"],
        end_date=draft["end"],
        quotes=draft["quotes"],
        resolutions=tuple(resolutions),
    )


def default_market_season(
    seed: int, football: Season, *, first_open: datetime | None = None, **overrides: Any
) -> MarketSeason:
    """The demo's markets: 40 binary ones from a day before the first kick-off (or
    ``first_open``) over two weeks, and a 1X2 market per match of ``football``."""
    if first_open is None:
        kickoffs = [m.kickoff for m in football.matches]
        first_open = min(kickoffs, default=datetime.now(UTC)) - timedelta(days=1)
    return generate_market_season(seed, first_open=first_open, football=football, **overrides)
