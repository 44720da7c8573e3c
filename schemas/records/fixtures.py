"""Normalized provider events: matches, races, markets, player statistics (``fixtures.*``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import ClassVar

from schemas.records.base import AvroRecord


class MatchStatus(StrEnum):
    NOTSTARTED = "notstarted"
    INPROGRESS = "inprogress"
    HALFTIME = "halftime"
    FINISHED = "finished"
    POSTPONED = "postponed"
    CANCELLED = "cancelled"


class ClassificationStatus(StrEnum):
    FINISHED = "finished"
    DNF = "dnf"
    DNS = "dns"
    DSQ = "dsq"
    NC = "nc"


class MarketKind(StrEnum):
    """What a market is about: a binary "this/that" question, or a football match's 1X2."""

    BINARY = "binary"
    MATCH_1X2 = "match_1x2"


class PlayerStatType(StrEnum):
    GOAL = "goal"
    ASSIST = "assist"
    OWN_GOAL = "own_goal"
    YELLOW_CARD = "yellow_card"
    RED_CARD = "red_card"
    PENALTY_SCORED = "penalty_scored"
    PENALTY_MISSED = "penalty_missed"
    PENALTY_SAVED = "penalty_saved"
    SAVE = "save"
    CLEAN_SHEET = "clean_sheet"
    GOAL_CONCEDED = "goal_conceded"
    MINUTES_PLAYED = "minutes_played"
    OTHER = "other"


@dataclass(frozen=True, slots=True, kw_only=True)
class MatchUpdated(AvroRecord):
    """The state of a football match after a provider update (``fixtures.matches``)."""

    schema_name: ClassVar[str] = "MatchUpdated"

    match_id: str
    tournament_id: str
    round: str | None = None
    home_team_id: str
    home_team_name: str
    away_team_id: str
    away_team_name: str
    status: MatchStatus
    home_score: int
    away_score: int
    minute: int | None = None
    period: str | None = None
    kickoff_at: datetime
    provider: str
    provider_version: int
    result_version: int
    updated_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class ClassificationEntry(AvroRecord):
    """One driver's place in a race classification."""

    driver_id: str
    position: int | None = None
    status: ClassificationStatus


@dataclass(frozen=True, slots=True, kw_only=True)
class RaceClassified(AvroRecord):
    """A race classification; a correction has a higher version (``fixtures.races``)."""

    schema_name: ClassVar[str] = "RaceClassified"

    race_id: str
    season: int
    round: int | None = None
    classification: tuple[ClassificationEntry, ...]
    version: int
    updated_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class MarketOutcome(AvroRecord):
    """An outcome of a market: its price (0.0001 to 0.9999) and, on match markets, its odds."""

    name: str
    price: Decimal
    odds: Decimal | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class MarketUpdated(AvroRecord):
    """A prediction market's question, outcomes and prices (``fixtures.markets``)."""

    schema_name: ClassVar[str] = "MarketUpdated"

    market_id: str
    question: str
    outcomes: tuple[MarketOutcome, ...]
    active: bool
    closed: bool
    end_date: datetime | None = None
    version: int
    updated_at: datetime
    kind: MarketKind = MarketKind.BINARY
    slug: str | None = None
    match_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class MarketResolved(AvroRecord):
    """A market's resolution: the winning outcome, or void (``fixtures.markets``)."""

    schema_name: ClassVar[str] = "MarketResolved"

    market_id: str
    outcome: str | None = None
    void: bool = False
    version: int
    resolved_at: datetime
    kind: MarketKind = MarketKind.BINARY
    match_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class PlayerStat(AvroRecord):
    """One player statistic event, scored live by fantasy (``fixtures.player-stats``)."""

    schema_name: ClassVar[str] = "PlayerStat"

    event_id: str
    match_id: str
    player_id: str
    team_id: str | None = None
    stat: PlayerStatType
    value: int = 1
    minute: int | None = None
