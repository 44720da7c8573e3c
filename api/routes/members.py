"""``GET /members/{member_id}/bets`` (a member's bets, newest first) and ``.../balance``.

Both read Postgres, the truth the markets sink writes (``sinks/postgres_markets.py``).
Bets are keyset-paginated on ``(placed_at, bet_id)`` descending (the ``bets_by_member``
index): a cursor is the last bet's key, so a page continues strictly after it while new
bets arrive, and a walk lists every bet once.
"""

from __future__ import annotations

import json
from datetime import UTC
from decimal import Decimal
from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, Depends, Path, Query

from api.boards import postgres_connection
from api.deps import MAX_ID_LENGTH, CursorQuery, PoolDep, decode_cursor
from api.errors import NotFoundError
from api.models import (
    BalancePublic,
    BetCursor,
    BetFilter,
    BetLegPublic,
    BetPagePublic,
    BetPublic,
    ErrorPublic,
    format_price,
    format_total,
)

router = APIRouter(prefix="/members", tags=["members"])

MemberId = Annotated[str, Path(min_length=1, max_length=MAX_ID_LENGTH, examples=["m00001"])]

#: The bet statuses each ``status`` filter lists (``all`` includes rejected bets).
STATUSES: dict[str, list[str]] = {
    "open": ["open"],
    "settled": ["won", "lost", "void", "push"],
    "all": ["open", "rejected", "won", "lost", "void", "push"],
}

_BET_COLUMNS = """
    select bet_id, kind, stake, legs, placed_at, status, reject_reason, payout,
           settlement_version, settled_at
    from bets where member_id = $1 and status = any($2::text[])
"""
_ORDER = "order by placed_at desc, bet_id desc"
_PG_FIRST = f"{_BET_COLUMNS} {_ORDER} limit $3"
_PG_AFTER = (
    f"{_BET_COLUMNS} and (placed_at, bet_id) < ($4::timestamptz, $5::text) {_ORDER} limit $3"
)
_PG_BALANCE = "select balance, entries, updated_at from credit_balances where member_id = $1"


class AccountNotFoundError(NotFoundError):
    code = "account_not_found"

    def __init__(self, member_id: str) -> None:
        super().__init__(f"member {member_id!r} has no credits account (no ledger entry yet)")


def get_bet_cursor(cursor: CursorQuery = None) -> BetCursor | None:
    return decode_cursor(BetCursor.decode, cursor)


BetCursorDep = Annotated[BetCursor | None, Depends(get_bet_cursor)]


@router.get("/{member_id}/bets", responses={503: {"model": ErrorPublic}})
async def read_bets(
    member_id: MemberId,
    pool: PoolDep,
    cursor: BetCursorDep,
    status: Annotated[BetFilter, Query(description="open, settled or all")] = "all",
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> BetPagePublic:
    """The member's bets, newest first, with legs, stake, status and latest settlement.

    A member without bets has an empty page (bets are the upstream app's, not ours to
    enumerate).
    """
    async with postgres_connection(pool) as conn:
        if cursor is None:
            rows = await conn.fetch(_PG_FIRST, member_id, STATUSES[status], limit + 1)
        else:
            args = (member_id, STATUSES[status], limit + 1, cursor.placed_at, cursor.bet_id)
            rows = await conn.fetch(_PG_AFTER, *args)
    page, more = rows[:limit], len(rows) > limit
    next_cursor = None
    if more:
        last = page[-1]
        next_cursor = BetCursor(last["placed_at"], last["bet_id"]).encode()
    return BetPagePublic(
        member_id=member_id,
        status=status,
        data=[_bet(row) for row in page],
        next_cursor=next_cursor,
    )


@router.get(
    "/{member_id}/balance",
    responses={
        404: {"model": ErrorPublic, "description": "No ledger entry for this member"},
        503: {"model": ErrorPublic, "description": "Postgres does not answer"},
    },
)
async def read_balance(member_id: MemberId, pool: PoolDep) -> BalancePublic:
    """The member's credits balance (the sum of their ledger) and their ledger entry count."""
    async with postgres_connection(pool) as conn:
        row = await conn.fetchrow(_PG_BALANCE, member_id)
    if row is None:
        raise AccountNotFoundError(member_id)
    return BalancePublic(
        member_id=member_id,
        balance=format_total(row["balance"]),
        ledger_entries=row["entries"],
        updated_at=row["updated_at"].astimezone(UTC),
    )


def _bet(row: asyncpg.Record) -> BetPublic:
    legs: list[dict[str, Any]] = json.loads(row["legs"])
    return BetPublic(
        bet_id=row["bet_id"],
        kind=row["kind"],
        stake=format_total(row["stake"]),
        legs=[
            BetLegPublic(
                market_id=leg["market_id"],
                selection=leg["selection"],
                odds=_price(leg.get("odds")),
                price=_price(leg.get("price")),
            )
            for leg in legs
        ],
        placed_at=row["placed_at"].astimezone(UTC),
        status=row["status"],
        reject_reason=row["reject_reason"],
        payout=format_total(row["payout"]) if row["payout"] is not None else None,
        settlement_version=row["settlement_version"],
        settled_at=row["settled_at"].astimezone(UTC) if row["settled_at"] is not None else None,
    )


def _price(text: str | None) -> str | None:
    return format_price(Decimal(text)) if text is not None else None
