"""What the streams publish for downstream consumers, and the dead-letter headers."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import ClassVar

from core.exceptions import SchemaDecodeError
from schemas.records.base import AvroRecord

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class SettlementStatus(StrEnum):
    WON = "won"
    LOST = "lost"
    VOID = "void"
    PUSH = "push"


@dataclass(frozen=True, slots=True, kw_only=True)
class ScoreAwarded(AvroRecord):
    """Points for a member, applied at most once per idempotency key (``scores``)."""

    schema_name: ClassVar[str] = "ScoreAwarded"

    member_id: str
    board_ids: tuple[str, ...]
    points_delta: Decimal
    exact_delta: int = 0
    total: Decimal | None = None
    reason: str
    source: str
    rule_version: int
    result_version: int
    idempotency_key: str
    awarded_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class BetSettled(AvroRecord):
    """A bet's settlement; a resettlement is a higher version (``settlements``).

    ``previous_payout`` is the payout of the version this one replaces (None on a first
    settlement), so a consumer applies ``payout - previous_payout`` without state;
    ``board_ids`` are the PnL boards that change counts on (``streams.rules.markets``).
    """

    schema_name: ClassVar[str] = "BetSettled"

    bet_id: str
    member_id: str
    status: SettlementStatus
    stake: Decimal
    payout: Decimal
    version: int
    idempotency_key: str
    settled_at: datetime
    previous_payout: Decimal | None = None
    board_ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Tiebreaker(AvroRecord):
    """A declared tiebreaker and the member's value for it."""

    name: str
    value: Decimal


@dataclass(frozen=True, slots=True, kw_only=True)
class LeaderboardEntryChanged(AvroRecord):
    """A member's new standing on a board (``leaderboard.updates``, keyed by board_id)."""

    schema_name: ClassVar[str] = "LeaderboardEntryChanged"

    board_id: str
    member_id: str
    total: Decimal
    tiebreakers: tuple[Tiebreaker, ...] = ()
    rank: int | None = None
    version: int
    updated_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class ResultCorrected(AvroRecord):
    """A corrected result changed a member's score or settlement (``notifications``)."""

    schema_name: ClassVar[str] = "ResultCorrected"

    member_id: str
    subject: str
    old_result: str
    new_result: str
    delta: Decimal
    version: int
    corrected_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class DeadLetter(AvroRecord):
    """The headers of a dead letter (the value is the original bytes, never this record)."""

    schema_name: ClassVar[str] = "DeadLetter"

    error_class: str
    error_message: str
    source_topic: str
    source_partition: int
    source_offset: int
    attempts: int
    failed_at: datetime

    def to_headers(self) -> list[tuple[str, bytes]]:
        """Kafka headers, one per field, UTF-8 text (``failed_at`` as epoch millis)."""
        headers: list[tuple[str, bytes]] = []
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, datetime):
                value = (value - _EPOCH) // timedelta(milliseconds=1)
            headers.append((f.name, str(value).encode()))
        return headers

    @classmethod
    def from_headers(cls, headers: Iterable[tuple[str, bytes]]) -> DeadLetter:
        """Read the headers back; SchemaDecodeError when one is missing or malformed."""
        found = {name: value for name, value in headers if name in _DEAD_LETTER_HEADERS}
        missing = sorted(set(_DEAD_LETTER_HEADERS) - set(found))
        if missing:
            raise SchemaDecodeError(f"dead-letter headers missing: {', '.join(missing)}")
        try:
            text = {name: value.decode() for name, value in found.items()}
            return cls(
                error_class=text["error_class"],
                error_message=text["error_message"],
                source_topic=text["source_topic"],
                source_partition=int(text["source_partition"]),
                source_offset=int(text["source_offset"]),
                attempts=int(text["attempts"]),
                failed_at=_EPOCH + timedelta(milliseconds=int(text["failed_at"])),
            )
        except (UnicodeDecodeError, ValueError, OverflowError) as e:
            raise SchemaDecodeError(f"dead-letter headers malformed: {e}") from e


_DEAD_LETTER_HEADERS = tuple(f.name for f in fields(DeadLetter))


@dataclass(frozen=True, slots=True, kw_only=True)
class LedgerEntryPosted(AvroRecord):
    """One change of a member's credit balance (``LedgerEntryPosted.avsc``)."""

    schema_name: ClassVar[str] = "LedgerEntryPosted"

    idempotency_key: str
    member_id: str
    kind: str
    amount: Decimal
    bet_id: str | None = None
    version: int | None = None
    posted_at: datetime
