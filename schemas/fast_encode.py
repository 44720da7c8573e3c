"""A fast encoder for the records the hot paths write, byte for byte what the codec writes.

The worker writes one ScoreAwarded per scored entry and the boards stage one
LeaderboardEntryChanged per changed line: hundreds of thousands when a marquee match ends.
``AvroCodec.encode`` costs about 13 us a record (a dict per record, then fastavro). So
:class:`RecordEncoder` compiles each schema, once, into straight-line Python source (exec'd
at construction; ``RecordEncoder.source()`` shows it) that reads the record's attributes (or
a tuple of field values) and joins the bytes of each field: strings encoded inline, the
other scalars through bounded per-type caches of their bytes (most of them take a handful
of values: points, reasons, versions, board lists, one timestamp per batch), ``[null, X]``
unions and arrays of records written inline.

The codec stays the authority. The compiled code only returns bytes when it is sure they
are the codec's: for anything unusual (a value of another type than the record's field
holds, a decimal with more digits or decimals than its schema allows, a list where the
record holds a tuple, an int beyond 64 bits, ...) it raises inside the fast path, and the
codec encodes the record instead, returning its bytes or raising its PoisonRecordError.
Caches are keyed so that a hit is always right: decimals by their exact text (``1`` and
``1.000`` are equal, but only the first fits a scale 2), the other values by value where
equal values have equal bytes. ``tests/unit/test_fast_encode.py`` checks the bytes against
the codec for every record on a topic.
"""

from __future__ import annotations

import dataclasses
import io
import keyword
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import Enum
from typing import Any

from fastavro import schemaless_writer

from schemas.codec import AvroCodec
from schemas.codegen import Function, Module
from schemas.codegen import describe as describe_type
from schemas.codegen import kind as avro_kind
from schemas.loader import parsed_schema
from schemas.records import RECORD_TYPES, AvroRecord

FieldEncoder = Callable[[Any], bytes]
EncodeRecord = Callable[[AvroRecord], bytes]
EncodeFields = Callable[[Sequence[Any]], bytes]

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


class RecordEncoder:
    """``codec.encode(record, topic)`` for one record type, compiled per schema.

    ``encode(record)``: the value bytes of a record of this type. ``encode_fields(values)``:
    the value bytes of the record whose field values, in schema order, are ``values`` (for
    the hot paths that never build the record object; a wrong number of values raises
    ValueError); the same bytes as ``codec.encode(record_type(**fields), topic)``, so
    datetimes are taken as the record would hold them (UTC, whole milliseconds). Both are
    plain functions (attributes, not methods: one call less on the hot path).

    The header (single-object fingerprint or Confluent schema id) is the codec's own,
    taken from one value it encodes, so both wire formats work. ``fallbacks`` counts the
    values the compiled code left to the codec.
    """

    encode: EncodeRecord
    encode_fields: EncodeFields

    def __init__(self, codec: AvroCodec, schema_name: str, topic: str, sample: AvroRecord) -> None:
        if sample.schema_name != schema_name:
            raise TypeError(f"the sample is a {sample.schema_name}, not a {schema_name}")
        schema = parsed_schema(schema_name)
        self.record_type = RECORD_TYPES[schema_name]
        self.names = tuple(f["name"] for f in schema["fields"])
        encoded = codec.encode(sample, topic)
        body = io.BytesIO()
        schemaless_writer(body, schema, sample.to_avro())
        self.header = encoded[: len(encoded) - len(body.getvalue())]
        self.fallbacks = 0
        self._codec = codec
        self._topic = topic
        self.encode, self.encode_fields, self._source = compile_encoder(
            self.record_type, schema, self.header, self._codec_record, self._codec_fields
        )

    def source(self) -> str:
        """The Python source compiled for this record type."""
        return self._source

    def _codec_record(self, record: AvroRecord) -> bytes:
        """What the compiled ``encode`` does not vouch for: the codec's bytes or error."""
        self.fallbacks += 1
        return self._codec.encode(record, self._topic)

    def _codec_fields(self, values: Sequence[Any]) -> bytes:
        """What the compiled ``encode_fields`` does not vouch for, as a record to the codec."""
        self.fallbacks += 1
        record = self.record_type(**dict(zip(self.names, values, strict=True)))
        return self._codec.encode(record, self._topic)


def compile_encoder(
    cls: type[AvroRecord],
    schema: Mapping[str, Any],
    header: bytes,
    fallback_record: EncodeRecord,
    fallback_fields: EncodeFields,
) -> tuple[EncodeRecord, EncodeFields, str]:
    """(encode, encode_fields, their source) for ``cls`` with the parsed ``schema``.

    The functions write ``header`` then the Avro body; whatever the compiled code does not
    vouch for goes to ``fallback_record`` (the record) or ``fallback_fields`` (the tuple of
    field values). TypeError: a shape the compiler does not know.
    """
    module = Module(
        {
            "HEADER": header,
            "SIZES": tuple(_SHORT_LENGTHS),
            "CACHE_LIMIT": CACHE_LIMIT,
            "long_bytes": long_bytes,
            "Decimal": Decimal,
            "datetime": datetime,
            "_Fallback": _Fallback,
            "fallback_record": fallback_record,
            "fallback_fields": fallback_fields,
        }
    )
    writer = _Writer(module, schema)
    fields = list(schema["fields"])
    names = [f["name"] for f in fields]
    if not all(isinstance(n, str) and n.isidentifier() for n in names):
        raise TypeError(f"{cls.__name__} has a field whose name is not an identifier")
    hints = typing.get_type_hints(cls)
    if set(names) - set(hints):
        raise TypeError(f"{cls.__name__} lacks fields of its schema: {set(names) - set(hints)}")

    # encode(record): the record's attributes, read where each field is written.
    by_record = Function(f"encode_{cls.__name__}(r)", {"n", "k", "r"})
    record_type = module.class_(cls)
    by_record.add(1, f"if type(r) is not {record_type}:", "    return fallback_record(r)")
    by_record.add(1, "try:")
    parts = _Parts()
    for field in fields:
        value = by_record.local("v")
        by_record.add(2, f"# {field['name']}: {describe_type(field['type'])}")
        by_record.add(2, f"{value} = {_attribute('r', field['name'])}")
        writer.value(by_record, 2, value, field["type"], hints[field["name"]], parts)
    by_record.add(2, f"return b''.join(({', '.join(['HEADER', *parts.names])}))")
    by_record.add(1, "except Exception:  # anything unusual: the codec decides")
    by_record.add(2, "return fallback_record(r)")

    # encode_fields(values): the same, from the values unpacked in schema order.
    locals_ = [f"f_{name}" for name in names]
    by_fields = Function(f"encode_fields_{cls.__name__}(values)", {"n", "k", "values", *locals_})
    unpacked = ", ".join(locals_) + ("," if len(locals_) == 1 else "")
    by_fields.add(1, f"{unpacked} = values  # ValueError: not one value per field")
    by_fields.add(1, "try:")
    parts = _Parts()
    for field, value in zip(fields, locals_, strict=True):
        by_fields.add(2, f"# {field['name']}: {describe_type(field['type'])}")
        writer.value(by_fields, 2, value, field["type"], hints[field["name"]], parts)
    by_fields.add(2, f"return b''.join(({', '.join(['HEADER', *parts.names])}))")
    by_fields.add(1, "except Exception:  # anything unusual: the codec decides")
    by_fields.add(2, f"return fallback_fields(({unpacked}))")

    module.functions += [by_record, by_fields]
    source = module.compile("fast_encode", cls.__name__)
    return (
        typing.cast(EncodeRecord, module.namespace[by_record.name]),
        typing.cast(EncodeFields, module.namespace[by_fields.name]),
        source,
    )


# -- what the compiled code calls on a cache miss ---------------------------------------------


class _Fallback(Exception):
    """Raised by compiled code for a value it does not vouch for: the codec decides."""


_INT = (-(2**31), 2**31 - 1)
_LONG = (-(2**63), 2**63 - 1)


def _integer(low: int, high: int) -> FieldEncoder:
    """An int (exactly: no bool, no float) in [low, high], as fastavro writes it.

    Values equal to a cached int (True, 1.0) hit its bytes: fastavro writes them the same
    (through ``__int__``) where the schema is not a union; a union's branch takes ints only.
    """

    def encode(value: int) -> bytes:
        if type(value) is not int or not low <= value <= high:
            raise _Fallback
        return long_bytes(value)

    return encode


def _decimal(precision: int, scale: int) -> FieldEncoder:
    """As fastavro writes a decimal: minimal big-endian two's complement of the unscaled value.

    A Decimal with more digits than the precision or more decimals than the scale (or not
    finite) is the codec's to refuse.
    """

    def encode(value: Decimal) -> bytes:
        sign, digits, exponent = value.as_tuple()
        if not isinstance(exponent, int) or len(digits) > precision or exponent + scale < 0:
            raise _Fallback
        unscaled: int = int("".join(map(str, digits))) * 10 ** (exponent + scale)
        data = (-unscaled if sign else unscaled).to_bytes(
            (unscaled.bit_length() + 8) // 8, "big", signed=True
        )
        return long_bytes(len(data)) + data

    return encode


def _timestamp_millis(value: datetime) -> bytes:
    """An aware datetime's milliseconds since the epoch, rounded down as records truncate."""
    if type(value) is not datetime:
        raise _Fallback
    return long_bytes((value - _EPOCH) // _MILLISECOND)  # naive: TypeError, the codec's


def _enum(symbols: Sequence[str]) -> FieldEncoder:
    index = {symbol: long_bytes(i) for i, symbol in enumerate(symbols)}

    def encode(value: Any) -> bytes:
        return index[value.value if isinstance(value, Enum) else value]

    return encode


def _strings(values: tuple[str, ...]) -> bytes:
    """An array of strings held as a tuple (equal tuples: equal items, in the same order)."""
    if type(values) is not tuple:
        raise _Fallback
    if not values:
        return b"\x00"
    return b"".join([long_bytes(len(values)), *map(string_bytes, values), b"\x00"])


# -- the compiler -----------------------------------------------------------------------------


class _Parts:
    """Where the top-level fields' bytes go: locals, joined at the end in this order."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def put(self, fn: Function, depth: int, local: str) -> None:
        self.names.append(local)


class _Appends:
    """Where an array's or a map's items' bytes go: appended to a list (the local ``name``)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def put(self, fn: Function, depth: int, local: str) -> None:
        fn.add(depth, f"{self.name}.append({local})")


_Sink: typing.TypeAlias = _Parts | _Appends


def _attribute(owner: str, name: str) -> str:
    """The expression reading the field ``name`` of the record in the local ``owner``."""
    if not isinstance(name, str) or not name.isidentifier():
        raise TypeError(f"a field name that is not an identifier: {name!r}")
    return f"getattr({owner}, {name!r})" if keyword.iskeyword(name) else f"{owner}.{name}"


def _optional(hint: Any) -> Any:
    """X for an ``X | None`` hint; the hint itself otherwise."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        branches = [a for a in typing.get_args(hint) if a is not type(None)]
        return branches[0] if len(branches) == 1 else hint
    return hint


def _record_class(hint: Any) -> type[AvroRecord]:
    hint = _optional(hint)
    if not (isinstance(hint, type) and issubclass(hint, AvroRecord)):
        raise TypeError(f"a record field of type {hint}: not an AvroRecord class")
    return hint


#: Union branches written inline, with the test a value must pass to be written so: the
#: codec's writer picks a union's branch by type (an int branch takes no bool, no float).
_BRANCH_GUARDS = {
    "string": None,  # str.encode: anything else has no such method (or is the codec's)
    "int": "type({v}) is not int",
    "long": "type({v}) is not int",
    "boolean": None,  # written for True and False only
    "enum": None,  # a symbol or an enum member whose value is one, as outside a union
    "decimal": None,  # type-checked as any decimal is
    "timestamp-millis": "type({v}) is not datetime",
}


class _Writer:
    """Writes the code that encodes the value in a local into a sink (part locals or a list).

    The code raises (``_Fallback``, or whatever a value of an unexpected type makes it
    raise) where it cannot vouch for the codec's bytes; the caller's except goes to the
    codec. Field caches are shared by the fields of the same type within the schema.
    """

    def __init__(self, module: Module, schema: Mapping[str, Any]) -> None:
        self._module = module
        self._named: Mapping[str, Any] = schema.get("__named_schemas", {})
        #: (cache, cache.get, encoder) global names per kind of cached value.
        self._caches: dict[str, tuple[str, str, str]] = {}
        #: (cache, cache.get) global names per record type of tuples remembered by id.
        self._by_id: dict[str, tuple[str, str]] = {}

    def _resolve(self, avro: Any) -> Any:
        """A named type referred to by name (its second use in a schema): its definition."""
        if isinstance(avro, str) and avro in self._named:
            return self._named[avro]
        return avro

    def value(self, fn: Function, depth: int, v: str, avro: Any, hint: Any, sink: _Sink) -> None:
        avro = self._resolve(avro)
        kind, logical = avro_kind(avro)
        if kind == "union":
            self._union(fn, depth, v, avro, hint, sink)
        elif kind == "bytes" and logical == "decimal":
            self._decimal(fn, depth, v, avro, sink)
        elif kind == "long" and logical == "timestamp-millis":
            self._cached(fn, depth, v, v, "timestamps", "timestamps", _timestamp_millis, sink)
        elif logical is not None:
            raise TypeError(f"unsupported logical type {logical} of {kind}")
        elif kind == "string":
            self._string(fn, depth, f"{v}.encode()", sink)
        elif kind in ("int", "long"):  # the writer does not range-check outside a union
            self._cached(fn, depth, v, v, "long", "longs", _integer(*_LONG), sink)
        elif kind == "boolean":
            b = fn.local("b")
            fn.add(depth, f"if {v} is True:", f"    {b} = b'\\x01'", f"elif {v} is False:")
            fn.add(depth, f"    {b} = b'\\x00'", "else:", "    raise _Fallback")
            sink.put(fn, depth, b)
        elif kind == "enum":
            name, encode = avro["name"], _enum(avro["symbols"])
            stem = f"enum_{name.rpartition('.')[2]}"
            self._cached(fn, depth, v, v, f"enum {name}", stem, encode, sink)
        elif kind == "array":
            self._array(fn, depth, v, avro, hint, sink)
        elif kind == "map":
            self._map(fn, depth, v, avro, hint, sink)
        elif kind == "record":
            self._record(fn, depth, v, avro, hint, sink)
        else:
            raise TypeError(f"unsupported Avro type {describe_type(avro)}")

    def _cache(self, kind: str, stem: str, encode: FieldEncoder) -> tuple[str, str, str]:
        """The cache of a kind of value (its bytes by key), shared within the schema."""
        if kind not in self._caches:
            cache: dict[Any, bytes] = {}
            self._caches[kind] = (
                self._module.constant(f"{stem}_cache", cache),
                self._module.constant(f"{stem}_get", cache.get),
                self._module.constant(stem, encode),
            )
        return self._caches[kind]

    def _cached(
        self,
        fn: Function,
        depth: int,
        v: str,
        key: str,
        kind: str,
        stem: str,
        encode: FieldEncoder,
        sink: _Sink,
    ) -> None:
        """The bytes of ``v`` from the cache of ``kind`` by ``key``, encoded on a miss."""
        cache, get, encoder = self._cache(kind, stem, encode)
        b = fn.local("b")
        fn.add(
            depth,
            f"{b} = {get}({key})",
            f"if {b} is None:",
            f"    {b} = {encoder}({v})",
            f"    if len({cache}) >= CACHE_LIMIT:",
            f"        {cache}.clear()",
            f"    {cache}[{key}] = {b}",
        )
        sink.put(fn, depth, b)

    def _string(self, fn: Function, depth: int, encoded: str, sink: _Sink) -> None:
        s, d = fn.local("s"), fn.local("d")
        fn.add(depth, f"{d} = {encoded}", f"n = len({d})")
        fn.add(depth, f"{s} = SIZES[n] if n < 64 else long_bytes(n)")
        sink.put(fn, depth, s)
        sink.put(fn, depth, d)

    def _decimal(self, fn: Function, depth: int, v: str, avro: Any, sink: _Sink) -> None:
        """Keyed by the decimal's text: equal decimals (1, 1.00) may not both fit the scale."""
        precision, scale = avro.get("precision"), avro.get("scale", 0)
        if not isinstance(precision, int) or not isinstance(scale, int):
            raise TypeError(f"decimal without an integer precision and scale: {avro}")
        fn.add(depth, f"if type({v}) is not Decimal:", "    raise _Fallback", f"k = str({v})")
        stem, encode = f"decimal_{precision}_{scale}", _decimal(precision, scale)
        self._cached(fn, depth, v, "k", stem, stem, encode, sink)

    def _union(
        self, fn: Function, depth: int, v: str, avro: list[Any], hint: Any, sink: _Sink
    ) -> None:
        """``[null, X]`` (either order): X written inline when simple, else by the codec."""
        if len(avro) != 2 or "null" not in avro:
            raise TypeError(f"unsupported union {describe_type(avro)}")
        null = avro.index("null")
        branch = self._resolve(avro[1 - null])
        null_tag, value_tag = long_bytes(null), long_bytes(1 - null)
        kind, logical = avro_kind(branch)
        simple = logical or kind
        if isinstance(sink, _Appends):
            fn.add(depth, f"if {v} is None:", f"    {sink.name}.append({null_tag!r})", "else:")
            fn.add(depth + 1, f"{sink.name}.append({value_tag!r})")
            self._branch(fn, depth + 1, v, branch, simple, hint, sink)
            return
        t = fn.local("t")
        fn.add(depth, f"if {v} is not None:", f"    {t} = {value_tag!r}")
        sink.put(fn, depth, t)
        first = len(sink.names)
        self._branch(fn, depth + 1, v, branch, simple, hint, sink)
        fn.add(depth, "else:", f"    {t} = {null_tag!r}")
        if len(sink.names) > first:  # the branch's parts: empty for a null
            fn.add(depth + 1, " = ".join(sink.names[first:]) + " = b''")

    def _branch(
        self, fn: Function, depth: int, v: str, avro: Any, simple: str, hint: Any, sink: _Sink
    ) -> None:
        if simple not in _BRANCH_GUARDS:  # a record, array or map: the codec validates it
            fn.add(depth, "raise _Fallback")
            return
        guard = _BRANCH_GUARDS[simple]
        if guard is not None:
            fn.add(depth, f"if {guard.format(v=v)}:", "    raise _Fallback")
        if simple == "int":  # the writer checks a union's ints are in 32 bits
            self._cached(fn, depth, v, v, "int", "ints", _integer(*_INT), sink)
        else:
            self.value(fn, depth, v, avro, _optional(hint), sink)

    def _array(self, fn: Function, depth: int, v: str, avro: Any, hint: Any, sink: _Sink) -> None:
        """Arrays of strings cached by their tuple (board lists repeat); others item by item,
        remembered by identity when they cannot change (see ``_frozen``)."""
        items = self._resolve(avro["items"])
        if avro_kind(items) == ("string", None):
            self._cached(fn, depth, v, v, "strings", "strings", _strings, sink)
            return
        args = typing.get_args(hint)
        item_hint = args[0] if args else None
        b = fn.local("b")
        if not self._frozen(items, item_hint):
            self._blocks(fn, depth, v, b, items, item_hint, is_map=False)
            sink.put(fn, depth, b)
            return
        # The same tuple of the same records comes again and again (the boards stage shares
        # one tuple of tiebreakers per exact-score count): its bytes by its id, the tuple
        # itself kept (so that the id is not another object's while the entry lives).
        cache, get = self._tuples(items, item_hint)
        found = fn.local("found")
        fn.add(depth, f"{found} = {get}(id({v}))", f"if {found} is not None and {found}[0] is {v}:")
        fn.add(depth + 1, f"{b} = {found}[1]")
        fn.add(depth, "else:")
        self._blocks(fn, depth + 1, v, b, items, item_hint, is_map=False)
        fn.add(depth + 1, f"if type({v}) is tuple:")
        fn.add(depth + 2, f"if len({cache}) >= CACHE_LIMIT:", f"    {cache}.clear()")
        fn.add(depth + 2, f"{cache}[id({v})] = ({v}, {b})")
        sink.put(fn, depth, b)

    def _tuples(self, avro: Any, hint: Any) -> tuple[str, str]:
        """(cache, cache.get) global names: (tuple, its bytes) by id, per record type."""
        if avro["name"] not in self._by_id:
            tuples: dict[int, tuple[Any, bytes]] = {}
            stem = f"{_record_class(hint).__name__}_tuples"
            self._by_id[avro["name"]] = (
                self._module.constant(stem, tuples),
                self._module.constant(f"{stem}_get", tuples.get),
            )
        return self._by_id[avro["name"]]

    def _frozen(self, avro: Any, hint: Any) -> bool:
        """Whether a record's bytes cannot change once written: a frozen dataclass whose
        fields are all scalars (strings, numbers, enums, decimals, timestamps: immutable)."""
        cls = _optional(hint)
        if (
            avro_kind(avro)[0] != "record"
            or not isinstance(cls, type)
            or not issubclass(cls, AvroRecord)
        ):
            return False
        params = getattr(cls, "__dataclass_params__", None)
        if params is None or not params.frozen:
            return False
        scalars = {"string", "int", "long", "boolean", "enum", "decimal", "timestamp-millis"}

        def scalar(field_type: Any) -> bool:
            field_type = self._resolve(field_type)
            kind, logical = avro_kind(field_type)
            if kind == "union":
                return all(b == "null" or scalar(b) for b in field_type)
            return (logical or kind) in scalars

        return all(scalar(field["type"]) for field in avro["fields"])

    def _map(self, fn: Function, depth: int, v: str, avro: Any, hint: Any, sink: _Sink) -> None:
        args = typing.get_args(hint)
        b = fn.local("b")
        self._blocks(
            fn, depth, v, b, avro["values"], args[1] if len(args) == 2 else None, is_map=True
        )
        sink.put(fn, depth, b)

    def _blocks(
        self,
        fn: Function,
        depth: int,
        v: str,
        b: str,
        avro: Any,
        hint: Any,
        *,
        is_map: bool,
    ) -> None:
        """Into ``b``: one block of ``len(v)`` items (or entries of a map) then the zero
        count; just the zero count when empty. As fastavro writes them."""
        count, parts, item = fn.local("count"), fn.local("a"), fn.local("x")
        fn.add(depth, f"{count} = len({v})", f"if {count}:")
        fn.add(depth + 1, f"{parts} = [SIZES[{count}] if {count} < 64 else long_bytes({count})]")
        appends = _Appends(parts)
        if is_map:
            key = fn.local("key")
            fn.add(depth + 1, f"for {key}, {item} in {v}.items():")
            self._string(fn, depth + 2, f"{key}.encode()", appends)
        else:
            fn.add(depth + 1, f"for {item} in {v}:")
        self.value(fn, depth + 2, item, avro, hint, appends)
        fn.add(depth + 1, f"{parts}.append(b'\\x00')", f"{b} = b''.join({parts})")
        fn.add(depth, "else:", f"    {b} = b'\\x00'")

    def _record(self, fn: Function, depth: int, v: str, avro: Any, hint: Any, sink: _Sink) -> None:
        """A nested record of exactly its class (the codec writes what ``to_avro`` gives)."""
        cls = _record_class(hint)
        hints = typing.get_type_hints(cls)
        names = {f.name for f in dataclasses.fields(cls)}
        for field in avro["fields"]:
            if field["name"] not in names:
                raise TypeError(f"{cls.__name__} lacks the field {field['name']}")
        fn.add(depth, f"if type({v}) is not {self._module.class_(cls)}:")
        fn.add(depth + 1, "raise _Fallback")
        for field in avro["fields"]:
            value = fn.local("v")
            fn.add(depth, f"# {field['name']}: {describe_type(field['type'])}")
            fn.add(depth, f"{value} = {_attribute(v, field['name'])}")
            self.value(fn, depth, value, field["type"], hints[field["name"]], sink)
