"""Offset reset plans, pure: which offset each partition moves to, and why.

The modes are those of ``kafka-consumer-groups --reset-offsets``: ``--to-earliest``,
``--to-latest``, ``--to-datetime``, ``--by-duration``, ``--shift-by`` and ``--to-offset``.
Every new offset is clamped to ``[earliest, end]`` where ``end`` is the *last stable
offset* (what a read_committed consumer can reach): a position past it would skip the
tail of a transaction that is still open.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from core.ops.exceptions import InvalidResetError


class ResetMode(StrEnum):
    EARLIEST = "to-earliest"
    LATEST = "to-latest"
    DATETIME = "to-datetime"
    DURATION = "by-duration"
    SHIFT = "shift-by"
    OFFSET = "to-offset"


@dataclass(frozen=True, slots=True)
class ResetSpec:
    """One reset mode and its argument."""

    mode: ResetMode
    at: datetime | None = None  # to-datetime
    duration: timedelta | None = None  # by-duration
    number: int | None = None  # shift-by, to-offset

    def target_time(self, now: datetime) -> datetime | None:
        """The moment whose offsets the reset goes to (time modes), else None."""
        if self.mode is ResetMode.DATETIME:
            return self.at
        if self.mode is ResetMode.DURATION and self.duration is not None:
            return now - self.duration
        return None

    def describe(self) -> str:
        argument = {
            ResetMode.DATETIME: self.at.isoformat() if self.at else "",
            ResetMode.DURATION: str(self.duration) if self.duration is not None else "",
            ResetMode.SHIFT: str(self.number),
            ResetMode.OFFSET: str(self.number),
        }.get(self.mode, "")
        return f"--{self.mode.value}" + (f" {argument}" if argument else "")


def reset_spec(
    *,
    to_earliest: bool = False,
    to_latest: bool = False,
    to_datetime: str | None = None,
    by_duration: str | None = None,
    shift_by: int | None = None,
    to_offset: int | None = None,
) -> ResetSpec:
    """The one mode the options name; InvalidResetError unless exactly one is given."""
    chosen = [
        name
        for name, given in (
            ("--to-earliest", to_earliest),
            ("--to-latest", to_latest),
            ("--to-datetime", to_datetime is not None),
            ("--by-duration", by_duration is not None),
            ("--shift-by", shift_by is not None),
            ("--to-offset", to_offset is not None),
        )
        if given
    ]
    if len(chosen) != 1:
        raise InvalidResetError(
            "give exactly one of --to-earliest, --to-latest, --to-datetime, --by-duration, "
            f"--shift-by, --to-offset (got {', '.join(chosen) or 'none'})"
        )
    if to_earliest:
        return ResetSpec(ResetMode.EARLIEST)
    if to_latest:
        return ResetSpec(ResetMode.LATEST)
    if to_datetime is not None:
        return ResetSpec(ResetMode.DATETIME, at=parse_datetime(to_datetime))
    if by_duration is not None:
        return ResetSpec(ResetMode.DURATION, duration=parse_duration(by_duration))
    if shift_by is not None:
        return ResetSpec(ResetMode.SHIFT, number=shift_by)
    if to_offset is None or to_offset < 0:
        raise InvalidResetError(f"--to-offset must be 0 or more, got {to_offset}")
    return ResetSpec(ResetMode.OFFSET, number=to_offset)


_DURATION = re.compile(
    r"P(?:(?P<days>\d+(?:\.\d+)?)D)?"
    r"(?:T(?:(?P<hours>\d+(?:\.\d+)?)H)?(?:(?P<minutes>\d+(?:\.\d+)?)M)?"
    r"(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?",
    re.IGNORECASE,
)


def parse_duration(text: str) -> timedelta:
    """An ISO 8601 duration ``PnDTnHnMnS`` (as kafka-consumer-groups takes it): ``P1DT2H``."""
    match = _DURATION.fullmatch(text.strip())
    if not match or not any(match.groupdict().values()) or text.strip().upper().endswith("T"):
        raise InvalidResetError(
            f"not an ISO 8601 duration: {text!r} (expected PnDTnHnMnS, e.g. P1D, PT30M, P1DT2H)"
        )
    parts = {name: float(value) for name, value in match.groupdict().items() if value}
    return timedelta(**parts)


def parse_datetime(text: str) -> datetime:
    """An ISO 8601 moment with its time zone (``2026-05-01T12:00:00Z``), as UTC."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError as e:
        raise InvalidResetError(f"not an ISO 8601 datetime: {text!r} ({e})") from None
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise InvalidResetError(
            f"{text!r} has no time zone: add Z or an offset (2026-05-01T12:00:00Z)"
        )
    return moment.astimezone(UTC)


def parse_topic_partitions(text: str) -> tuple[str, tuple[int, ...] | None]:
    """``scores`` (every partition) or ``scores:0,2`` (those partitions)."""
    name, sep, rest = text.partition(":")
    if not name:
        raise InvalidResetError(f"no topic name in {text!r}")
    if not sep:
        return name, None
    try:
        partitions = tuple(sorted({int(p) for p in rest.split(",") if p.strip()}))
    except ValueError:
        raise InvalidResetError(
            f"partitions must be numbers separated by commas: {text!r} (e.g. scores:0,2)"
        ) from None
    if not partitions or min(partitions) < 0:
        raise InvalidResetError(f"no valid partition in {text!r}")
    return name, partitions


@dataclass(frozen=True, slots=True)
class PartitionPosition:
    """What is known of one partition before a reset."""

    topic: str  # physical name
    partition: int
    current: int | None  # the committed / stored offset; None when there is none
    earliest: int
    end: int  # the last stable offset
    at_time: int | None = None  # time modes: first offset at or after the moment (None: none)


@dataclass(frozen=True, slots=True)
class PlannedOffset:
    """One line of a reset plan: partition | current | new."""

    topic: str
    partition: int
    current: int | None
    new: int
    earliest: int
    end: int
    clamped: bool  # the mode asked for an offset outside [earliest, end]

    @property
    def changes(self) -> bool:
        return self.current != self.new


def target_offset(spec: ResetSpec, position: PartitionPosition) -> int:
    """The offset the mode asks for, before clamping."""
    if spec.mode is ResetMode.EARLIEST:
        return position.earliest
    if spec.mode is ResetMode.LATEST:
        return position.end
    if spec.mode in (ResetMode.DATETIME, ResetMode.DURATION):
        # No record at or after the moment: the end, as Kafka's tool does.
        return position.end if position.at_time is None else position.at_time
    number = spec.number or 0
    if spec.mode is ResetMode.SHIFT:
        # No committed offset: consumers start at the earliest (auto_offset_reset).
        base = position.earliest if position.current is None else position.current
        return base + number
    return number


def plan_reset(spec: ResetSpec, positions: Iterable[PartitionPosition]) -> list[PlannedOffset]:
    """The new offset of every partition, clamped to ``[earliest, end]``, in order."""
    plan = []
    for position in sorted(positions, key=lambda p: (p.topic, p.partition)):
        wanted = target_offset(spec, position)
        new = min(max(wanted, position.earliest), position.end)
        plan.append(
            PlannedOffset(
                topic=position.topic,
                partition=position.partition,
                current=position.current,
                new=new,
                earliest=position.earliest,
                end=position.end,
                clamped=new != wanted,
            )
        )
    return plan


def plan_rows(plan: Sequence[PlannedOffset]) -> list[tuple[str, int, str, int, str]]:
    """The table rows of a plan: topic, partition, current, new, note."""
    rows = []
    for line in plan:
        current = "-" if line.current is None else str(line.current)
        note = "clamped" if line.clamped else ""
        if not line.changes:
            note = ", ".join(n for n in (note, "unchanged") if n)
        rows.append((line.topic, line.partition, current, line.new, note))
    return rows
