"""A fast decoder for the values this version writes, with the codec as the authority.

Used on the hot paths (the sinks, the boards stage, the worker's state rebuild), where a
value is decoded per award: about 9 µs instead of 30 µs per record.
"""

from __future__ import annotations

import dataclasses
import io
import typing
from collections.abc import Callable, Iterable
from datetime import datetime
from decimal import Decimal
from enum import Enum
from functools import partial
from typing import Any

from fastavro import schemaless_reader

from schemas.codec import SINGLE_OBJECT_MAGIC, AvroCodec
from schemas.loader import parsed_schema
from schemas.records import RECORD_TYPES, AvroRecord


class RecordDecoder:
    """``AvroCodec.decode`` with a fast path for the common case, same result.

    A single-object value written with the schema this version ships is read with fastavro
    and built with precomputed field conversions (about 4x faster than the generic
    ``from_avro``); anything else, and any failure, goes to the codec, which decodes or
    raises the authoritative SchemaDecodeError.
    """

    def __init__(self, codec: AvroCodec, schema_names: Iterable[str]) -> None:
        self._codec = codec
        self._fast: dict[bytes, tuple[Any, Callable[[dict[str, Any]], AvroRecord]]] = {}
        for name in set(schema_names):
            builder = _builder(RECORD_TYPES[name])
            self._fast[codec.fingerprint(name)] = (parsed_schema(name), builder)

    def __call__(self, data: bytes) -> AvroRecord:
        fast = self._fast.get(data[2:10]) if data[:2] == SINGLE_OBJECT_MAGIC else None
        if fast is not None:
            buffer = io.BytesIO(data)
            buffer.seek(10)
            try:
                datum = schemaless_reader(buffer, fast[0], None)
                if buffer.tell() == len(data) and isinstance(datum, dict):
                    return fast[1](datum)
            except Exception:  # noqa: S110 (the codec below raises the right error)
                pass
        return self._codec.decode(data)


def _builder(cls: type[AvroRecord]) -> Callable[[dict[str, Any]], AvroRecord]:
    """A fast ``cls.from_avro`` for records whose fields are plain, tuples or enums."""
    hints = typing.get_type_hints(cls)
    new, setattr_ = object.__new__, object.__setattr__
    conversions: list[tuple[str, Callable[[Any], Any] | None]] = []
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        origin = typing.get_origin(hint)
        if origin is tuple and args[0] in (str, int):
            conversions.append((f.name, tuple))
        elif origin is tuple and isinstance(args[0], type) and issubclass(args[0], AvroRecord):
            conversions.append((f.name, partial(_tuple_of, _builder(args[0]))))
        elif isinstance(hint, type) and issubclass(hint, Enum):
            conversions.append((f.name, hint))
        elif hint in (str, int, bool, Decimal, datetime) or (
            len(args) == 1 and args[0] in (str, int, Decimal, datetime)
        ):
            conversions.append((f.name, None))
        else:
            return cls.from_avro  # nested records, maps: the generic path

    def build(datum: dict[str, Any]) -> AvroRecord:
        # Skips __init__: fastavro already gives what __post_init__ would make of its
        # values (timestamp-millis as UTC datetimes, millisecond precision).
        record = new(cls)
        for name, convert in conversions:
            value = datum[name]
            setattr_(record, name, value if convert is None else convert(value))
        return record

    return build


def _tuple_of(build: Callable[[dict[str, Any]], AvroRecord], items: list[Any]) -> tuple[Any, ...]:
    return tuple(build(item) for item in items)
