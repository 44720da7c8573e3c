"""A fast encoder for the records the hot paths write, byte for byte what the codec writes.

The worker writes one ScoreAwarded per scored entry and the boards stage one
LeaderboardEntryChanged per changed line: hundreds of thousands when a marquee match ends.
``AvroCodec.encode`` costs about 13 us a record (a dict per record, then fastavro); most
fields of these records take a handful of values (points, reasons, versions, board lists,
one timestamp per batch), so :class:`RecordEncoder` compiles the schema into one encoder
per field and caches the bytes of every value that is not a free-form string. A record
then costs a few microseconds. ``tests/unit/test_fast_encode.py`` checks the bytes against
the codec for every record type it is used with.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import Enum
from typing import Any

from fastavro import schemaless_writer

from schemas.codec import AvroCodec
from schemas.loader import parsed_schema
from schemas.records import RECORD_TYPES, AvroRecord

FieldEncoder = Callable[[Any], bytes]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND = timedelta(milliseconds=1)
#: Distinct values a field cache holds before it starts again (bounded memory).
CACHE_LIMIT = 50_000


def long_bytes(n: int) -> bytes:
    """Avro's zig-zag varint of ``n``."""
    z = (n << 1) ^ (n >> 63)
    out = bytearray()
    while z > 0x7F:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)
    return bytes(out)


_SHORT_LENGTHS = [long_bytes(n) for n in range(64)]


def string_bytes(value: str) -> bytes:
    data = value.encode()
    size = len(data)
    return (_SHORT_LENGTHS[size] if size < 64 else long_bytes(size)) + data


def _decimal_bytes(scale: int) -> FieldEncoder:
    """As fastavro writes a decimal: minimal big-endian two's complement of the unscaled value."""

    def encode(value: Decimal) -> bytes:
        sign, digits, exponent = value.as_tuple()
        delta = int(exponent) + scale
        if delta < 0:
            raise ValueError(f"{value} has more than {scale} decimals")
        unscaled: int = int("".join(map(str, digits)) or "0") * 10**delta
        data = (-unscaled if sign else unscaled).to_bytes(
            (unscaled.bit_length() + 8) // 8, "big", signed=True
        )
        return long_bytes(len(data)) + data

    return encode


def _timestamp_millis(value: datetime) -> bytes:
    return long_bytes((value - _EPOCH) // _MILLISECOND)


def cached(
    convert: Callable[[Any], Any], key: Callable[[Any], Any] | None = None
) -> Callable[[Any], Any]:
    """``convert`` memoized per value (or per ``key(value)``), in a bounded dict."""
    cache: dict[Any, Any] = {}

    def memoized(value: Any) -> Any:
        k = value if key is None else key(value)
        found = cache.get(k)
        if found is None:
            if len(cache) >= CACHE_LIMIT:
                cache.clear()
            found = convert(value)
            cache[k] = found
        return found

    return memoized


def _field_encoder(schema: Any) -> tuple[FieldEncoder, bool]:
    """(encoder, cacheable) for a parsed Avro type; cacheable: its values are hashable."""
    if isinstance(schema, list):  # a union: only [null, X] and [X, null] are written here
        if len(schema) != 2 or "null" not in schema:
            raise TypeError(f"unsupported union {schema}")
        null_index = schema.index("null")
        branch, cacheable = _field_encoder(schema[1 - null_index])
        null_tag, value_tag = long_bytes(null_index), long_bytes(1 - null_index)

        def union(value: Any) -> bytes:
            return null_tag if value is None else value_tag + branch(value)

        return union, cacheable
    if isinstance(schema, str):
        simple: dict[str, tuple[FieldEncoder, bool]] = {
            "string": (string_bytes, False),
            "int": (long_bytes, True),
            "long": (long_bytes, True),
            "boolean": (lambda v: b"\x01" if v else b"\x00", True),
        }
        if schema not in simple:
            raise TypeError(f"unsupported type {schema}")
        return simple[schema]
    kind, logical = schema["type"], schema.get("logicalType")
    if kind == "bytes" and logical == "decimal":
        return _decimal_bytes(schema.get("scale", 0)), True
    if kind == "long" and logical == "timestamp-millis":
        return _timestamp_millis, True
    if kind == "enum":
        index = {symbol: long_bytes(i) for i, symbol in enumerate(schema["symbols"])}
        return (lambda v: index[v.value if isinstance(v, Enum) else v]), True
    if kind == "array":
        item, _ = _field_encoder(schema["items"])

        def array(values: Sequence[Any]) -> bytes:
            if not values:
                return b"\x00"
            return long_bytes(len(values)) + b"".join(item(v) for v in values) + b"\x00"

        return array, True
    if kind == "record":
        fields = [(f["name"], _field_encoder(f["type"])[0]) for f in schema["fields"]]

        def record(value: AvroRecord) -> bytes:
            return b"".join(encode(getattr(value, name)) for name, encode in fields)

        return record, True
    if kind in ("string", "int", "long", "boolean"):
        return _field_encoder(kind)
    raise TypeError(f"unsupported type {schema}")


class RecordEncoder:
    """``codec.encode(record, topic)`` for one record type, compiled and cached per field.

    The header (single-object fingerprint or Confluent schema id) is the codec's own,
    taken from one value it encodes, so both wire formats work.
    """

    def __init__(self, codec: AvroCodec, schema_name: str, topic: str, sample: AvroRecord) -> None:
        if sample.schema_name != schema_name:
            raise TypeError(f"the sample is a {sample.schema_name}, not a {schema_name}")
        schema = parsed_schema(schema_name)
        self.record_type = RECORD_TYPES[schema_name]
        self.names = tuple(f["name"] for f in schema["fields"])
        encoders = []
        for f in schema["fields"]:
            encode, cacheable = _field_encoder(f["type"])
            encoders.append(cached(encode) if cacheable else encode)
        self._encoders = tuple(encoders)
        encoded = codec.encode(sample, topic)
        body = io.BytesIO()
        schemaless_writer(body, schema, sample.to_avro())
        self.header = encoded[: len(encoded) - len(body.getvalue())]

    def encode(self, record: AvroRecord) -> bytes:
        """The value bytes of ``record`` (which must be of this encoder's type)."""
        return self.encode_fields([getattr(record, name) for name in self.names])

    def encode_fields(self, values: Sequence[Any]) -> bytes:
        """The value bytes of a record given its field values in schema order.

        For the hot paths that never build the record object; the values must be what the
        record would hold (UTC datetimes at millisecond precision, Decimals in scale).
        """
        parts = [self.header]
        parts.extend(encode(value) for encode, value in zip(self._encoders, values, strict=True))
        return b"".join(parts)
