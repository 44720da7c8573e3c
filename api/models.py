"""Response schemas (read-only API: ``...Public`` families only, no create/update models),
and the opaque cursors a board page and a page of bets hand out.

Points travel as decimal strings with two places (``"12.50"``), never as floats; times
as ISO 8601 in UTC.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from streams.rules.boards import RankedLine, redis_score

CENTS = Decimal("0.01")

Source = Literal["redis", "postgres"]


def format_total(total: Decimal) -> str:
    """Two decimal places, and never ``-0.00``."""
    quantized = total.quantize(CENTS)
    return str(quantized if quantized != 0 else Decimal("0.00"))


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where a page ends: the key of its last line. Opaque to clients (base64url JSON)."""

    total: Decimal
    exact_count: int
    member_id: str

    @classmethod
    def after(cls, line: RankedLine) -> Cursor:
        return cls(line.total, line.exact_count, line.member_id)

    def encode(self) -> str:
        body = {"t": format_total(self.total), "e": self.exact_count, "m": self.member_id}
        raw = json.dumps(body, separators=(",", ":"), sort_keys=True).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")

    @classmethod
    def decode(cls, text: str) -> Cursor:
        """The cursor ``text`` encodes; ValueError when it is not one of ours."""
        try:
            raw = base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
            body = json.loads(raw)
            if not isinstance(body, dict) or set(body) != {"t", "e", "m"}:
                raise ValueError("unexpected fields")
            total, exact_count, member_id = body["t"], body["e"], body["m"]
            if not (
                isinstance(total, str)
                and type(exact_count) is int
                and isinstance(member_id, str)
                and member_id
            ):
                raise ValueError("unexpected field types")
            cursor = cls(Decimal(total), exact_count, member_id)
            redis_score(cursor.total, cursor.exact_count)  # in range, two places at most
        except (ValueError, ArithmeticError) as e:
            raise ValueError("not a cursor of this API") from e
        return cursor


class _Public(BaseModel):
    model_config = ConfigDict(frozen=True)


class BoardLinePublic(_Public):
    """One line of a board: the competition rank (1, 2, 2, 4) and what it is ranked on."""

    rank: int = Field(ge=1)
    member_id: str
    total: str = Field(examples=["12.50"])
    exact_count: int = Field(ge=0)

    @classmethod
    def from_ranked(cls, line: RankedLine) -> BoardLinePublic:
        return cls(
            rank=line.rank,
            member_id=line.member_id,
            total=format_total(line.total),
            exact_count=line.exact_count,
        )


class BoardPagePublic(_Public):
    """A page of a board in board order; ``next_cursor`` is None on the last page."""

    board_id: str
    source: Source
    data: list[BoardLinePublic]
    next_cursor: str | None


class MemberStandingPublic(_Public):
    """A member's standing and the lines around it (the member's own line included)."""

    board_id: str
    member_id: str
    rank: int = Field(ge=1)
    total: str = Field(examples=["12.50"])
    exact_count: int = Field(ge=0)
    neighbours: list[BoardLinePublic]
    source: Source


class TeamPublic(_Public):
    team_id: str
    name: str


class MatchPublic(_Public):
    """The latest known state of a match."""

    match_id: str
    tournament_id: str
    round: str | None
    home_team: TeamPublic
    away_team: TeamPublic
    status: str
    home_score: int
    away_score: int
    minute: int | None
    kickoff_at: datetime
    result_version: int
    updated_at: datetime


class ErrorDetailPublic(_Public):
    code: str
    message: str


class ErrorPublic(_Public):
    """The body of every error the API raises on purpose (422s are FastAPI's own)."""

    error: ErrorDetailPublic


# -- markets, bets and credits ------------------------------------------------------------

PRICE_TICK = Decimal("0.0001")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)

MarketStatus = Literal["open", "closed", "resolved", "void"]
BetStatus = Literal["open", "rejected", "won", "lost", "void", "push"]
BetFilter = Literal["open", "settled", "all"]


def format_price(value: Decimal) -> str:
    """A price or decimal odds with four places (``"0.4500"``, ``"2.1000"``)."""
    return str(value.quantize(PRICE_TICK))


@dataclass(frozen=True, slots=True)
class BetCursor:
    """Where a page of a member's bets ends: its last bet's (placed_at, bet_id). Opaque."""

    placed_at: datetime
    bet_id: str

    def encode(self) -> str:
        body = {"p": (self.placed_at - _EPOCH) // _MICROSECOND, "b": self.bet_id}
        raw = json.dumps(body, separators=(",", ":"), sort_keys=True).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")

    @classmethod
    def decode(cls, text: str) -> BetCursor:
        """The cursor ``text`` encodes; ValueError when it is not one of ours."""
        try:
            raw = base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
            body = json.loads(raw)
            if not isinstance(body, dict) or set(body) != {"p", "b"}:
                raise ValueError("unexpected fields")
            micros, bet_id = body["p"], body["b"]
            if type(micros) is not int or not isinstance(bet_id, str) or not bet_id:
                raise ValueError("unexpected field types")
            return cls(_EPOCH + micros * _MICROSECOND, bet_id)
        except (ValueError, ArithmeticError) as e:  # OverflowError: a time out of range
            raise ValueError("not a cursor of this API") from e


class MarketOutcomePublic(_Public):
    """An outcome with its price (0.0001 to 0.9999) and, on match markets, decimal odds."""

    name: str
    price: str = Field(examples=["0.4500"])
    odds: str | None = Field(default=None, examples=["2.1000"])


class MarketResolutionPublic(_Public):
    """The market's resolution with the highest version: the outcome, or void."""

    outcome: str | None
    void: bool
    version: int = Field(ge=1)
    resolved_at: datetime


class MarketPublic(_Public):
    """A market's latest state: ``version`` counts its updates, a resolution its own."""

    market_id: str
    kind: str
    status: MarketStatus
    question: str | None
    slug: str | None
    match_id: str | None
    outcomes: list[MarketOutcomePublic]
    end_date: datetime | None
    version: int | None
    updated_at: datetime | None
    resolution: MarketResolutionPublic | None


class BetLegPublic(_Public):
    market_id: str
    selection: str
    odds: str | None = Field(default=None, examples=["2.1000"])
    price: str | None = Field(default=None, examples=["0.4500"])


class BetPublic(_Public):
    """A bet and what became of it; ``payout`` and the settlement are its latest version."""

    bet_id: str
    kind: str
    stake: str = Field(examples=["25.00"])
    legs: list[BetLegPublic]
    placed_at: datetime
    status: BetStatus
    reject_reason: str | None
    payout: str | None = Field(examples=["52.50"])
    settlement_version: int | None
    settled_at: datetime | None


class BetPagePublic(_Public):
    """A page of a member's bets, newest first; ``next_cursor`` is None on the last page."""

    member_id: str
    status: BetFilter
    data: list[BetPublic]
    next_cursor: str | None


class BalancePublic(_Public):
    """A member's credits: the sum of their ledger, and how many entries it has."""

    member_id: str
    balance: str = Field(examples=["10000.00"])
    ledger_entries: int = Field(ge=0)
    updated_at: datetime
