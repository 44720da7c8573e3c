"""``GET /markets/{market_id}``: a market's status, prices and resolution, from Postgres."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, Path

from api.boards import postgres_connection
from api.deps import MAX_ID_LENGTH, PoolDep
from api.errors import NotFoundError
from api.models import (
    ErrorPublic,
    MarketOutcomePublic,
    MarketPublic,
    MarketResolutionPublic,
    MarketStatus,
    format_price,
)

router = APIRouter(prefix="/markets", tags=["markets"])

MarketId = Annotated[str, Path(min_length=1, max_length=MAX_ID_LENGTH, examples=["pm-0001"])]

_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorPublic, "description": "No such market"},
    503: {"model": ErrorPublic, "description": "Postgres does not answer"},
}

#: ``expired``: past its end date by the database's clock, even if the feed has not closed it.
_PG_MARKET = """
    select market_id, kind, question, slug, match_id, outcomes, active, closed, end_date,
           version, updated_at, resolution_outcome, void, resolution_version, resolved_at,
           coalesce(end_date <= now(), false) as expired
    from markets where market_id = $1
"""


class MarketNotFoundError(NotFoundError):
    code = "market_not_found"

    def __init__(self, market_id: str) -> None:
        super().__init__(f"market {market_id!r} does not exist")


@router.get("/{market_id}", responses=_ERRORS)
async def read_market(market_id: MarketId, pool: PoolDep) -> MarketPublic:
    """Status (open, closed, resolved, void), outcomes with prices and odds, resolution."""
    async with postgres_connection(pool) as conn:
        row = await conn.fetchrow(_PG_MARKET, market_id)
    if row is None:
        raise MarketNotFoundError(market_id)
    resolution = None
    if row["resolution_version"] is not None:
        resolution = MarketResolutionPublic(
            outcome=row["resolution_outcome"],
            void=row["void"],
            version=row["resolution_version"],
            resolved_at=row["resolved_at"].astimezone(UTC),
        )
    outcomes = json.loads(row["outcomes"]) if row["outcomes"] is not None else []
    return MarketPublic(
        market_id=row["market_id"],
        kind=row["kind"],
        status=market_status(row),
        question=row["question"],
        slug=row["slug"],
        match_id=row["match_id"],
        outcomes=[
            MarketOutcomePublic(
                name=o["name"],
                price=format_price(Decimal(o["price"])),
                odds=format_price(Decimal(o["odds"])) if o.get("odds") is not None else None,
            )
            for o in outcomes
        ],
        end_date=_utc(row["end_date"]),
        version=row["version"],
        updated_at=_utc(row["updated_at"]),
        resolution=resolution,
    )


def market_status(row: asyncpg.Record) -> MarketStatus:
    """void or resolved by its latest resolution; else closed (closed, inactive or past its
    end date); else open. A resolution without an outcome refunds, as void does."""
    if row["resolution_version"] is not None:
        return "void" if row["void"] or row["resolution_outcome"] is None else "resolved"
    if row["closed"] or not row["active"] or row["expired"]:
        return "closed"
    return "open"


def _utc(value: datetime | None) -> datetime | None:
    return value.astimezone(UTC) if value is not None else None
