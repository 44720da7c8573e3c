"""Errors of the sinks, under the one root in :mod:`core.exceptions`.

ScorelineError
 ├── TransientError               retry the batch with backoff (nothing was committed)
 │   └── SinkUnavailableError     Postgres or Redis is down, timed out or refused the write
 └── PoisonRecordError            dead-letter it to ``dlq.sinks``, advance, keep going
     ├── SchemaDecodeError        bytes that are not a value of a known schema
     ├── UnexpectedRecordError    a record of a type the topic does not carry
     ├── RecordRejectedError      the sink pinpointed the one record it cannot store
     └── ConstraintViolationError the store refused the batch for its data (the runner
                                  bisects the batch to find the record)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.exceptions import PoisonRecordError, SchemaDecodeError, SinkUnavailableError

if TYPE_CHECKING:
    from sinks.base import ConsumedRecord

__all__ = [
    "ConstraintViolationError",
    "PoisonRecordError",
    "RecordRejectedError",
    "SchemaDecodeError",
    "SinkUnavailableError",
    "UnexpectedRecordError",
]


class UnexpectedRecordError(PoisonRecordError):
    """A well-formed record of a type its topic does not carry (catalog ``value_schemas``)."""


class RecordRejectedError(PoisonRecordError):
    """One record the sink can never store (a total out of range, a malformed tiebreaker)."""

    def __init__(self, record: ConsumedRecord, message: str) -> None:
        self.record = record
        super().__init__(message)


class ConstraintViolationError(PoisonRecordError):
    """The store refused a batch because of its data (a constraint, a value out of range).

    The batch was rolled back; the runner splits it until it finds the record at fault.
    """
