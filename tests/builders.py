"""Data builders with sensible defaults: ``a_match(...)``, ``a_prediction(...)``, ...

Override only what a test is about; the rest is a valid, boring value.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from producers.season import Competition, Correction, Goal, MatchPlan, Season, Side, Team
from producers.season import generate_season as _generate_season
from schemas.records import MatchStatus, MatchUpdated, PredictionPlaced

#: The default kick-off of built matches and seasons.
KICKOFF = datetime(2026, 8, 15, 15, 0, tzinfo=UTC)
TOURNAMENT_ID = "17"
SEASON_ID = "2026"


def a_prediction(
    entry_id: str = "e-1001-m00001-1",
    *,
    member_id: str = "m00001",
    match_id: str = "1001",
    guess: tuple[int, int] = (1, 0),
    placed_at: datetime = KICKOFF - timedelta(hours=1),
    league_ids: tuple[str, ...] = (),
) -> PredictionPlaced:
    """A guess placed an hour before :data:`KICKOFF`."""
    return PredictionPlaced(
        entry_id=entry_id,
        member_id=member_id,
        match_id=match_id,
        league_ids=league_ids,
        home_goals=guess[0],
        away_goals=guess[1],
        placed_at=placed_at,
    )


def a_match(
    match_id: str = "1001",
    *,
    score: tuple[int, int] = (1, 0),
    status: MatchStatus = MatchStatus.FINISHED,
    result_version: int = 1,
    provider_version: int = 1,
    tournament_id: str = TOURNAMENT_ID,
    kickoff_at: datetime = KICKOFF,
    updated_at: datetime | None = None,
    round: str | None = "1",
    minute: int | None = None,
    period: str | None = None,
) -> MatchUpdated:
    """A normalized match update (``fixtures.matches``); finished 1-0 unless told."""
    return MatchUpdated(
        match_id=match_id,
        tournament_id=tournament_id,
        round=round,
        home_team_id="1",
        home_team_name="Home United",
        away_team_id="2",
        away_team_name="Away City",
        status=status,
        home_score=score[0],
        away_score=score[1],
        minute=minute,
        period=period,
        kickoff_at=kickoff_at,
        provider="replay",
        provider_version=provider_version,
        result_version=result_version,
        updated_at=updated_at or kickoff_at + timedelta(hours=2, minutes=result_version),
    )


def a_match_plan(
    id: int = 1001,
    *,
    round: int = 1,
    kickoff: datetime = KICKOFF,
    goals: tuple[tuple[int, Side], ...] = ((20, "home"), (60, "away"), (80, "home")),
    first_half_stoppage: int = 2,
    second_half_stoppage: int = 4,
    correction: Correction | None = None,
) -> MatchPlan:
    """A replay-provider match: 2-1 at full time (20' home, 60' away, 80' home)."""
    competition = Competition(TOURNAMENT_ID, "Test League", SEASON_ID, "26/27")
    return MatchPlan(
        id=id,
        round=round,
        competition=competition,
        home=Team(1, "Home United", "Home"),
        away=Team(2, "Away City", "Away"),
        kickoff=kickoff,
        goals=tuple(Goal(minute, side) for minute, side in goals),
        first_half_stoppage=first_half_stoppage,
        second_half_stoppage=second_half_stoppage,
        correction=correction,
    )


def a_season(seed: int = 7, **overrides: Any) -> Season:
    """A small season: 8 teams, 2 rounds of 4 matches a week apart, one corrected."""
    options: dict[str, Any] = {
        "tournament_id": TOURNAMENT_ID,
        "season_id": SEASON_ID,
        "teams": 8,
        "rounds": 2,
        "first_kickoff": KICKOFF,
        "round_interval": timedelta(days=7),
        "kickoff_spread": timedelta(hours=2),
        "correction_rate": 0.0,
        "corrections_at_least": 1,
    }
    options.update(overrides)
    return _generate_season(seed, **options)
