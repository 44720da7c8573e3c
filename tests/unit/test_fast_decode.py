"""The fast decoder gives exactly what the codec gives, for every record on a topic.

"Exactly": equal records, and also the same Decimal exponents (``5.00``, not ``5``), the same
timezone, the same types. And for damaged values (truncated, a byte too many, a byte
changed) the same outcome: the codec's record, or the codec's error.
"""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from enum import Enum
from typing import Any, cast

import pytest
from fastavro import parse_schema, schemaless_reader, schemaless_writer
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas import fast_decode
from schemas.catalog import CATALOG
from schemas.codec import SINGLE_OBJECT_MAGIC, AvroCodec
from schemas.fast_decode import RecordDecoder, builder, compile_decoder
from schemas.fast_encode import long_bytes, string_bytes
from schemas.loader import load_schema
from schemas.records import AvroRecord, LeaderboardEntryChanged
from schemas.records.outputs import LedgerEntryPosted
from tests.unit.test_codec import from_schema, records

CODEC = AvroCodec()
#: (schema, a topic it is a value of) for every Avro value in the catalog.
VALUES = sorted({(name, spec.name) for spec in CATALOG for name in spec.value_schemas})
DECODER = RecordDecoder(CODEC, [name for name, _ in VALUES])
HOT = (
    "ScoreAwarded",
    "LeaderboardEntryChanged",
    "PredictionPlaced",
    "BetSettled",
    "BetPlaced",
    "LedgerEntryPosted",
)


class CodecPathForbidden(AvroCodec):
    """A codec that fails the test when the decoder falls back to it."""

    def decode(self, data: bytes) -> AvroRecord:
        raise AssertionError("the value did not take the fast path")


#: Decodes only through the compiled code (its own caches, so the two decoders differ).
FAST_ONLY = RecordDecoder(CodecPathForbidden(), [name for name, _ in VALUES])


def exact(value: Any) -> Any:
    """``value`` as nested tuples that differ whenever a type, exponent or zone differs."""
    if isinstance(value, AvroRecord):
        fields = dataclasses.fields(value)
        return (type(value), tuple((f.name, exact(getattr(value, f.name))) for f in fields))
    if isinstance(value, Decimal):
        return (Decimal, value.as_tuple())
    if isinstance(value, datetime):
        return (datetime, value, value.tzinfo, value.utcoffset())
    if isinstance(value, tuple | list):
        return (type(value), tuple(exact(item) for item in value))
    if isinstance(value, Mapping):
        return (type(value), tuple((key, exact(item)) for key, item in value.items()))
    if isinstance(value, Enum):
        return (type(value), value.value)
    return (type(value), value)


def outcome(decode: Callable[[bytes], AvroRecord], data: bytes) -> Any:
    """What ``decode`` makes of ``data``: the exact record, or the type of its error."""
    try:
        return exact(decode(data))
    except Exception as e:  # the codec's SchemaDecodeError, whichever path raised it
        return type(e)


@pytest.mark.parametrize(("name", "topic"), VALUES)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_fast_decode_equals_the_codec(name: str, topic: str, data: st.DataObject) -> None:
    record: AvroRecord = data.draw(records(name))
    value = CODEC.encode(record, topic)
    expected = exact(CODEC.decode(value))
    assert DECODER(value) == record
    assert exact(DECODER(value)) == expected
    assert exact(DECODER(value)) == expected  # again: now through the caches
    if DECODER.source(name) is not None:
        assert exact(FAST_ONLY(value)) == expected


def damage(value: bytes, data: st.DataObject) -> bytes:
    """``value`` with its body truncated, a byte appended, replaced, inserted or dropped."""
    how = data.draw(st.sampled_from(["truncate", "append", "replace", "insert", "drop"]))
    at = data.draw(st.integers(10, len(value) - 1))  # the body: a bad header is not compiled
    byte = bytes([data.draw(st.integers(0, 255))])
    return {
        "truncate": value[:at],
        "append": value + byte,
        "replace": value[:at] + byte + value[at + 1 :],
        "insert": value[:at] + byte + value[at:],
        "drop": value[:at] + value[at + 1 :],
    }[how]


@pytest.mark.parametrize(("name", "topic"), VALUES)
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_a_damaged_value_gets_the_codecs_outcome(
    name: str, topic: str, data: st.DataObject
) -> None:
    damaged = damage(CODEC.encode(data.draw(records(name)), topic), data)
    assert outcome(DECODER, damaged) == outcome(CODEC.decode, damaged)
    assert outcome(DECODER, damaged) == outcome(CODEC.decode, damaged)  # through the caches


def test_the_hot_records_take_the_fast_path() -> None:
    for name in HOT:
        source = DECODER.source(name)
        assert source is not None, name
        assert f"def decode_{name}(data):" in source


def test_every_value_schema_is_compiled() -> None:
    """Maps included (RuleSet): nothing on a topic is left to the codec today."""
    assert [name for name, _ in VALUES if DECODER.source(name) is None] == []


# -- hand-made bodies: what hypothesis' encodings never hold -----------------------------

LINE = SINGLE_OBJECT_MAGIC + CODEC.fingerprint("LeaderboardEntryChanged")
NOON = 1_795_867_200_000  # 2026-11-28 12:00 UTC, in millis


def bytes_field(raw: bytes) -> bytes:
    return long_bytes(len(raw)) + raw


def unscaled(n: int) -> bytes:
    return n.to_bytes((n.bit_length() + 8) // 8, "big", signed=True)


def line(
    *,
    total: bytes = bytes_field(unscaled(500)),
    tiebreakers: bytes = b"\x02" + string_bytes("exact") + bytes_field(unscaled(100)) + b"\x00",
    rank: bytes = b"\x02\x06",
    version: bytes = long_bytes(3),
    updated_at: bytes = long_bytes(NOON),
    board_id: bytes = string_bytes("league:l003"),
    extra: bytes = b"",
) -> bytes:
    """A LeaderboardEntryChanged value, field by field as raw Avro (``extra``: see WIDER)."""
    member = string_bytes("m012345")
    return LINE + board_id + member + extra + total + tiebreakers + rank + version + updated_at


def bet(*legs: bytes) -> bytes:
    """A BetPlaced value (a parlay) with these legs, each as raw Avro."""
    header = SINGLE_OBJECT_MAGIC + CODEC.fingerprint("BetPlaced")
    body = string_bytes("b1") + string_bytes("m1") + b"\x02" + bytes_field(unscaled(1000))
    return header + body + long_bytes(len(legs)) + b"".join(legs) + b"\x00" + long_bytes(NOON)


def leg(market: str, odds: bytes, price: bytes = b"\x00") -> bytes:
    return string_bytes(market) + string_bytes("home") + odds + price


ODDS = b"\x02" + bytes_field(unscaled(21_000))  # 2.1000

VALID = {
    "plain": line(),
    "a negative total": line(total=bytes_field(unscaled(-1250))),
    "empty decimal bytes": line(total=b"\x00"),
    "more digits than the precision": line(total=bytes_field(unscaled(10**24 + 7))),
    "more digits than the default context": line(total=bytes_field(unscaled(3 * 10**40 + 1))),
    "no tiebreakers": line(tiebreakers=b"\x00"),
    "tiebreakers in two blocks": line(
        tiebreakers=(b"\x02" + string_bytes("a") + b"\x02\x01\x02" + string_bytes("b") + b"\x00")
        + b"\x00"
    ),
    "a block with its size": line(
        tiebreakers=b"\x01" + long_bytes(4) + string_bytes("a") + b"\x02\x01\x00"
    ),
    "no rank": line(rank=b"\x00"),
    "a 10-byte version": line(version=b"\xff" * 9 + b"\x01"),
    "a non-minimal version": line(version=b"\x86\x80\x00"),
    "a 1970 timestamp": line(updated_at=long_bytes(1000)),
    "a negative timestamp": line(updated_at=long_bytes(-86_400_000)),
    "a year-2100 timestamp": line(updated_at=long_bytes(4_102_444_800_000)),
    "a non-ascii board": line(board_id=string_bytes("ligue:été")),
    "a parlay": bet(leg("k1", ODDS), leg("k2", b"\x00", ODDS)),
}
ODD = {
    "truncated in the timestamp": line()[:-2],
    "a trailing byte": line() + b"\x00",
    "a negative length": line(board_id=b"\x03abc"),
    "a length past the end": line(board_id=b"\x7eab"),
    "a decimal past the end": LINE + string_bytes("b") + string_bytes("m") + b"\x10\x01",
    "bad utf-8": line(board_id=b"\x04\xc3\x28"),
    "a negative union index": line(rank=b"\x01\x06"),
    "a non-minimal union index": line(rank=b"\x82\x00\x06"),
    "union index 2": line(rank=b"\x04\x06"),
    "an 11-byte version": line(version=b"\x80" * 10 + b"\x00"),
    "a version above 64 bits": line(version=b"\xff" * 9 + b"\x7f"),
    "a timestamp past year 9999": line(updated_at=long_bytes(2**62)),
    "a huge block count": line(tiebreakers=long_bytes(2**40) + b"\x00"),
    "a negative block count, truncated": line(tiebreakers=b"\x01"),
    "empty body": LINE,
    "a parlay's second leg with union index 2": bet(leg("k1", ODDS), leg("k2", b"\x04")),
    "a parlay's second leg with union index -1": bet(leg("k1", ODDS), leg("k2", b"\x01")),
}


@pytest.mark.parametrize("value", VALID.values(), ids=VALID.keys())
def test_hand_made_values_take_the_fast_path(value: bytes) -> None:
    expected = exact(CODEC.decode(value))
    assert exact(FAST_ONLY(value)) == expected
    assert exact(FAST_ONLY(value)) == expected  # through the caches
    assert exact(DECODER(value)) == expected


@pytest.mark.parametrize("value", [*VALID.values(), *ODD.values()], ids=[*VALID, *ODD])
def test_odd_values_get_the_codecs_outcome(value: bytes) -> None:
    assert outcome(DECODER, value) == outcome(CODEC.decode, value)
    assert outcome(DECODER, value) == outcome(CODEC.decode, value)


def test_a_negative_enum_index_is_the_codecs_to_read() -> None:
    """fastavro reads symbol -1 as the last one: the fast path leaves such values to it."""
    settled = SINGLE_OBJECT_MAGIC + CODEC.fingerprint("BetSettled")
    body = string_bytes("b1") + string_bytes("m1") + b"\x01"  # status: index -1
    body += bytes_field(unscaled(1000)) * 2 + b"\x02" + string_bytes("k") + long_bytes(NOON)
    value = settled + body + b"\x00\x00"  # no previous payout, no boards
    assert outcome(DECODER, value) == outcome(CODEC.decode, value)
    with pytest.raises(AssertionError, match="fast path"):
        FAST_ONLY(value)


@pytest.mark.parametrize(
    ("unscaled_total", "text"),
    [(500, "5.00"), (0, "0.00"), (-1250, "-12.50"), (10**24 + 7, "1.00000000000000000E+22")],
)
def test_decimals_keep_the_codecs_exponent(unscaled_total: int, text: str) -> None:
    """The scale's exponent, and above the precision the codec's rounding."""
    value = line(total=bytes_field(unscaled(unscaled_total)))
    for decode in (CODEC.decode, FAST_ONLY):
        decoded = decode(value)
        assert isinstance(decoded, LeaderboardEntryChanged)
        assert str(decoded.total) == text


def test_views_and_bytearrays_decode_through_the_codec() -> None:
    """The codec takes them (the compiled code slices bytes): so does the decoder."""
    value = line()
    expected = exact(CODEC.decode(value))
    assert exact(DECODER(cast(bytes, bytearray(value)))) == expected
    assert exact(DECODER(cast(bytes, memoryview(value)))) == expected


def test_other_values_go_to_the_codec() -> None:
    value = line()
    for other in (
        b"",
        b"\xc3",
        value[:9],
        b"\x00" + value[2:],
        value[:2] + b"\x00" * 8 + value[10:],
    ):
        assert outcome(DECODER, other) == outcome(CODEC.decode, other)


def test_the_caches_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fast_decode, "CACHE_LIMIT", 3)
    decoder = RecordDecoder(CODEC, ["LeaderboardEntryChanged"])
    for n in range(20):
        value = line(
            total=bytes_field(unscaled(n)),
            tiebreakers=b"\x02" + string_bytes(f"t{n % 7}") + bytes_field(unscaled(n)) + b"\x00",
            updated_at=long_bytes(NOON + n),
        )
        assert exact(decoder(value)) == exact(CODEC.decode(value))
    sizes = [
        len(cache.__self__)  # a bound dict.get: its dict
        for key, cache in _namespace(decoder, "LeaderboardEntryChanged").items()
        if key.endswith("_get")
    ]
    assert sizes and max(sizes) <= 3


def _namespace(decoder: RecordDecoder, name: str) -> dict[str, Any]:
    function = decoder._fast[SINGLE_OBJECT_MAGIC + CODEC.fingerprint(name)]  # noqa: SLF001
    return function.__globals__


def test_a_varint_longer_than_the_window_is_not_remembered_by_its_start() -> None:
    """Two (non-minimal) varints that share their first WINDOW bytes still read apart."""
    cache = fast_decode._VarintCache(lambda n: n)  # noqa: SLF001
    window = cache.WINDOW
    first = b"\x80" * window + b"\x00"  # 0, in WINDOW + 1 bytes
    second = b"\x80" * window + b"\x02"  # 2 ** (7 * WINDOW), zig-zag
    assert cache.read(first, 0) == (0, window + 1)
    assert cache.get(second[:window]) is None
    assert cache.read(second, 0) == (2 ** (7 * window), window + 1)


def test_the_source_is_readable() -> None:
    source = DECODER.source("LeaderboardEntryChanged")
    assert source is not None
    assert "def decode_LeaderboardEntryChanged(data):" in source
    assert "# total: decimal(18, 2)" in source
    assert "# updated_at: timestamp-millis" in source
    decoded = DECODER(line())
    assert isinstance(decoded, LeaderboardEntryChanged)
    assert decoded.updated_at == datetime(2026, 11, 28, 12, tzinfo=UTC)


# -- a schema with fields the record lacks (no shipped schema has one today) ------------

WIDER = load_schema("LeaderboardEntryChanged")
WIDER["fields"][2:2] = [  # between member_id and total
    {"name": "note", "type": "string"},
    {"name": "mood", "type": {"type": "enum", "name": "Mood", "symbols": ["up", "down"]}},
    {"name": "tags", "type": {"type": "map", "values": ["null", "long"]}},
    {"name": "seen", "type": "boolean"},
    {
        "name": "origin",
        "type": {
            "type": "record",
            "name": "Origin",
            "fields": [
                {"name": "source", "type": ["null", "string"]},
                {"name": "ok", "type": {"type": "enum", "name": "Ok", "symbols": ["y", "n"]}},
            ],
        },
    },
]
WIDER_PARSED = cast(dict[str, Any], parse_schema(WIDER))
WIDER_DECODE, WIDER_SOURCE = compile_decoder(LeaderboardEntryChanged, WIDER)


def wider_reference(value: bytes) -> AvroRecord:
    """What the codec does with a body of WIDER: fastavro, then ``from_avro``."""
    buffer = io.BytesIO(value[10:])
    datum = schemaless_reader(buffer, WIDER_PARSED, None)
    if buffer.tell() != len(value) - 10:
        raise ValueError("trailing bytes")
    return LeaderboardEntryChanged.from_avro(cast(dict[str, Any], datum))


def wider_decode(value: bytes) -> AvroRecord:
    """The compiled code, falling back on the reference as RecordDecoder does on the codec."""
    try:
        return WIDER_DECODE(value)
    except Exception:
        return wider_reference(value)


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_fields_the_record_lacks_are_read_past_as_the_codec_would(data: st.DataObject) -> None:
    assert "# note: string" in WIDER_SOURCE
    datum = data.draw(from_schema(WIDER_PARSED, WIDER_PARSED["__named_schemas"]))
    buffer = io.BytesIO()
    schemaless_writer(buffer, WIDER_PARSED, datum)
    value = LINE + buffer.getvalue()
    assert exact(WIDER_DECODE(value)) == exact(wider_reference(value))  # the fast path
    damaged = damage(value, data)
    assert outcome(wider_decode, damaged) == outcome(wider_reference, damaged)


def wider(
    note: bytes = string_bytes("x"),
    mood: bytes = b"\x02",
    tags: bytes = b"\x02\x02a\x02\x06\x00",
    seen: bytes = b"\x01",
    origin: bytes = b"\x02\x02s\x00",
) -> bytes:
    return line(extra=note + mood + tags + seen + origin)


WIDER_VALUES = {
    "valid": wider(),
    "seen is 2": wider(seen=b"\x02"),
    "bad UTF-8 in the note": wider(note=b"\x04\xc3\x28"),
    "mood index 2 of 2": wider(mood=b"\x04"),
    "mood index -1": wider(mood=b"\x01"),
    "bad UTF-8 in a tag's name": wider(tags=b"\x02\x02\xff\x00\x00"),
    "a tag's union index 2": wider(tags=b"\x02\x02a\x04\x00"),
    "the origin's ok index 2": wider(origin=b"\x00\x04"),
}


@pytest.mark.parametrize("value", WIDER_VALUES.values(), ids=WIDER_VALUES.keys())
def test_odd_fields_the_record_lacks_get_the_codecs_outcome(value: bytes) -> None:
    assert outcome(wider_decode, value) == outcome(wider_reference, value)
    if value in (WIDER_VALUES["valid"], WIDER_VALUES["seen is 2"]):
        assert exact(WIDER_DECODE(value)) == exact(wider_reference(value))  # the fast path


# --- builder ---------------------------------------------------------------------------


def test_a_built_record_equals_the_constructed_one_and_stays_frozen() -> None:
    fields: dict[str, Any] = {
        "idempotency_key": "ledger:b1:payout:v1",
        "member_id": "m1",
        "kind": "payout",
        "amount": Decimal("12.50"),
        "bet_id": "b1",
        "version": 1,
        "posted_at": datetime(2026, 11, 22, 15, 0, tzinfo=UTC),
    }
    built = builder(LedgerEntryPosted)(**fields)
    assert type(built) is LedgerEntryPosted
    assert built == LedgerEntryPosted(**fields)
    assert hash(built) == hash(LedgerEntryPosted(**fields))
    with pytest.raises(dataclasses.FrozenInstanceError):
        built.amount = Decimal("0.00")  # type: ignore[misc]
    assert builder(LedgerEntryPosted) is builder(LedgerEntryPosted)  # compiled once


def test_a_builder_wants_every_field() -> None:
    with pytest.raises(TypeError, match="missing"):
        builder(LedgerEntryPosted)(idempotency_key="k", member_id="m")
