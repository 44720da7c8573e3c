"""What every record shares: Avro dict conversion, UTC millisecond datetimes, the quanta."""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from enum import Enum
from typing import Any, ClassVar, Self, Union, get_args, get_origin, get_type_hints

#: Money and points on the wire have two decimals (Avro ``decimal`` scale 2).
CENTS = Decimal("0.01")
#: Prediction-market prices have four decimals (Avro ``decimal`` scale 4).
PRICE_TICK = Decimal("0.0001")


def on_the_wire(value: datetime) -> bool:
    """Whether a datetime is already what a record holds: UTC, whole milliseconds."""
    return value.tzinfo is UTC and not value.microsecond % 1000


def wire_now() -> datetime:
    """The current UTC time as a record holds it: whole milliseconds (what the wire keeps)."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


@dataclasses.dataclass(frozen=True, slots=True)
class AvroRecord:
    """A frozen dataclass that mirrors an Avro record, field for field.

    Subclasses are ``@dataclass(frozen=True, slots=True, kw_only=True)`` with their fields
    in the schema's order. Top-level records set ``schema_name`` to the ``.avsc`` file they
    mirror; nested ones (a bet's legs, a classification's entries) leave it empty.
    Datetimes must be timezone-aware; they are normalized to UTC and truncated to the
    millisecond the wire holds, so a record decoded from its own encoding equals it.
    """

    schema_name: ClassVar[str] = ""

    def __post_init__(self) -> None:
        for name in _datetime_fields(type(self)):
            value = getattr(self, name)
            if value is None or on_the_wire(value):
                continue  # already what the wire holds (the common case on hot paths)
            if value.tzinfo is None or value.utcoffset() is None:
                raise ValueError(f"{type(self).__name__}.{name} must be timezone-aware: {value!r}")
            utc = value.astimezone(UTC)
            object.__setattr__(self, name, utc.replace(microsecond=utc.microsecond // 1000 * 1000))

    def to_avro(self) -> dict[str, Any]:
        """The record as the dict fastavro writes (enums as symbols, tuples as lists)."""
        return {f.name: _to_avro(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_avro(cls, datum: Mapping[str, Any]) -> Self:
        """The record from the dict fastavro reads; fields missing from ``datum`` raise KeyError."""
        hints = _hints(cls)
        values = {f.name: _from_avro(hints[f.name], datum[f.name]) for f in dataclasses.fields(cls)}
        return cls(**values)


def _to_avro(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, AvroRecord):
        return value.to_avro()
    if isinstance(value, tuple | list):
        return [_to_avro(item) for item in value]
    if isinstance(value, Mapping):
        return {str(key): _to_avro(item) for key, item in value.items()}
    return value


def _from_avro(annotation: Any, value: Any) -> Any:
    origin = get_origin(annotation)
    args = get_args(annotation)
    if origin in (Union, types.UnionType):
        if value is None:
            return None
        (branch,) = (arg for arg in args if arg is not type(None))
        return _from_avro(branch, value)
    if origin is tuple:
        return tuple(_from_avro(args[0], item) for item in value)
    if origin is not None and issubclass(origin, Mapping):
        return {str(key): _from_avro(args[1], item) for key, item in value.items()}
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return annotation(value)
    if isinstance(annotation, type) and issubclass(annotation, AvroRecord):
        return annotation.from_avro(value)
    return value


_HINTS: dict[type[AvroRecord], dict[str, Any]] = {}
_DATETIME_FIELDS: dict[type[AvroRecord], tuple[str, ...]] = {}


def _hints(cls: type[AvroRecord]) -> dict[str, Any]:
    hints = _HINTS.get(cls)
    if hints is None:
        hints = _HINTS[cls] = get_type_hints(cls)
    return hints


def _datetime_fields(cls: type[AvroRecord]) -> tuple[str, ...]:
    names = _DATETIME_FIELDS.get(cls)
    if names is None:
        hints = _hints(cls)
        names = _DATETIME_FIELDS[cls] = tuple(
            f.name
            for f in dataclasses.fields(cls)
            if hints[f.name] is datetime or datetime in get_args(hints[f.name])
        )
    return names
