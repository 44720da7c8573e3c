"""Guess the score: awards, entry validity, supersession, corrections and the oracle.

Pure: no I/O, no clock (times come in as arguments), no Kafka. The predictions agent
calls these functions; integration tests and benchmarks compare what Postgres, Redis and
the API hold with :func:`oracle_totals`.

Points per rule version, ``Decimal`` with two decimals (:data:`CENTS`); only the best
matching rule pays, they never add up:

====================  ================================================  =======
param                 paid when                                         default
====================  ================================================  =======
``exact_score``       the guess is the result                           5
``exact_bonus``       added to ``exact_score`` on an exact score        0
``goal_difference``   same home - away (a draw guessed 1-1 for a 2-2)   3
``outcome``           same winner, or both draws                        2
(miss)                none of the above                                 0
====================  ================================================  =======

Entries: a guess placed at or after kick-off is rejected; a redelivered entry (same
``entry_id``) counts once; of a member's several guesses on a match, the last one placed
on time counts (latest ``placed_at``, ties to the greater ``entry_id``) and the others
are superseded. A corrected result (a higher ``result_version``) re-scores every
effective entry of the match and emits the delta new - old.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from types import MappingProxyType
from typing import Literal, Protocol, TypeVar

from schemas.records import CENTS, Game, MatchStatus, MatchUpdated, RejectionReason, RuleSet
from streams.exceptions import RuleSetError
from streams.rules.boards import BoardLine, league_board_id, tournament_board_id

__all__ = [
    "CENTS",
    "DEFAULT_POINTS",
    "MAX_POINTS",
    "Award",
    "AwardReason",
    "MatchResult",
    "Outcome",
    "PredictionEntry",
    "PredictionRules",
    "Score",
    "board_ids",
    "check_entry",
    "check_placement",
    "correction_delta",
    "effective_entries",
    "guess_of",
    "idempotency_key",
    "latest_results",
    "oracle_totals",
    "score_prediction",
    "supersedes",
]

#: What a rule set pays for a rule its params leave out.
DEFAULT_POINTS: Mapping[str, Decimal] = MappingProxyType(
    {
        "exact_score": Decimal("5.00"),
        "goal_difference": Decimal("3.00"),
        "outcome": Decimal("2.00"),
        "exact_bonus": Decimal("0.00"),
    }
)
#: The most a rule may pay: points travel as Avro decimal(18, 2).
MAX_POINTS = Decimal("9999999999999999.99")


@dataclass(frozen=True, slots=True)
class PredictionRules:
    """One version of a league's or tournament's prediction rules.

    Every value is a non-negative multiple of 0.01 (normalized to two decimals), and
    ``exact_score >= goal_difference >= outcome``: a more precise guess never pays less,
    so an exact score always pays the most. Anything else raises :class:`RuleSetError`.
    """

    ruleset_id: str
    version: int
    exact_score: Decimal = DEFAULT_POINTS["exact_score"]
    goal_difference: Decimal = DEFAULT_POINTS["goal_difference"]
    outcome: Decimal = DEFAULT_POINTS["outcome"]
    exact_bonus: Decimal = DEFAULT_POINTS["exact_bonus"]

    def __post_init__(self) -> None:
        where = f"rule set {self.ruleset_id!r} v{self.version}"
        if isinstance(self.version, bool) or not isinstance(self.version, int):
            raise RuleSetError(f"{where}: version must be an int")
        if self.version < 0:
            raise RuleSetError(f"{where}: version must be >= 0")
        for name in DEFAULT_POINTS:
            object.__setattr__(self, name, _points(where, name, getattr(self, name)))
        if not self.exact_score >= self.goal_difference >= self.outcome:
            raise RuleSetError(f"{where}: needs exact_score >= goal_difference >= outcome")

    @classmethod
    def from_params(
        cls, ruleset_id: str, version: int, params: Mapping[str, str]
    ) -> PredictionRules:
        """Parse a rule set's params (decimal strings); missing ones take DEFAULT_POINTS.

        Raises RuleSetError on an unknown param (a typo must not silently pay the
        default), a non-decimal, non-finite or negative value, or more than two decimals.
        """
        where = f"rule set {ruleset_id!r} v{version}"
        unknown = sorted(set(params) - set(DEFAULT_POINTS))
        if unknown:
            raise RuleSetError(f"{where}: unknown params {', '.join(unknown)}")
        values = {name: _parse(where, name, params.get(name)) for name in DEFAULT_POINTS}
        return cls(
            ruleset_id,
            version,
            exact_score=values["exact_score"],
            goal_difference=values["goal_difference"],
            outcome=values["outcome"],
            exact_bonus=values["exact_bonus"],
        )

    @classmethod
    def from_ruleset(cls, record: RuleSet) -> PredictionRules:
        """The rules of a ``rules`` topic record; RuleSetError when it is another game's."""
        if record.game is not Game.PREDICTIONS:
            raise RuleSetError(f"rule set {record.ruleset_id!r} is for {record.game}")
        return cls.from_params(record.ruleset_id, record.version, record.params)

    def to_params(self) -> dict[str, str]:
        """The params as decimal strings: ``from_params(id, v, r.to_params()) == r``."""
        return {name: str(getattr(self, name)) for name in DEFAULT_POINTS}


def _parse(where: str, name: str, text: str | None) -> Decimal:
    if text is None:
        return DEFAULT_POINTS[name]
    if not isinstance(text, str):
        raise RuleSetError(f"{where}: {name} must be a decimal string, got {text!r}")
    try:
        return Decimal(text)
    except InvalidOperation as e:
        raise RuleSetError(f"{where}: {name}={text!r} is not a decimal") from e


def _points(where: str, name: str, value: object) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, Decimal | int):
        raise RuleSetError(f"{where}: {name} must be a Decimal, got {value!r}")
    number = Decimal(value)
    if not number.is_finite() or number < 0 or number > MAX_POINTS:
        raise RuleSetError(f"{where}: {name}={number} must be between 0 and {MAX_POINTS}")
    cents = number.quantize(CENTS)
    if cents != number:
        raise RuleSetError(f"{where}: {name}={number} has more than two decimals")
    return cents.copy_abs()  # -0.00 -> 0.00


@dataclass(frozen=True, slots=True)
class Score:
    """A football score (or a guess of one): goals for each side, never negative."""

    home: int
    away: int

    def __post_init__(self) -> None:
        for side in (self.home, self.away):
            if isinstance(side, bool) or not isinstance(side, int) or side < 0:
                raise ValueError(f"goals must be non-negative ints: {self.home!r}-{self.away!r}")

    @property
    def goal_difference(self) -> int:
        return self.home - self.away

    @property
    def outcome(self) -> Outcome:
        return Outcome.of(self)

    def __str__(self) -> str:
        return f"{self.home}-{self.away}"


class Outcome(StrEnum):
    HOME = "home"
    DRAW = "draw"
    AWAY = "away"

    @classmethod
    def of(cls, score: Score) -> Outcome:
        if score.home > score.away:
            return cls.HOME
        if score.home < score.away:
            return cls.AWAY
        return cls.DRAW


AwardReason = Literal["exact_score", "goal_difference", "outcome", "miss"]


@dataclass(frozen=True, slots=True)
class Award:
    """What one guess earns against one result under one rule version."""

    points: Decimal
    reason: AwardReason
    exact: bool


def score_prediction(guess: Score, result: Score, rules: PredictionRules) -> Award:
    """The award of ``guess`` against ``result``: the best matching rule only."""
    if guess == result:
        return Award(_cents(rules.exact_score + rules.exact_bonus), "exact_score", exact=True)
    if guess.goal_difference == result.goal_difference:
        return Award(_cents(rules.goal_difference), "goal_difference", exact=False)
    if guess.outcome is result.outcome:
        return Award(_cents(rules.outcome), "outcome", exact=False)
    return Award(_cents(Decimal(0)), "miss", exact=False)


def _cents(points: Decimal) -> Decimal:
    return points.quantize(CENTS)


def check_placement(placed_at: datetime, kickoff_at: datetime) -> RejectionReason | None:
    """``RejectionReason.AFTER_KICKOFF`` for a guess placed at or after kick-off, else None.

    Both datetimes must be timezone-aware (ValueError otherwise); any zones compare.
    """
    for name, value in (("placed_at", placed_at), ("kickoff_at", kickoff_at)):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"{name} must be timezone-aware: {value!r}")
    return RejectionReason.AFTER_KICKOFF if placed_at >= kickoff_at else None


class PredictionEntry(Protocol):
    """The fields of a guess the rules read; ``schemas.records.PredictionPlaced`` has them."""

    @property
    def entry_id(self) -> str: ...
    @property
    def member_id(self) -> str: ...
    @property
    def match_id(self) -> str: ...
    @property
    def league_ids(self) -> Sequence[str]: ...
    @property
    def home_goals(self) -> int: ...
    @property
    def away_goals(self) -> int: ...
    @property
    def placed_at(self) -> datetime: ...


E = TypeVar("E", bound=PredictionEntry)


def check_entry(entry: PredictionEntry, kickoff_at: datetime) -> RejectionReason | None:
    """Why the entry must be rejected (MALFORMED: negative goals; AFTER_KICKOFF), or None."""
    if entry.home_goals < 0 or entry.away_goals < 0:
        return RejectionReason.MALFORMED
    return check_placement(entry.placed_at, kickoff_at)


def guess_of(entry: PredictionEntry) -> Score:
    """The score an entry guesses."""
    return Score(entry.home_goals, entry.away_goals)


def supersedes(candidate: PredictionEntry, current: PredictionEntry) -> bool:
    """Whether ``candidate`` replaces ``current`` as the member's guess on the match.

    Both must be valid and on time; the later ``placed_at`` wins, ties to the greater
    ``entry_id``. The same entry never supersedes itself (a redelivery changes nothing).
    """
    return (candidate.placed_at, candidate.entry_id) > (current.placed_at, current.entry_id)


def effective_entries(
    entries: Iterable[E], kickoffs: Mapping[str, datetime]
) -> dict[tuple[str, str], E]:
    """The guess that counts per (match_id, member_id), from entries in log order.

    An ``entry_id`` seen again is a redelivery and ignored (the first one seen stands).
    Entries rejected by :func:`check_entry` against ``kickoffs[match_id]``, or on a
    match missing from ``kickoffs``, never count; of the rest, :func:`supersedes` decides.
    """
    seen: set[str] = set()
    effective: dict[tuple[str, str], E] = {}
    for entry in entries:
        if entry.entry_id in seen:
            continue
        seen.add(entry.entry_id)
        kickoff_at = kickoffs.get(entry.match_id)
        if kickoff_at is None or check_entry(entry, kickoff_at) is not None:
            continue
        key = (entry.match_id, entry.member_id)
        current = effective.get(key)
        if current is None or supersedes(entry, current):
            effective[key] = entry
    return effective


def board_ids(entry: PredictionEntry, tournament_id: str) -> tuple[str, ...]:
    """The boards an entry scores on: its tournament's, then its leagues' (sorted, unique)."""
    leagues = sorted(set(entry.league_ids))
    return (tournament_board_id(tournament_id), *(league_board_id(lg) for lg in leagues))


def idempotency_key(match_id: str, entry_id: str, result_version: int, rule_version: int) -> str:
    """``score:{match_id}:{entry_id}:{result_version}:{rule_version}``: one award per key."""
    return f"score:{match_id}:{entry_id}:{result_version}:{rule_version}"


def correction_delta(old: Award | None, new: Award) -> Decimal:
    """What a (re-)scoring adds to the totals: ``new - old`` (``new`` when first scored)."""
    return new.points - (old.points if old is not None else Decimal(0))


@dataclass(frozen=True, slots=True)
class MatchResult:
    """The final result of a match at one result version, and when it kicked off."""

    match_id: str
    tournament_id: str
    score: Score
    result_version: int
    kickoff_at: datetime


def latest_results(updates: Iterable[MatchUpdated]) -> dict[str, MatchResult]:
    """Per match, its finished update with the highest result version.

    Ties between finished updates go to the higher provider version, then the later
    ``updated_at``. Matches never finished (in play, postponed, cancelled) are absent.
    """
    best: dict[str, MatchUpdated] = {}
    for update in updates:
        if update.status is not MatchStatus.FINISHED:
            continue
        current = best.get(update.match_id)
        if current is None or _version(update) > _version(current):
            best[update.match_id] = update
    return {
        match_id: MatchResult(
            match_id=match_id,
            tournament_id=u.tournament_id,
            score=Score(u.home_score, u.away_score),
            result_version=u.result_version,
            kickoff_at=u.kickoff_at,
        )
        for match_id, u in best.items()
    }


def _version(update: MatchUpdated) -> tuple[int, int, datetime]:
    return (update.result_version, update.provider_version, update.updated_at)


def oracle_totals(
    entries: Iterable[PredictionEntry],
    results: Mapping[str, MatchResult],
    rules: PredictionRules | Mapping[str, PredictionRules],
) -> dict[str, dict[str, BoardLine]]:
    """What every board must hold at the end: ``{board_id: {member_id: BoardLine}}``.

    Computed from raw data, independently of the pipeline: ``entries`` in log order (with
    their redeliveries, late and superseded guesses), ``results`` the final result of each
    finished match (:func:`latest_results`; a corrected result counts once, at its latest
    version; a match absent from it scores nothing). Only :func:`effective_entries` score,
    judged against the result's ``kickoff_at``, on :func:`board_ids`. ``rules`` is one
    rule set for every board or one per board id (KeyError for a board without one). A
    member with a scored entry on a board has a line there, a total of 0 included.
    """
    kickoffs = {match_id: result.kickoff_at for match_id, result in results.items()}
    sums: dict[str, dict[str, tuple[Decimal, int]]] = {}
    for (match_id, member_id), entry in effective_entries(entries, kickoffs).items():
        result = results[match_id]
        guess = guess_of(entry)
        for board_id in board_ids(entry, result.tournament_id):
            board_rules = rules if isinstance(rules, PredictionRules) else rules[board_id]
            award = score_prediction(guess, result.score, board_rules)
            board = sums.setdefault(board_id, {})
            total, exact_count = board.get(member_id, (Decimal("0.00"), 0))
            board[member_id] = (total + award.points, exact_count + int(award.exact))
    return {
        board_id: {
            member_id: BoardLine(member_id, total, exact_count)
            for member_id, (total, exact_count) in board.items()
        }
        for board_id, board in sums.items()
    }
