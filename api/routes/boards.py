"""``GET /boards/{board_id}`` (a page of a board) and its members' standings."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from api.deps import MAX_ID_LENGTH, BoardReaderDep, CursorDep, LeagueTokenDep
from api.models import (
    BoardLinePublic,
    BoardPagePublic,
    ErrorPublic,
    MemberStandingPublic,
    format_total,
)

router = APIRouter(prefix="/boards", tags=["boards"])

BoardId = Annotated[str, Path(min_length=1, max_length=MAX_ID_LENGTH, examples=["league:L1"])]
MemberId = Annotated[str, Path(min_length=1, max_length=MAX_ID_LENGTH)]

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorPublic, "description": "Private league: X-League-Token missing"},
    403: {"model": ErrorPublic, "description": "Private league: X-League-Token wrong"},
    404: {"model": ErrorPublic, "description": "No such board (or member)"},
    503: {"model": ErrorPublic, "description": "Postgres does not answer"},
}


@router.get("/{board_id}", responses=_ERRORS)
async def read_board(
    board_id: BoardId,
    reader: BoardReaderDep,
    cursor: CursorDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    x_league_token: LeagueTokenDep = None,
) -> BoardPagePublic:
    """A page of the board in board order, with absolute competition ranks."""
    await reader.authorize(board_id, x_league_token)
    page = await reader.page(board_id, limit, cursor)
    return BoardPagePublic(
        board_id=board_id,
        source=page.source,
        data=[BoardLinePublic.from_ranked(line) for line in page.lines],
        next_cursor=page.next_cursor.encode() if page.next_cursor else None,
    )


@router.get("/{board_id}/members/{member_id}", responses=_ERRORS)
async def read_member_standing(
    board_id: BoardId,
    member_id: MemberId,
    reader: BoardReaderDep,
    around: Annotated[int, Query(ge=0, le=100)] = 5,
    x_league_token: LeagueTokenDep = None,
) -> MemberStandingPublic:
    """The member's rank and total, and up to ``around`` lines above and below."""
    await reader.authorize(board_id, x_league_token)
    standing = await reader.standing(board_id, member_id, around)
    return MemberStandingPublic(
        board_id=board_id,
        member_id=member_id,
        rank=standing.line.rank,
        total=format_total(standing.line.total),
        exact_count=standing.line.exact_count,
        neighbours=[BoardLinePublic.from_ranked(line) for line in standing.neighbours],
        source=standing.source,
    )
