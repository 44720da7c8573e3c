"""A fast decoder for the values this version writes, with the codec as the authority.

Used on the hot paths (the sinks, the boards stage, the worker's state rebuild), where a
value is decoded per award. fastavro reads the value with the logical types left raw
(decimals as bytes, timestamps as longs: the binary layout is the same), and each field is
converted through a cache, because most values repeat across records (points, totals,
tiebreakers, timestamps): about 3 us a record instead of 30 us for the codec.
"""

from __future__ import annotations

import dataclasses
import io
import typing
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import Enum
from typing import Any

from fastavro import parse_schema, schemaless_reader

from schemas.codec import SINGLE_OBJECT_MAGIC, AvroCodec
from schemas.fast_encode import cached as _cached
from schemas.loader import load_schema
from schemas.records import RECORD_TYPES, AvroRecord

Convert = Callable[[Any], Any]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class RecordDecoder:
    """``AvroCodec.decode`` with a fast path for the common case, same result.

    A single-object value written with a schema this version ships takes the fast path;
    anything else, and any failure, goes to the codec, which decodes or raises the
    authoritative SchemaDecodeError. ``tests/unit/test_fast_decode.py`` checks both agree.
    """

    def __init__(self, codec: AvroCodec, schema_names: Iterable[str]) -> None:
        self._codec = codec
        self._fast: dict[bytes, tuple[Any, Callable[[dict[str, Any]], AvroRecord]]] = {}
        for name in set(schema_names):
            schema = load_schema(name)
            try:
                builder = _builder(RECORD_TYPES[name], schema)
            except TypeError:
                continue  # a shape the fast path does not cover (maps): the codec decodes it
            raw = parse_schema(_without_logical_types(schema))
            self._fast[codec.fingerprint(name)] = (raw, builder)

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


def _without_logical_types(schema: Any) -> Any:
    if isinstance(schema, list):
        return [_without_logical_types(item) for item in schema]
    if isinstance(schema, dict):
        return {k: _without_logical_types(v) for k, v in schema.items() if k != "logicalType"}
    return schema


def _decimal(scale: int) -> Convert:
    def convert(data: bytes) -> Decimal:
        return Decimal(int.from_bytes(data, "big", signed=True)).scaleb(-scale)

    return _cached(convert)


def _timestamp_millis(millis: int) -> datetime:
    return _EPOCH + timedelta(milliseconds=millis)


def _optional(convert: Convert) -> Convert:
    return lambda value: None if value is None else convert(value)


def _items_key(items: list[dict[str, Any]]) -> tuple[tuple[Any, ...], ...]:
    return tuple(tuple(item.values()) for item in items)


def _conversion(hint: Any, avro_type: Any) -> Convert | None:
    """How fastavro's raw value becomes the record's (None: as it is); TypeError: no fast way."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if type(None) in typing.get_args(hint):  # an optional field: a [null, X] union
        branches = [t for t in avro_type if t != "null"] if isinstance(avro_type, list) else []
        if len(args) != 1 or len(branches) != 1:
            raise TypeError(f"unsupported optional {hint}")
        inner = _conversion(args[0], branches[0])
        return None if inner is None else _optional(inner)
    logical = avro_type.get("logicalType") if isinstance(avro_type, dict) else None
    if hint is Decimal and logical == "decimal":
        return _decimal(avro_type.get("scale", 0))
    if hint is datetime and logical == "timestamp-millis":
        return _cached(_timestamp_millis)
    if hint in (str, int, bool) and logical is None:
        return None
    origin = typing.get_origin(hint)
    if origin is tuple and args[0] in (str, int):
        return tuple
    if origin is tuple and isinstance(args[0], type) and issubclass(args[0], AvroRecord):
        if not isinstance(avro_type, dict) or not isinstance(avro_type.get("items"), dict):
            raise TypeError(f"unsupported array of {args[0].__name__}")
        item = _builder(args[0], avro_type["items"])
        return _cached(lambda items: tuple(item(i) for i in items), key=_items_key)
    if isinstance(hint, type) and issubclass(hint, Enum):
        return _cached(hint)
    raise TypeError(f"unsupported field type {hint}")


def _builder(
    cls: type[AvroRecord], schema: dict[str, Any]
) -> Callable[[dict[str, Any]], AvroRecord]:
    """A fast ``cls.from_avro`` over raw datums (``schema``: the record's Avro JSON)."""
    hints = typing.get_type_hints(cls)
    types = {f["name"]: f["type"] for f in schema["fields"]}
    new, setattr_ = object.__new__, object.__setattr__
    conversions = [
        (f.name, _conversion(hints[f.name], types[f.name])) for f in dataclasses.fields(cls)
    ]

    def build(datum: dict[str, Any]) -> AvroRecord:
        # Skips __init__: the conversions give what __post_init__ would make of the values
        # (timestamp-millis as UTC datetimes, millisecond precision).
        record = new(cls)
        for name, convert in conversions:
            value = datum[name]
            setattr_(record, name, value if convert is None else convert(value))
        return record

    return build
