"""A simulated football season and the provider JSON of its matches at any moment.

Pure and deterministic: the same seed and arguments give the same season, and
:func:`event_at` renders a match as the provider would show it at a given (simulated)
time, with no clock of its own. The JSON contract is documented in docs/providers.md.

A match's timeline: kick-off; first half (45' + stoppage); half-time (15 minutes); second
half (45' + stoppage); full time. A correction, when planned, changes the final score by
one goal (added or removed, in the second half) some minutes after full time; the status
stays finished.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any, Literal, NamedTuple

from producers.clock import as_utc

Side = Literal["home", "away"]

#: The break between the halves.
HALFTIME_BREAK = timedelta(minutes=15)
#: How long after full time a match stays in the live list (corrections land inside it).
LIVE_WINDOW = timedelta(minutes=10)
_CORRECTION_DELAY_MINUTES = (2, 8)  # inside LIVE_WINDOW
_GOALS_MEAN: tuple[tuple[Side, float], ...] = (("home", 1.5), ("away", 1.15))
_TOWNS = (
    "Northbridge", "Eastvale", "Westmoor", "Southport", "Kingsford", "Ashby", "Redcliff",
    "Millbrook", "Highgate", "Stonehaven", "Fairhaven", "Oakham", "Ravensworth", "Brackley",
    "Cliffton", "Dunmore", "Elmstead", "Greywater", "Harrowby", "Lindale", "Marston",
    "Pendle", "Thornbury", "Wexley",
)  # fmt: skip
_SUFFIXES = ("United", "City", "Rovers", "Athletic", "Town", "Albion", "Wanderers", "FC")


class Goal(NamedTuple):
    """A goal at a match minute (1-45 first half, 46-90 second half) for one side."""

    minute: int
    side: Side


@dataclass(frozen=True, slots=True)
class Status:
    """A provider status: code, type and description."""

    code: int
    type: str
    description: str


NOT_STARTED = Status(0, "notstarted", "Not started")
FIRST_HALF = Status(6, "inprogress", "1st half")
HALFTIME = Status(31, "inprogress", "Halftime")
SECOND_HALF = Status(7, "inprogress", "2nd half")
ENDED = Status(100, "finished", "Ended")


@dataclass(frozen=True, slots=True)
class Team:
    id: int
    name: str
    short_name: str

    @property
    def slug(self) -> str:
        return re.sub(r"[^a-z0-9]+", "-", self.name.lower()).strip("-")


@dataclass(frozen=True, slots=True)
class Competition:
    """The tournament and season a match belongs to. Ids are decimal strings (ints in JSON)."""

    tournament_id: str
    name: str
    season_id: str
    season_year: str

    def __post_init__(self) -> None:
        for name in ("tournament_id", "season_id"):
            if not getattr(self, name).isdigit():
                raise ValueError(f"{name} must be a decimal string: {getattr(self, name)!r}")


@dataclass(frozen=True, slots=True)
class Correction:
    """``delta`` goals (+1 or -1) to ``side``'s second half, ``after_full_time``."""

    after_full_time: timedelta
    side: Side
    delta: int


@dataclass(frozen=True, slots=True)
class MatchPlan:
    """One match of the season, scripted from kick-off to its final (corrected) score."""

    id: int
    round: int
    competition: Competition
    home: Team
    away: Team
    kickoff: datetime
    goals: tuple[Goal, ...] = ()
    first_half_stoppage: int = 0
    second_half_stoppage: int = 3
    correction: Correction | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "kickoff", as_utc(self.kickoff))
        for goal in self.goals:
            if not 1 <= goal.minute <= 90 or goal.side not in ("home", "away"):
                raise ValueError(f"match {self.id}: bad goal {goal!r}")
        if self.correction is not None:
            c = self.correction
            if c.delta not in (1, -1) or c.after_full_time <= timedelta(0):
                raise ValueError(f"match {self.id}: bad correction {c!r}")
            second_half = sum(1 for g in self.goals if g.side == c.side and g.minute > 45)
            if second_half + c.delta < 0:
                raise ValueError(f"match {self.id}: correction removes a goal that never was")

    @property
    def match_id(self) -> str:
        """The match id on Kafka (``fixtures.matches``, ``entries.predictions``)."""
        return str(self.id)

    @property
    def half_time(self) -> datetime:
        return self.kickoff + timedelta(minutes=45 + self.first_half_stoppage)

    @property
    def second_half_start(self) -> datetime:
        return self.half_time + HALFTIME_BREAK

    @property
    def full_time(self) -> datetime:
        return self.second_half_start + timedelta(minutes=45 + self.second_half_stoppage)

    @property
    def corrected_at(self) -> datetime | None:
        return None if self.correction is None else self.full_time + self.correction.after_full_time

    @property
    def settled_at(self) -> datetime:
        """When the score stops changing: the correction, or else full time."""
        return self.corrected_at or self.full_time

    def goal_time(self, goal: Goal) -> datetime:
        if goal.minute <= 45:
            return self.kickoff + timedelta(minutes=goal.minute)
        return self.second_half_start + timedelta(minutes=goal.minute - 45)


@dataclass(frozen=True)
class Season:
    seed: int
    competition: Competition
    teams: tuple[Team, ...]
    matches: tuple[MatchPlan, ...]

    @property
    def tournament_id(self) -> str:
        return self.competition.tournament_id

    @property
    def season_id(self) -> str:
        return self.competition.season_id

    @cached_property
    def _by_id(self) -> dict[int, MatchPlan]:
        return {m.id: m for m in self.matches}

    @cached_property
    def rounds(self) -> tuple[int, ...]:
        return tuple(sorted({m.round for m in self.matches}))

    def round_matches(self, round_: int) -> tuple[MatchPlan, ...]:
        return tuple(m for m in self.matches if m.round == round_)

    def match(self, event_id: int) -> MatchPlan | None:
        return self._by_id.get(event_id)

    def current_round(self, when: datetime) -> int:
        """The first round with a match not yet settled at ``when``; else the last round."""
        for round_ in self.rounds:
            if any(m.settled_at > when for m in self.round_matches(round_)):
                return round_
        return self.rounds[-1] if self.rounds else 1

    def live(self, when: datetime) -> tuple[MatchPlan, ...]:
        """Matches in progress at ``when``, and those ended within :data:`LIVE_WINDOW`."""
        return tuple(m for m in self.matches if m.kickoff <= when < m.full_time + LIVE_WINDOW)

    def kickoffs(self) -> dict[str, datetime]:
        return {m.match_id: m.kickoff for m in self.matches}


def epoch_seconds(when: datetime) -> int:
    return math.floor(as_utc(when).timestamp())


def status_at(plan: MatchPlan, when: datetime) -> Status:
    if when < plan.kickoff:
        return NOT_STARTED
    if when < plan.half_time:
        return FIRST_HALF
    if when < plan.second_half_start:
        return HALFTIME
    if when < plan.full_time:
        return SECOND_HALF
    return ENDED


def score_at(plan: MatchPlan, when: datetime) -> dict[Side, tuple[int, int]]:
    """Goals per side and half, ``{"home": (period1, period2), ...}``, at ``when``."""
    periods: dict[Side, list[int]] = {"home": [0, 0], "away": [0, 0]}
    for goal in plan.goals:
        if plan.goal_time(goal) <= when:
            periods[goal.side][0 if goal.minute <= 45 else 1] += 1
    c = plan.correction
    if c is not None and plan.corrected_at is not None and when >= plan.corrected_at:
        periods[c.side][1] += c.delta
    return {side: (p[0], p[1]) for side, p in periods.items()}


def first_final_score(plan: MatchPlan) -> tuple[int, int]:
    """The score at full time, before any correction: (home, away)."""
    return _totals(score_at(plan, plan.full_time))


def final_score(plan: MatchPlan) -> tuple[int, int]:
    """The final score after any correction: (home, away)."""
    return _totals(score_at(plan, plan.settled_at))


def _totals(score: dict[Side, tuple[int, int]]) -> tuple[int, int]:
    return sum(score["home"]), sum(score["away"])


def _fields(side: Side, *names: str) -> tuple[str, ...]:
    return tuple(f"{side}Score.{name}" for name in names)


def _moments(plan: MatchPlan) -> list[tuple[datetime, tuple[str, ...]]]:
    """Every change of the match, with the fields it changes (provider ``changes``)."""
    status, period = ("status.code", "status.description"), "time.currentPeriodStartTimestamp"
    opening = ("current", "display", "period1")
    kickoff = (*status, "status.type", *_fields("home", *opening), *_fields("away", *opening))
    moments = [
        (plan.kickoff, (*kickoff, period)),
        (plan.half_time, (*status, period)),
        (plan.second_half_start, (*status, "homeScore.period2", "awayScore.period2", period)),
        (plan.full_time, (*status, "status.type")),
    ]
    for goal in plan.goals:
        half = "period1" if goal.minute <= 45 else "period2"
        moments.append((plan.goal_time(goal), _fields(goal.side, "current", "display", half)))
    if plan.correction is not None and plan.corrected_at is not None:
        fields = _fields(plan.correction.side, "current", "display", "period2")
        moments.append((plan.corrected_at, fields))
    return moments


def _changes(plan: MatchPlan, when: datetime) -> dict[str, Any]:
    past = [(t, fields) for t, fields in _moments(plan) if t <= when]
    if not past:
        return {"changes": [], "changeTimestamp": 0}
    last = max(t for t, _ in past)
    fields: list[str] = []
    for t, changed in past:
        if t == last:
            fields.extend(f for f in changed if f not in fields)
    return {"changes": fields, "changeTimestamp": epoch_seconds(last)}


def _score_json(periods: tuple[int, int], status: Status) -> dict[str, int]:
    if status is NOT_STARTED:
        return {}
    first, second = periods
    if status in (FIRST_HALF, HALFTIME):
        return {"current": first, "display": first, "period1": first}
    total = first + second
    return {"current": total, "display": total, "period1": first, "period2": second}


def _team_json(team: Team) -> dict[str, Any]:
    return {"id": team.id, "name": team.name, "shortName": team.short_name, "slug": team.slug}


def event_at(plan: MatchPlan, when: datetime) -> dict[str, Any]:
    """The provider JSON of ``plan`` as it stands at ``when`` (docs/providers.md)."""
    when = as_utc(when)
    status = status_at(plan, when)
    score = score_at(plan, when)
    comp = plan.competition
    tournament = {"id": int(comp.tournament_id), "name": comp.name}
    event: dict[str, Any] = {
        "id": plan.id,
        "slug": f"{plan.home.slug}-{plan.away.slug}",
        "tournament": {**tournament, "uniqueTournament": dict(tournament)},
        "season": {"id": int(comp.season_id), "year": comp.season_year},
        "roundInfo": {"round": plan.round},
        "homeTeam": _team_json(plan.home),
        "awayTeam": _team_json(plan.away),
        "status": {"code": status.code, "type": status.type, "description": status.description},
        "homeScore": _score_json(score["home"], status),
        "awayScore": _score_json(score["away"], status),
        "startTimestamp": epoch_seconds(plan.kickoff),
        "changes": _changes(plan, when),
    }
    period_start = {FIRST_HALF: plan.kickoff, HALFTIME: plan.half_time}.get(
        status, plan.second_half_start
    )
    if status.type == "inprogress":
        event["time"] = {"currentPeriodStartTimestamp": epoch_seconds(period_start)}
    return event


def _poisson(rng: random.Random, mean: float) -> int:
    limit, k, p = math.exp(-mean), 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k


def _pairings(teams: int, round_index: int) -> list[tuple[int, int]]:
    """Round ``round_index`` (0-based) of a double round robin (circle method)."""
    cycle = teams - 1
    r, leg = round_index % cycle, (round_index // cycle) % 2
    others = list(range(1, teams))
    line = [0, *others[r:], *others[:r]]
    pairs = []
    for i in range(teams // 2):
        home, away = line[i], line[teams - 1 - i]
        if (i + r + leg) % 2:
            home, away = away, home
        pairs.append((home, away))
    return pairs


def _correction(rng: random.Random, goals: Sequence[Goal]) -> Correction:
    after = timedelta(minutes=rng.randint(*_CORRECTION_DELAY_MINUTES))
    removable = sorted({g.side for g in goals if g.minute > 45})
    if removable and rng.random() < 0.5:
        return Correction(after, rng.choice(removable), -1)
    side: Side = "home" if rng.random() < 0.5 else "away"
    return Correction(after, side, 1)


def generate_season(
    seed: int,
    *,
    tournament_id: str,
    season_id: str,
    teams: int = 20,
    rounds: int,
    matches_per_round: int | None = None,
    first_kickoff: datetime,
    round_interval: timedelta,
    kickoff_spread: timedelta,
    correction_rate: float,
    corrections_at_least: int = 0,
    tournament_name: str = "Scoreline Premier League",
) -> Season:
    """A season of ``rounds`` rounds of a double round robin between ``teams`` teams.

    Round ``r`` kicks off between ``first_kickoff + (r - 1) * round_interval`` and
    ``kickoff_spread`` later (whole minutes). ``matches_per_round`` defaults to, and may
    not exceed, ``teams // 2``. Each match is corrected with ``correction_rate``; at least
    ``corrections_at_least`` matches are. Event ids count up from 1001.
    """
    if teams < 2 or teams % 2:
        raise ValueError(f"teams must be an even number >= 2: {teams}")
    per_round = teams // 2 if matches_per_round is None else matches_per_round
    if not 1 <= per_round <= teams // 2:
        raise ValueError(f"matches_per_round must be 1..{teams // 2} for {teams} teams")
    if rounds < 1 or not 0 <= correction_rate <= 1:
        raise ValueError("rounds must be >= 1 and correction_rate in [0, 1]")
    if corrections_at_least > rounds * per_round:
        raise ValueError(f"corrections_at_least={corrections_at_least} > number of matches")
    first_kickoff = as_utc(first_kickoff)
    rng = random.Random(seed)  # noqa: S311 - a simulation, not security
    year = first_kickoff.year
    competition = Competition(
        tournament_id, tournament_name, season_id, f"{year % 100:02d}/{(year + 1) % 100:02d}"
    )
    towns = list(_TOWNS)
    rng.shuffle(towns)
    roster = tuple(
        Team(
            id=i + 1,
            name=f"{towns[i % len(towns)]} {_SUFFIXES[i % len(_SUFFIXES)]}"
            + (f" {i // len(towns) + 1}" if i >= len(towns) else ""),
            short_name=towns[i % len(towns)],
        )
        for i in range(teams)
    )
    order = list(range(teams))
    rng.shuffle(order)
    spread_minutes = max(0, int(kickoff_spread.total_seconds() // 60))
    plans: list[dict[str, Any]] = []
    for round_index in range(rounds):
        pairs = _pairings(teams, round_index)
        rng.shuffle(pairs)
        round_start = first_kickoff + round_index * round_interval
        for home, away in pairs[:per_round]:
            goals = [
                Goal(rng.randint(1, 90), side)
                for side, mean in _GOALS_MEAN
                for _ in range(_poisson(rng, mean))
            ]
            plan: dict[str, Any] = {
                "id": 1001 + len(plans),
                "round": round_index + 1,
                "competition": competition,
                "home": roster[order[home]],
                "away": roster[order[away]],
                "kickoff": round_start + timedelta(minutes=rng.randint(0, spread_minutes)),
                "goals": tuple(sorted(goals)),
                "first_half_stoppage": rng.randint(0, 3),
                "second_half_stoppage": rng.randint(1, 6),
                "correction": None,
            }
            if rng.random() < correction_rate:
                plan["correction"] = _correction(rng, plan["goals"])
            plans.append(plan)
    uncorrected = [p for p in plans if p["correction"] is None]
    missing = corrections_at_least - (len(plans) - len(uncorrected))
    for plan in rng.sample(uncorrected, max(0, missing)):
        plan["correction"] = _correction(rng, plan["goals"])
    return Season(seed, competition, roster, tuple(MatchPlan(**p) for p in plans))


def default_season(seed: int, *, first_kickoff: datetime, **overrides: Any) -> Season:
    """The demo's season: 20 teams, 38 weekly rounds, 10% corrected (at least one)."""
    options: dict[str, Any] = {
        "tournament_id": "17",
        "season_id": "2026",
        "teams": 20,
        "rounds": 38,
        "round_interval": timedelta(days=7),
        "kickoff_spread": timedelta(hours=3),
        "correction_rate": 0.1,
        "corrections_at_least": 1,
    }
    options.update(overrides)
    return generate_season(seed, first_kickoff=first_kickoff, **options)
