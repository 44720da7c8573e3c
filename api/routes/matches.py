"""``GET /matches/{match_id}``: the latest state of a match, from Postgres."""

from __future__ import annotations

from datetime import UTC
from typing import Annotated, Any

from fastapi import APIRouter, Path

from api.boards import postgres_connection
from api.deps import MAX_ID_LENGTH, PoolDep
from api.errors import MatchNotFoundError
from api.models import ErrorPublic, MatchPublic, TeamPublic

router = APIRouter(prefix="/matches", tags=["matches"])

MatchId = Annotated[str, Path(min_length=1, max_length=MAX_ID_LENGTH)]

_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorPublic, "description": "No such match"},
    503: {"model": ErrorPublic, "description": "Postgres does not answer"},
}

_PG_MATCH = """
    select match_id, tournament_id, round, home_team_id, home_team_name, away_team_id,
           away_team_name, status, home_score, away_score, minute, kickoff_at,
           result_version, updated_at
    from matches where match_id = $1
"""


@router.get("/{match_id}", responses=_ERRORS)
async def read_match(match_id: MatchId, pool: PoolDep) -> MatchPublic:
    """Status, score, minute and result version of one match."""
    async with postgres_connection(pool) as conn:
        row = await conn.fetchrow(_PG_MATCH, match_id)
    if row is None:
        raise MatchNotFoundError(match_id)
    return MatchPublic(
        match_id=row["match_id"],
        tournament_id=row["tournament_id"],
        round=row["round"],
        home_team=TeamPublic(team_id=row["home_team_id"], name=row["home_team_name"]),
        away_team=TeamPublic(team_id=row["away_team_id"], name=row["away_team_name"]),
        status=row["status"],
        home_score=row["home_score"],
        away_score=row["away_score"],
        minute=row["minute"],
        kickoff_at=row["kickoff_at"].astimezone(UTC),
        result_version=row["result_version"],
        updated_at=row["updated_at"].astimezone(UTC),
    )
