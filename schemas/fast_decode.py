"""A fast decoder for the values this version writes, with the codec as the authority.

Used on the hot paths (the sinks, the boards stage, the worker's state rebuild), where a
value is decoded per award. ``AvroCodec.decode`` costs about 20 us a record; fastavro's
reader on the raw types followed by a field-by-field build still cost 6 to 10 us, mostly
in fastavro's generic per-type dispatch, the dict in between and ``object.__setattr__``.
So :class:`RecordDecoder` compiles each schema, once, into straight-line Python source
(exec'd at construction; ``RecordDecoder.source`` shows it) that reads the Avro binary
directly from the ``bytes`` with an integer position and builds the record directly.
Measured: 1.4 us for a LeaderboardEntryChanged and 1.9 us for a ScoreAwarded when the
field caches hit, about 2 us on a stream of varied records (3 to 4 times faster).

The codec stays the authority. The compiled code only returns a record when it is sure it
is the codec's: anything unusual (truncated or trailing bytes, a negative length, an
unexpected union or enum index, bad UTF-8, a varint fastavro would read differently)
raises inside the fast path and the codec decodes the value again, returning its record
or raising its SchemaDecodeError. ``tests/unit/test_fast_decode.py`` checks both agree, on
valid values and on damaged ones. Schemas with a shape the compiler does not know (unions
other than ``[null, X]``, named-type references, fixed, floats) are left to the codec.
"""

from __future__ import annotations

import dataclasses
import keyword
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Context, Decimal
from enum import Enum
from typing import Any

from schemas.codec import SINGLE_OBJECT_MAGIC, AvroCodec
from schemas.codegen import Function, Module
from schemas.codegen import describe as describe_type
from schemas.codegen import kind as avro_kind
from schemas.fast_encode import CACHE_LIMIT
from schemas.loader import load_schema
from schemas.records import RECORD_TYPES, AvroRecord

Decode = Callable[[bytes], AvroRecord]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: Where the Avro body starts in a single-object value (magic, then the fingerprint).
_BODY = len(SINGLE_OBJECT_MAGIC) + 8


class RecordDecoder:
    """``AvroCodec.decode`` with a fast path for the common case, same result.

    A single-object value written with one of ``schema_names`` (schemas this version
    ships) takes the fast path; anything else, and any failure, goes to the codec, which
    decodes or raises the authoritative SchemaDecodeError.
    """

    def __init__(self, codec: AvroCodec, schema_names: Iterable[str]) -> None:
        self._codec = codec
        #: Compiled decoder per value header (magic and fingerprint: one slice to look up).
        self._fast: dict[bytes, Decode] = {}
        self._sources: dict[str, str] = {}
        for name in sorted(set(schema_names)):
            try:
                decode, source = compile_decoder(RECORD_TYPES[name], load_schema(name))
            except TypeError:
                continue  # a shape the compiler does not cover: the codec decodes it
            self._fast[SINGLE_OBJECT_MAGIC + codec.fingerprint(name)] = decode
            self._sources[name] = source

    def __call__(self, data: bytes) -> AvroRecord:
        try:
            if type(data) is bytes:  # the compiled code slices: bytes, not views or bytearrays
                return self._fast[data[:_BODY]](data)
        except Exception:  # noqa: S110 (unknown header or a value the fast path refuses)
            pass
        return self._codec.decode(data)

    def source(self, schema_name: str) -> str | None:
        """The Python source compiled for ``schema_name``; None when the codec decodes it."""
        return self._sources.get(schema_name)


def compile_decoder(cls: type[AvroRecord], schema: Mapping[str, Any]) -> tuple[Decode, str]:
    """A function reading a single-object value of ``schema`` into a ``cls``, and its source.

    The function reads the body that starts after the 10-byte header and raises (any
    exception) when it cannot vouch for the record. TypeError: a shape it cannot compile.
    """
    module = Module(
        {"_Fallback": _Fallback, "_long": _long, "_length": _length, "_new": object.__new__}
    )
    function = Function(f"decode_{cls.__name__}(data)", _SCRATCH)
    function.add(1, f"pos = {_BODY}")
    _Reader(module).record(function, 1, "record", schema, cls)
    function.add(1, "if pos != len(data):", "    raise _Fallback  # trailing bytes")
    function.add(1, "return record")
    module.functions.append(function)
    source = module.compile("fast_decode", cls.__name__)
    return typing.cast(Decode, module.namespace[function.name]), source


# -- what the compiled code calls -----------------------------------------------------------


#: Scratch locals of a decoding function, each used only within the reading of one value.
_SCRATCH = {"data", "pos", "b", "n", "raw", "start", "end", "found", "_"}


class _Fallback(Exception):
    """Raised by compiled code for a value it does not vouch for: the codec decides."""


def _long(data: bytes, pos: int) -> tuple[int, int]:
    """The zig-zag varint at ``pos`` and the position after it (the compiled code inlines
    the one-byte case).

    fastavro (the codec's reader) accumulates into an unsigned 64-bit integer in C, so a
    varint longer than 10 bytes or above 64 bits reads differently there: the codec decides.
    """
    b = data[pos]
    n = b & 0x7F
    shift = 7
    pos += 1
    while b & 0x80:
        b = data[pos]
        pos += 1
        n |= (b & 0x7F) << shift
        shift += 7
    if shift > 70 or n >> 64:
        raise _Fallback
    return (n >> 1) ^ -(n & 1), pos


def _length(data: bytes, pos: int) -> tuple[int, int]:
    """A length or an index at ``pos``; a negative one is the codec's to judge.

    (fastavro reads everything left for a negative length, and indexes symbols and union
    branches from the end for a negative index.)
    """
    n, pos = _long(data, pos)
    if n < 0:
        raise _Fallback
    return n, pos


class _Cache:
    """Decoded values by their raw bytes (or millis), bounded like fast_encode's caches.

    Most field values repeat across records (points, totals, tiebreakers, timestamps), so
    converting them once (a Decimal, a datetime, a tuple of records) pays. A key is the
    exact bytes a value was decoded from, so a hit is always the right value.
    """

    __slots__ = ("_values", "get")

    def __init__(self) -> None:
        self._values: dict[Any, Any] = {}
        self.get = self._values.get

    def put(self, key: Any, value: Any) -> Any:
        if len(self._values) >= CACHE_LIMIT:
            self._values.clear()
        self._values[key] = value
        return value


class _VarintCache(_Cache):
    """Converted longs (timestamps) by the bytes at their position, read or not.

    Reading a multi-byte varint in Python costs more than the rest of a field (a timestamp
    has six bytes), so the compiled code looks up the next ``WINDOW`` bytes instead: a key
    holds a whole varint (and maybe the start of the next field), so a hit is (the value,
    the varint's size). A varint longer than the window is read every time.
    """

    __slots__ = ("_convert",)
    #: Bytes looked up: a timestamp-millis varint has 6 until 2039 and 7 until year 10889.
    WINDOW = 7

    def __init__(self, convert: Callable[[int], Any]) -> None:
        super().__init__()
        self._convert = convert

    def read(self, data: bytes, pos: int) -> tuple[Any, int]:
        """Read, convert and remember the varint at ``pos``: (value, size)."""
        n, end = _long(data, pos)
        found = (self._convert(n), end - pos)
        key = data[pos : pos + self.WINDOW]
        if end - pos <= len(key):
            self.put(key, found)
        return found


def _decimal(precision: int, scale: int) -> Callable[[bytes], Decimal]:
    """A bytes decimal as fastavro reads it: in a context of the schema's precision.

    That context matters for the exponent (``Decimal("5.00")``, not ``Decimal("5")``) and
    for unscaled values with more digits than the precision (rounded, as the codec does).
    """
    context = Context(prec=precision)

    def convert(raw: bytes) -> Decimal:
        unscaled = context.create_decimal(int.from_bytes(raw, "big", signed=True))
        return unscaled.scaleb(-scale, context)

    return convert


def _timestamp_millis(millis: int) -> datetime:
    """As fastavro reads it, and as ``AvroRecord.__post_init__`` leaves it (UTC, millis)."""
    return _EPOCH + timedelta(milliseconds=millis)


def _shadow(cls: type[AvroRecord]) -> type:
    """A mutable twin of ``cls`` with the same slots, to build a record without __init__.

    Records are frozen slotted dataclasses whose __init__ and __post_init__ are slow; the
    compiled code makes a twin, sets its slots with plain attribute stores, then turns it
    into a ``cls`` by assigning ``__class__`` (Python allows that between classes with the
    same base and slots). About 4 times faster than ``object.__setattr__`` per field.
    """
    names = {f.name for f in dataclasses.fields(cls)}
    slots = cls.__dict__.get("__slots__")
    if not isinstance(slots, tuple) or set(slots) != names:
        raise TypeError(f"{cls.__name__}: not a slotted dataclass of its fields only")
    # Both the frozen __setattr__ and __delattr__ are undone: only then is the twin's
    # attribute store the plain slot store the interpreter specializes.
    namespace = {
        "__slots__": slots,
        "__setattr__": object.__setattr__,
        "__delattr__": object.__delattr__,
        "__module__": __name__,
    }
    base = cls.__base__
    if base is None:
        raise TypeError(f"{cls.__name__} has no base class")
    shadow = type(f"_{cls.__name__}Shadow", (base,), namespace)
    probe: Any = object.__new__(shadow)
    try:
        probe.__class__ = cls
    except TypeError as e:
        raise TypeError(f"{cls.__name__} cannot be built from a twin: {e}") from e
    return shadow


# -- the compiler -----------------------------------------------------------------------------


_BUILDERS: dict[type[AvroRecord], Callable[..., Any]] = {}
_R = typing.TypeVar("_R", bound=AvroRecord)


def builder(cls: type[_R]) -> Callable[..., _R]:
    """A function ``(**fields) -> cls`` that skips ``__init__`` and ``__post_init__``.

    For values normalized already (datetimes taken from other records, decimals at their
    scale): it stores them as given. Every field is a required keyword. Compiled once per
    class, with plain slot stores on the mutable twin (:func:`_shadow`): 0.5 us for a
    ten-field record, against 2 us with ``object.__setattr__`` per field.
    """
    found = _BUILDERS.get(cls)
    if found is None:
        names = [f.name for f in dataclasses.fields(cls)]
        if any(keyword.iskeyword(n) or n.startswith("_") for n in names):
            raise TypeError(f"{cls.__name__}: a field name the builder cannot take as is")
        module = Module({"_new": object.__new__, "_shadow": _shadow(cls), "_cls": cls})
        function = Function(f"build_{cls.__name__}(*, {', '.join(names)})", set(names))
        record = function.local("record")
        function.add(1, f"{record} = _new(_shadow)")
        function.add(1, *(f"{record}.{name} = {name}" for name in names))
        function.add(1, f"{record}.__class__ = _cls", f"return {record}")
        module.functions.append(function)
        module.compile("fast_decode builder", cls.__name__)
        found = _BUILDERS[cls] = module.namespace[function.name]
    return found


def _optional(hint: Any) -> Any:
    """X for an ``X | None`` hint; None for any other hint."""
    if typing.get_origin(hint) not in (typing.Union, types.UnionType):
        return None
    args = typing.get_args(hint)
    branches = [a for a in args if a is not type(None)]
    if len(branches) != 1 or len(args) != 2:
        raise TypeError(f"unsupported union hint {hint}")
    return branches[0]


def _immutable(avro: Any) -> bool:
    """Whether values of the type are immutable once decoded (no map: dicts), so shareable."""
    kind, _ = avro_kind(avro)
    if kind == "map":
        return False
    if kind == "union":
        return all(_immutable(branch) for branch in avro)
    if kind == "array":
        return _immutable(avro["items"])
    if kind == "record":
        return all(_immutable(field["type"]) for field in avro["fields"])
    return True


def _is_subclass(hint: Any, base: type) -> bool:
    return isinstance(hint, type) and issubclass(hint, base)


class _Reader:
    """Writes the code that reads an Avro value at ``pos`` into a local, advancing ``pos``.

    Each ``read`` mirrors what the codec makes of the value (fastavro's reader, then
    ``AvroRecord.from_avro``) for the field's type hint; a pairing it does not know is a
    TypeError, and the whole schema is left to the codec.
    """

    def __init__(self, module: Module) -> None:
        self._module = module
        #: Global names of what fields of the same kind share (converters, caches).
        self._shared: dict[str, tuple[str, ...]] = {}

    # Reading values.

    def read(self, fn: Function, depth: int, target: str, avro: Any, hint: Any) -> None:
        kind, logical = avro_kind(avro)
        inner = _optional(hint)
        if inner is not None:
            if kind == "union":
                self._union(fn, depth, target, avro, inner)
            else:  # the codec converts a non-null value as the hint's branch
                self.read(fn, depth, target, avro, inner)
        elif kind == "union":
            raise TypeError(f"union {describe_type(avro)} for a field of type {hint}")
        elif logical is not None:
            self._logical(fn, depth, target, avro, kind, logical, hint)
        elif kind == "string" and hint is str:
            self._length(fn, depth, "n")
            fn.add(depth, f"{target} = data[pos:pos + n].decode()", "pos += n")
        elif kind in ("int", "long") and hint is int:
            self._long(fn, depth, target)
        elif kind == "boolean" and hint is bool:
            fn.add(depth, "b = data[pos]", "if b > 1:", "    raise _Fallback")
            fn.add(depth, f"{target} = b == 1", "pos += 1")
        elif kind == "enum" and _is_subclass(hint, Enum):
            try:
                members = tuple(hint(symbol) for symbol in avro["symbols"])
            except ValueError as e:
                raise TypeError(f"{hint.__name__} lacks a symbol of {avro['name']}") from e
            symbols = self._module.constant(f"{hint.__name__}_members", members)
            self._length(fn, depth, "n")
            fn.add(depth, f"{target} = {symbols}[n]")
        elif kind == "array" and typing.get_origin(hint) is tuple:
            self._array(fn, depth, target, avro, typing.get_args(hint)[0])
        elif kind == "map" and _is_subclass(typing.get_origin(hint), Mapping):
            self._map(fn, depth, target, avro, typing.get_args(hint)[1])
        elif kind == "record" and _is_subclass(hint, AvroRecord):
            self.record(fn, depth, target, avro, hint)
        else:
            raise TypeError(
                f"unsupported Avro type {describe_type(avro)} for a field of type {hint}"
            )

    def record(
        self, fn: Function, depth: int, target: str, avro: Mapping[str, Any], cls: Any
    ) -> None:
        """Read the fields in the schema's order, then build the record by name."""
        hints = typing.get_type_hints(cls)
        names = [f.name for f in dataclasses.fields(cls)]
        missing = set(names) - {f["name"] for f in avro["fields"]}
        if missing:
            raise TypeError(f"{cls.__name__} fields missing from the schema: {sorted(missing)}")
        if any(not n.isidentifier() or keyword.iskeyword(n) for n in names):
            raise TypeError(f"{cls.__name__} has a field that is not an identifier")
        values: dict[str, str] = {}
        prefix = "f_" if target == "record" else f"{target}_"
        for field in avro["fields"]:
            name = field["name"]
            fn.add(depth, f"# {name}: {describe_type(field['type'])}")
            if name in names:
                values[name] = fn.local(prefix + name)
                self.read(fn, depth, values[name], field["type"], hints[name])
            else:  # a field the record does not have: read past it, as the codec would
                self.skip(fn, depth, field["type"], check=True)
        shadow = self._module.constant(f"_{cls.__name__}Shadow", _shadow(cls))
        fn.add(depth, f"{target} = _new({shadow})")
        fn.add(depth, *(f"{target}.{name} = {values[name]}" for name in names))
        fn.add(depth, f"{target}.__class__ = {self._module.constant(cls.__name__, cls)}")

    def _logical(
        self, fn: Function, depth: int, target: str, avro: Any, kind: str, logical: str, hint: Any
    ) -> None:
        """Decimals and timestamps, through caches shared by the fields of a schema."""
        if kind == "bytes" and logical == "decimal" and hint is Decimal:
            precision, scale = avro.get("precision"), avro.get("scale", 0)
            if not isinstance(precision, int) or not isinstance(scale, int):
                raise TypeError(f"decimal without an integer precision and scale: {avro}")
            stem = f"decimal_{precision}_{scale}"
            if stem not in self._shared:
                cache = _Cache()
                self._shared[stem] = (
                    self._module.constant(stem, _decimal(precision, scale)),
                    self._module.constant(f"{stem}_get", cache.get),
                    self._module.constant(f"{stem}_put", cache.put),
                )
            convert, get, put = self._shared[stem]
            self._length(fn, depth, "n")
            fn.add(
                depth,
                "raw = data[pos:pos + n]",
                "pos += n",
                f"{target} = {get}(raw)",
                f"if {target} is None:",
                f"    {target} = {put}(raw, {convert}(raw))",
            )
        elif kind == "long" and logical == "timestamp-millis" and hint is datetime:
            if "timestamps" not in self._shared:
                timestamps = _VarintCache(_timestamp_millis)
                self._shared["timestamps"] = (
                    self._module.constant("timestamps_get", timestamps.get),
                    self._module.constant("timestamps_read", timestamps.read),
                )
            get, read = self._shared["timestamps"]
            fn.add(
                depth,
                f"found = {get}(data[pos:pos + {_VarintCache.WINDOW}])",
                "if found is None:",
                f"    found = {read}(data, pos)",
                f"{target}, n = found",
                "pos += n",
            )
        else:
            raise TypeError(f"unsupported logical type {logical} of {kind} for {hint}")

    def _union(self, fn: Function, depth: int, target: str, avro: list[Any], hint: Any) -> None:
        """``[null, X]`` (either order) into an ``X | None`` field; other unions: TypeError."""
        if len(avro) != 2 or "null" not in avro:
            raise TypeError(f"unsupported union {describe_type(avro)}")
        null = avro.index("null")
        fn.add(depth, "b = data[pos]", "pos += 1")  # a one-byte branch index: 0 -> 0, 1 -> 2
        fn.add(depth, f"if b == {2 * null}:", f"    {target} = None", f"elif b == {2 - 2 * null}:")
        self.read(fn, depth + 1, target, avro[1 - null], hint)
        fn.add(depth, "else:", "    raise _Fallback")

    def _array(
        self, fn: Function, depth: int, target: str, avro: Any, hint: Any, cached: bool = True
    ) -> None:
        """An array into a tuple, cached by its raw bytes unless its items hold a map."""
        if not cached or not _immutable(avro["items"]):
            items = fn.local("items")
            fn.add(depth, f"{items} = []")
            self._blocks(fn, depth, avro["items"], hint, f"{items}.append", "")
            fn.add(depth, f"{target} = tuple({items})")
            return
        # Arrays repeat (board lists, tiebreakers) and building their items is the dear
        # part, so they are cached by their raw bytes. Every key is a whole array as it was
        # decoded, and an array's encoding ends itself: whatever bytes at ``pos`` equal a
        # key hold that array. So the bytes are first looked up with the size of the last
        # array of the field (free to find, and usually the same); only on a miss is the
        # array skipped through to find its size, looked up again, and decoded when new
        # (checking it ends where skipping ended).
        stem = target.removeprefix("f_")
        read = Function(f"{self._module.name('read_' + stem)}(data, pos)", _SCRATCH)
        self._array(read, 1, read.local("value"), avro, hint, cached=False)
        read.add(1, "return value, pos")
        self._module.functions.append(read)
        cache = _Cache()
        get = self._module.constant(f"{stem}_get", cache.get)
        put = self._module.constant(f"{stem}_put", cache.put)
        size = self._module.constant(f"{stem}_size", [1])  # the last array's, in bytes
        fn.add(
            depth,
            f"raw = data[pos:pos + {size}[0]]",
            f"{target} = {get}(raw)",
            f"if {target} is not None:",
            "    pos += len(raw)",
            "else:",
            "    start = pos",
        )
        self.skip(fn, depth + 1, avro)
        fn.add(
            depth + 1,
            "raw = data[start:pos]",
            f"{size}[0] = len(raw)",
            f"{target} = {get}(raw)",
            f"if {target} is None:",
            f"    {target}, end = {read.name}(data, start)",
            "    if end != pos:",
            "        raise _Fallback",
            f"    {put}(raw, {target})",
        )

    def _map(self, fn: Function, depth: int, target: str, avro: Any, hint: Any) -> None:
        """A map into a dict, as the codec gives it."""
        items, key = fn.local("items"), fn.local("key")
        fn.add(depth, f"{items} = {{}}")
        self._blocks(fn, depth, avro["values"], hint, f"{items}[{key}] = ", key)
        fn.add(depth, f"{target} = {items}")

    def _blocks(self, fn: Function, depth: int, avro: Any, hint: Any, store: str, key: str) -> None:
        """The blocks of an array (``key`` empty) or a map, each item passed to ``store``.

        A block is a count (negative: followed by its size in bytes) and that many items;
        a zero count ends it. A count larger than the bytes left is the codec's to judge.
        """
        count, item = fn.local("count"), fn.local("item")
        self._long(fn, depth, count)
        fn.add(depth, f"while {count}:")
        fn.add(depth + 1, f"if {count} < 0:", f"    {count} = -{count}")
        fn.add(depth + 2, "_, pos = _long(data, pos)  # the block's size")
        fn.add(depth + 1, f"if {count} > len(data) - pos:", "    raise _Fallback")
        fn.add(depth + 1, "for _ in range(" + count + "):")
        if key:
            self.read(fn, depth + 2, key, "string", str)
        self.read(fn, depth + 2, item, avro, hint)
        fn.add(depth + 2, f"{store}({item})" if not key else f"{store}{item}")
        self._long(fn, depth + 1, count)

    # Skipping values (fields a record does not have; finding where an array ends).

    def skip(self, fn: Function, depth: int, avro: Any, check: bool = False) -> None:
        """Advance ``pos`` past a value.

        ``check``: fail where the codec's reader would (an enum index out of range, bad
        UTF-8), for a field the record does not have. Finding where an array ends needs
        no checks: the array is decoded (and checked) before its bytes are a cache key.
        """
        kind, _ = avro_kind(avro)
        if kind == "enum" and check:
            self._length(fn, depth, "n")
            fn.add(depth, f"if n >= {len(avro['symbols'])}:", "    raise _Fallback")
        elif kind in ("int", "long", "enum"):
            fn.add(depth, "b = data[pos]", "pos += 1", "if b & 0x80:")
            fn.add(depth + 1, "_, pos = _long(data, pos - 1)")
        elif kind in ("string", "bytes"):
            self._length(fn, depth, "n")
            if kind == "string" and check:
                fn.add(depth, "data[pos:pos + n].decode()")
            fn.add(depth, "pos += n")
        elif kind in ("boolean", "float", "double", "fixed"):
            size = {"boolean": 1, "float": 4, "double": 8}.get(kind)
            fn.add(depth, f"pos += {avro['size'] if size is None else size}")
        elif kind == "null":
            pass
        elif kind == "union":
            if len(avro) != 2 or "null" not in avro:
                raise TypeError(f"unsupported union {describe_type(avro)}")
            null = avro.index("null")
            fn.add(depth, "b = data[pos]", "pos += 1", f"if b == {2 - 2 * null}:")
            self.skip(fn, depth + 1, avro[1 - null], check)
            fn.add(depth, f"elif b != {2 * null}:", "    raise _Fallback")
        elif kind == "record":
            for field in avro["fields"]:
                self.skip(fn, depth, field["type"], check)
        elif kind in ("array", "map"):
            count = fn.local("count")
            self._long(fn, depth, count)
            fn.add(depth, f"while {count}:")
            fn.add(depth + 1, f"if {count} < 0:", f"    {count} = -{count}")
            fn.add(depth + 2, "_, pos = _long(data, pos)  # the block's size")
            fn.add(depth + 1, f"if {count} > len(data) - pos:", "    raise _Fallback")
            fn.add(depth + 1, f"for _ in range({count}):")
            if kind == "map":
                self.skip(fn, depth + 2, "string", check)
            self.skip(fn, depth + 2, avro["items" if kind == "array" else "values"], check)
            self._long(fn, depth + 1, count)
        else:
            raise TypeError(f"unsupported Avro type {describe_type(avro)}")

    # Varints, inlined for the one-byte case.

    def _long(self, fn: Function, depth: int, target: str) -> None:
        fn.add(
            depth,
            "b = data[pos]",
            "if b < 0x80:",
            f"    {target} = (b >> 1) ^ -(b & 1)",
            "    pos += 1",
            "else:",
            f"    {target}, pos = _long(data, pos)",
        )

    def _length(self, fn: Function, depth: int, target: str) -> None:
        """A length or an index: non-negative (one byte, even: below 0x80 and not odd)."""
        fn.add(
            depth,
            "b = data[pos]",
            "if b & 0x81:",
            f"    {target}, pos = _length(data, pos)",
            "else:",
            f"    {target} = b >> 1",
            "    pos += 1",
        )
