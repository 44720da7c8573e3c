"""Typed, frozen records mirroring the ``.avsc`` files, one class per schema."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from schemas.records.base import CENTS, PRICE_TICK, AvroRecord, wire_now
from schemas.records.entries import (
    BetKind,
    BetLeg,
    BetPlaced,
    EntryRejected,
    Game,
    LineupSet,
    PredictionPlaced,
    RejectionReason,
    RuleSet,
)
from schemas.records.fixtures import (
    ClassificationEntry,
    ClassificationStatus,
    MarketOutcome,
    MarketResolved,
    MarketUpdated,
    MatchStatus,
    MatchUpdated,
    PlayerStat,
    PlayerStatType,
    RaceClassified,
)
from schemas.records.outputs import (
    BetSettled,
    DeadLetter,
    LeaderboardEntryChanged,
    LedgerEntryPosted,
    ResultCorrected,
    ScoreAwarded,
    SettlementStatus,
    Tiebreaker,
)

#: Record class per schema name (the ``.avsc`` file name without extension).
RECORD_TYPES: Mapping[str, type[AvroRecord]] = MappingProxyType(
    {
        cls.schema_name: cls
        for cls in (
            MatchUpdated,
            RaceClassified,
            MarketUpdated,
            MarketResolved,
            PlayerStat,
            PredictionPlaced,
            BetPlaced,
            LineupSet,
            RuleSet,
            EntryRejected,
            ScoreAwarded,
            BetSettled,
            LeaderboardEntryChanged,
            LedgerEntryPosted,
            ResultCorrected,
            DeadLetter,
        )
    }
)

__all__ = [
    "wire_now",
    "CENTS",
    "PRICE_TICK",
    "RECORD_TYPES",
    "AvroRecord",
    "BetKind",
    "BetLeg",
    "BetPlaced",
    "BetSettled",
    "ClassificationEntry",
    "ClassificationStatus",
    "DeadLetter",
    "EntryRejected",
    "Game",
    "LeaderboardEntryChanged",
    "LedgerEntryPosted",
    "LineupSet",
    "MarketOutcome",
    "MarketResolved",
    "MarketUpdated",
    "MatchStatus",
    "MatchUpdated",
    "PlayerStat",
    "PlayerStatType",
    "PredictionPlaced",
    "RaceClassified",
    "RejectionReason",
    "ResultCorrected",
    "RuleSet",
    "ScoreAwarded",
    "SettlementStatus",
    "Tiebreaker",
]
