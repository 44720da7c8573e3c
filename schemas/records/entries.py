"""What members enter and how it is judged: entries, rule sets, rejections."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import ClassVar

from schemas.records.base import AvroRecord


class BetKind(StrEnum):
    SINGLE = "single"
    PARLAY = "parlay"
    CREDIT = "credit"


class Game(StrEnum):
    PREDICTIONS = "predictions"
    MARKETS = "markets"
    BETTING = "betting"
    FANTASY_F1 = "fantasy_f1"
    FANTASY = "fantasy"


class RejectionReason(StrEnum):
    AFTER_KICKOFF = "after_kickoff"
    UNKNOWN_FIXTURE = "unknown_fixture"
    MARKET_CLOSED = "market_closed"
    INVALID_STAKE = "invalid_stake"
    INVALID_PRICE = "invalid_price"
    INVALID_LINEUP = "invalid_lineup"
    DUPLICATE = "duplicate"
    MALFORMED = "malformed"
    OTHER = "other"
    # Bets (streams.rules.markets); appended after OTHER so older symbols keep their index.
    MARKET_EXPIRED = "market_expired"
    INSUFFICIENT_BALANCE = "insufficient_balance"
    INVALID_ODDS = "invalid_odds"
    INVALID_LEGS = "invalid_legs"
    INVALID_SELECTION = "invalid_selection"
    UNKNOWN_MARKET = "unknown_market"
    PAYOUT_LIMIT = "payout_limit"


@dataclass(frozen=True, slots=True, kw_only=True)
class PredictionPlaced(AvroRecord):
    """A member's guess of a match score (``entries.predictions``, keyed by match_id)."""

    schema_name: ClassVar[str] = "PredictionPlaced"

    entry_id: str
    member_id: str
    match_id: str
    league_ids: tuple[str, ...]
    home_goals: int
    away_goals: int
    placed_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class BetLeg(AvroRecord):
    """One selection of a bet: decimal ``odds`` (betting) or a ``price`` (markets)."""

    market_id: str
    selection: str
    odds: Decimal | None = None
    price: Decimal | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class BetPlaced(AvroRecord):
    """A single, a parlay or a credits position (``entries.bets``, keyed by bet_id)."""

    schema_name: ClassVar[str] = "BetPlaced"

    bet_id: str
    member_id: str
    kind: BetKind
    stake: Decimal
    legs: tuple[BetLeg, ...]
    placed_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class LineupSet(AvroRecord):
    """A fantasy lineup with its captain (``entries.lineups``, keyed by member_id)."""

    schema_name: ClassVar[str] = "LineupSet"

    entry_id: str
    member_id: str
    contest_id: str
    picks: tuple[str, ...]
    captain: str
    set_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class RuleSet(AvroRecord):
    """A version of a game's rules for a league or tournament (``rules``)."""

    schema_name: ClassVar[str] = "RuleSet"

    ruleset_id: str
    game: Game
    version: int
    params: Mapping[str, str]
    effective_from: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class EntryRejected(AvroRecord):
    """An entry the streams refused, and why (``entries.rejected``, keyed by member_id)."""

    schema_name: ClassVar[str] = "EntryRejected"

    entry_topic: str
    entry_id: str
    member_id: str
    reason: RejectionReason
    detail: str = ""
    rejected_at: datetime
