"""The fast encoder writes exactly the bytes the codec writes, for every record on a topic.

And for what the codec refuses (a decimal with too many decimals, an int beyond 64 bits)
the same outcome, whatever the caches hold: a value equal to a cached one (``1`` and
``1.000``, ``1`` and ``True``) gets the codec's bytes or error, not the cached bytes.
"""

from __future__ import annotations

import dataclasses
import io
import linecache
import traceback
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from enum import Enum
from functools import cache
from typing import Any, Protocol, cast

import pytest
from fastavro import parse_schema, schemaless_writer
from hypothesis import given, settings
from hypothesis import strategies as st

from core.exceptions import PoisonRecordError
from schemas import fast_encode
from schemas.catalog import CATALOG, FIXTURES_MARKETS, LEADERBOARD_UPDATES, SCORES
from schemas.codec import AvroCodec
from schemas.compatibility import sample
from schemas.fast_encode import RecordEncoder, compile_encoder, long_bytes, string_bytes
from schemas.loader import parsed_schema
from schemas.records import (
    RECORD_TYPES,
    AvroRecord,
    LeaderboardEntryChanged,
    MarketResolved,
    ScoreAwarded,
    SettlementStatus,
    Tiebreaker,
)
from schemas.records.fixtures import MarketKind
from tests.unit.test_codec import REGISTRY, from_schema, records

CODEC = AvroCodec()
NOW = datetime(2026, 11, 22, 15, 0, tzinfo=UTC)
#: (schema, a topic it is a value of) for every Avro value in the catalog.
VALUES = sorted({(name, spec.name) for spec in CATALOG for name in spec.value_schemas})

texts = st.text(max_size=80)
cents = st.decimals(
    min_value=Decimal("-9999999999999999.99"),
    max_value=Decimal("9999999999999999.99"),
    places=2,
    allow_nan=False,
    allow_infinity=False,
)
moments = st.datetimes(
    min_value=datetime(1960, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)
ints = st.integers(-(2**31), 2**31 - 1)


def awards() -> st.SearchStrategy[ScoreAwarded]:
    return st.builds(
        ScoreAwarded,
        member_id=texts,
        board_ids=st.lists(texts, max_size=4).map(tuple),
        points_delta=cents,
        exact_delta=ints,
        total=st.none() | cents,
        reason=texts,
        source=texts,
        rule_version=ints,
        result_version=ints,
        idempotency_key=texts,
        awarded_at=moments,
    )


def lines() -> st.SearchStrategy[LeaderboardEntryChanged]:
    return st.builds(
        LeaderboardEntryChanged,
        board_id=texts,
        member_id=texts,
        total=cents,
        tiebreakers=st.lists(st.builds(Tiebreaker, name=texts, value=cents), max_size=3).map(tuple),
        rank=st.none() | ints,
        version=st.integers(0, 2**62),
        updated_at=moments,
    )


AWARD = ScoreAwarded(
    member_id="m",
    board_ids=(),
    points_delta=Decimal("0.00"),
    reason="r",
    source="s",
    rule_version=1,
    result_version=1,
    idempotency_key="k",
    awarded_at=NOW,
)
LINE = LeaderboardEntryChanged(
    board_id="b", member_id="m", total=Decimal("0.00"), version=1, updated_at=NOW
)
SCORE_ENCODER = RecordEncoder(CODEC, "ScoreAwarded", SCORES, AWARD)
LINE_ENCODER = RecordEncoder(CODEC, "LeaderboardEntryChanged", LEADERBOARD_UPDATES, LINE)


def fields(record: AvroRecord) -> tuple[Any, ...]:
    return tuple(getattr(record, f.name) for f in dataclasses.fields(record))


@cache
def encoder(name: str, topic: str) -> RecordEncoder:
    """One encoder per schema (its caches fill up across the examples)."""
    record = RECORD_TYPES[name].from_avro(sample(parsed_schema(name)))
    return RecordEncoder(CODEC, name, topic, record)


@settings(max_examples=400, deadline=None)
@given(awards())
def test_score_awarded_bytes_equal_the_codec(award: ScoreAwarded) -> None:
    assert SCORE_ENCODER.encode(award) == CODEC.encode(award, SCORES)
    assert SCORE_ENCODER.encode_fields(fields(award)) == CODEC.encode(award, SCORES)
    assert CODEC.decode(SCORE_ENCODER.encode(award)) == award


@settings(max_examples=400, deadline=None)
@given(lines())
def test_leaderboard_line_bytes_equal_the_codec(line: LeaderboardEntryChanged) -> None:
    assert LINE_ENCODER.encode(line) == CODEC.encode(line, LEADERBOARD_UPDATES)
    values = [getattr(line, name) for name in LINE_ENCODER.names]
    assert LINE_ENCODER.encode_fields(values) == CODEC.encode(line, LEADERBOARD_UPDATES)


@pytest.mark.parametrize(("name", "topic"), VALUES)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_every_value_on_a_topic_encodes_as_the_codec(
    name: str, topic: str, data: st.DataObject
) -> None:
    encode = encoder(name, topic)
    record: AvroRecord = data.draw(records(name))
    expected = CODEC.encode(record, topic)
    before = encode.fallbacks
    assert encode.encode(record) == expected
    assert encode.encode(record) == expected  # again: now through the caches
    assert encode.encode_fields(fields(record)) == expected
    assert encode.fallbacks == before  # all of it through the compiled code


def test_every_value_schema_is_compiled() -> None:
    for name, topic in VALUES:
        source = encoder(name, topic).source()
        assert f"def encode_{name}(r):" in source
        assert f"def encode_fields_{name}(values):" in source


def test_the_header_is_the_codecs_in_the_confluent_format_too() -> None:
    confluent = AvroCodec(registry=REGISTRY.client())
    encode = RecordEncoder(confluent, "ScoreAwarded", SCORES, AWARD)
    award = dataclasses.replace(AWARD, board_ids=("a", "b"), total=Decimal("12.50"))
    assert encode.header[:1] == b"\x00"
    assert encode.encode(award) == confluent.encode(award, SCORES)
    assert encode.encode_fields(fields(award)) == confluent.encode(award, SCORES)


def test_cached_values_do_not_leak_between_records() -> None:
    first = SCORE_ENCODER.encode(
        ScoreAwarded(
            member_id="a",
            board_ids=("x",),
            points_delta=Decimal("3.00"),
            reason="outcome",
            source="s",
            rule_version=1,
            result_version=1,
            idempotency_key="k1",
            awarded_at=NOW,
        )
    )
    second = ScoreAwarded(
        member_id="b",
        board_ids=("y", "z"),
        points_delta=Decimal("-3.00"),
        reason="correction",
        source="s",
        rule_version=2,
        result_version=2,
        idempotency_key="k2",
        awarded_at=NOW + timedelta(days=1),
    )
    assert SCORE_ENCODER.encode(second) == CODEC.encode(second, SCORES)
    decoded = CODEC.decode(first)
    assert isinstance(decoded, ScoreAwarded) and decoded.member_id == "a"


# -- values equal to cached ones, and values the codec refuses ------------------------------


def outcome(encode: Callable[..., bytes], *args: Any) -> Any:
    """The bytes ``encode(*args)`` returns, or the type of what it raises."""
    try:
        return encode(*args)
    except Exception as e:
        return type(e)


class Encoders(Protocol):
    """What ``check`` uses of a RecordEncoder."""

    names: tuple[str, ...]
    record_type: type[AvroRecord]

    def encode(self, record: AvroRecord, /) -> bytes: ...

    def encode_fields(self, values: Sequence[Any], /) -> bytes: ...


def check(
    encode: Encoders,
    base: AvroRecord,
    topic: str | Callable[[AvroRecord], bytes],
    changes: list[dict[str, Any]],
) -> None:
    """Each change of ``base``, in order, in reverse, in order again (the caches warm either
    way), gets the outcome the codec gives the record with those values (for ``topic``, or
    the outcome of the function ``topic``), through ``encode`` and through ``encode_fields``.
    """

    def reference(values: tuple[Any, ...]) -> bytes:
        record = encode.record_type(**dict(zip(encode.names, values, strict=True)))
        return topic(record) if callable(topic) else CODEC.encode(record, topic)

    for change in [*changes, *reversed(changes), *changes]:
        values = tuple(change.get(n, v) for n, v in zip(encode.names, fields(base), strict=True))
        expected = outcome(reference, values)
        assert outcome(encode.encode_fields, values) == expected, change
        try:
            record = dataclasses.replace(base, **change)
        except Exception:  # noqa: S112 (the record itself refuses it: encode_fields checked)
            continue
        assert outcome(encode.encode, record) == expected, change


DECIMALS: list[Any] = [
    Decimal("1"),
    Decimal("1.00"),
    Decimal("1.0"),
    Decimal("1.000"),  # equal to the above, but a decimal more than the scale: refused
    Decimal("1E+1"),
    Decimal("10.00"),
    Decimal("-0"),
    Decimal("-0.00"),
    Decimal("0E-5"),
    Decimal("0E+5"),
    Decimal("123456789012345678"),  # 18 digits, unscaled beyond 64 bits: fine
    Decimal("1234567890123456789"),  # 19 digits: more than the precision, refused
    Decimal("12345678901234567.0"),  # 18 digits
    Decimal("NaN"),
    Decimal("Infinity"),
    1,
    True,
    b"\x01",
    "1.00",
]


def test_decimals_equal_in_value_get_the_codecs_outcome() -> None:
    """Decimal('1') and Decimal('1.00') write the same bytes; Decimal('1.000') is refused
    (scale 2) even when an equal decimal is cached, and so are 19 digits (precision 18)."""
    encode = RecordEncoder(CODEC, "ScoreAwarded", SCORES, AWARD)
    assert encode.encode(dataclasses.replace(AWARD, points_delta=Decimal("1"))) == encode.encode(
        dataclasses.replace(AWARD, points_delta=Decimal("1.00"))
    )
    with pytest.raises(PoisonRecordError):
        encode.encode(dataclasses.replace(AWARD, points_delta=Decimal("1.000")))
    with pytest.raises(PoisonRecordError):
        encode.encode_fields(fields(dataclasses.replace(AWARD, total=Decimal("1.000"))))
    check(encode, AWARD, SCORES, [{"points_delta": d} for d in DECIMALS])
    check(encode, AWARD, SCORES, [{"total": d} for d in [None, *DECIMALS]])
    line = RecordEncoder(CODEC, "LeaderboardEntryChanged", LEADERBOARD_UPDATES, LINE)
    tiebreakers = [(Tiebreaker(name="exact", value=d),) for d in DECIMALS]
    check(line, LINE, LEADERBOARD_UPDATES, [{"tiebreakers": t} for t in tiebreakers])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.decimals(allow_nan=False, allow_infinity=False), min_size=1, max_size=5))
def test_any_decimal_gets_the_codecs_outcome(decimals: list[Decimal]) -> None:
    check(SCORE_ENCODER, AWARD, SCORES, [{"points_delta": d, "total": d} for d in decimals])


def test_values_of_other_types_get_the_codecs_outcome() -> None:
    """Ints equal to cached ones (True, 1.0), lists for tuples, bytes for decimals, enums
    for strings, datetimes in other zones or with microseconds, naive datetimes."""
    numbers = [1, True, 1.0, 1.5, Decimal(1), Decimal("2.5"), "1", None]
    numbers += [2**31, -(2**31) - 1, 2**63 - 1, 2**63, -(2**63), -(2**63) - 1]
    encode = RecordEncoder(CODEC, "ScoreAwarded", SCORES, AWARD)
    check(encode, AWARD, SCORES, [{"exact_delta": n, "rule_version": n} for n in numbers])
    check(
        encode,
        AWARD,
        SCORES,
        [
            {"board_ids": ids}
            for ids in [(), ("a",), ["a"], [], "ab", ("a", 1), ("é" * 70,), ("a", "b")]
        ],
    )
    check(
        encode,
        AWARD,
        SCORES,
        [{"reason": r} for r in ["x", "é" * 70, "", SettlementStatus.WON, b"x", 5, None]],
    )
    check(
        encode,
        AWARD,
        SCORES,
        [
            {"awarded_at": t}
            for t in [
                NOW,
                NOW + timedelta(microseconds=1500),
                datetime(1960, 1, 1, 0, 0, 0, 1500, tzinfo=UTC),
                NOW.astimezone(timezone(timedelta(hours=2))),
                datetime(2026, 11, 22, 15, 0),  # naive: the record refuses it
                NOW.timestamp(),
            ]
        ],
    )
    line = RecordEncoder(CODEC, "LeaderboardEntryChanged", LEADERBOARD_UPDATES, LINE)
    check(line, LINE, LEADERBOARD_UPDATES, [{"rank": n, "version": n} for n in numbers])
    check(
        line,
        LINE,
        LEADERBOARD_UPDATES,
        [
            {"tiebreakers": t}
            for t in [
                (),
                (Tiebreaker(name="a", value=Decimal("1.00")),),
                [Tiebreaker(name="a", value=Decimal("1.00"))],
                ({"name": "a", "value": Decimal("1.00")},),
                (Tiebreaker(name="a", value=Decimal("1.00")),) * 70,
                ("a",),
                "ab",
            ]
        ],
    )


class Flag(Enum):
    OFF = 0
    ON = 1


class SameHash(str):
    """Strings that collide in a set, so equal sets can iterate in different orders."""

    def __hash__(self) -> int:
        return 0


def test_booleans_enums_and_optional_strings_get_the_codecs_outcome() -> None:
    resolved = MarketResolved(market_id="m", version=1, resolved_at=NOW)
    encode = RecordEncoder(CODEC, "MarketResolved", FIXTURES_MARKETS, resolved)
    flags = [True, False, 1, 0, "x", "", None, 2.5, Flag.OFF, Flag.ON]
    check(encode, resolved, FIXTURES_MARKETS, [{"void": v} for v in flags])
    kinds = ["binary", "match_1x2", MarketKind.MATCH_1X2, "nope", 0, None, Flag.ON]
    check(encode, resolved, FIXTURES_MARKETS, [{"kind": k} for k in kinds])
    outcomes = [None, "yes", "", "é" * 70, MarketKind.BINARY, b"x", 5]
    check(encode, resolved, FIXTURES_MARKETS, [{"outcome": o, "match_id": o} for o in outcomes])


def test_equal_board_lists_in_another_order_are_not_cached() -> None:
    a, b = SameHash("a"), SameHash("b")
    one, other = frozenset([a, b]), frozenset([b, a])
    assert one == other and list(one) != list(other)
    check(SCORE_ENCODER, AWARD, SCORES, [{"board_ids": one}, {"board_ids": other}])


def test_a_list_of_records_is_read_again_each_time() -> None:
    """Tuples of frozen records are remembered by identity; a list can change in between."""
    line = RecordEncoder(CODEC, "LeaderboardEntryChanged", LEADERBOARD_UPDATES, LINE)
    declared = (Tiebreaker(name="exact", value=Decimal("1.00")),)
    changing = [Tiebreaker(name="exact", value=Decimal("1.00"))]
    for value in ("2.00", "3.00", "3.00"):
        for tiebreakers in (declared, changing):
            values = (*fields(LINE)[:3], tiebreakers, *fields(LINE)[4:])
            record = LeaderboardEntryChanged(**dict(zip(line.names, values, strict=True)))
            assert line.encode_fields(values) == CODEC.encode(record, LEADERBOARD_UPDATES)
        changing[0] = Tiebreaker(name="exact", value=Decimal(value))


# -- shapes no catalog schema has (yet): unions of every kind, nested records, maps -------

SHAPES_SCHEMA = {
    "type": "record",
    "name": "Shapes",
    "namespace": "tests.fast_encode",
    "fields": [
        {
            "name": "maybe_kind",
            "type": ["null", {"type": "enum", "name": "Kind", "symbols": ["binary", "match_1x2"]}],
        },
        {"name": "maybe_flag", "type": ["boolean", "null"]},
        {"name": "maybe_long", "type": ["null", "long"]},
        {
            "name": "maybe_time",
            "type": ["null", {"type": "long", "logicalType": "timestamp-millis"}],
        },
        {"name": "maybe_text", "type": ["string", "null"]},
        {
            "name": "inner",
            "type": {
                "type": "record",
                "name": "Inner",
                "fields": [
                    {"name": "flag", "type": "boolean"},
                    {"name": "kind", "type": "Kind"},
                    {
                        "name": "price",
                        "type": [
                            "null",
                            {"type": "bytes", "logicalType": "decimal", "precision": 6, "scale": 4},
                        ],
                    },
                ],
            },
        },
        {"name": "maybe_inner", "type": ["null", "Inner"]},
        {"name": "inners", "type": {"type": "array", "items": "Inner"}},
        {"name": "counts", "type": {"type": "map", "values": "int"}},
        {
            "name": "nested",
            "type": {"type": "array", "items": {"type": "array", "items": "string"}},
        },
        {"name": "kinds", "type": {"type": "array", "items": "Kind"}},
        {
            "name": "stamps",
            "type": {
                "type": "map",
                "values": {
                    "type": "array",
                    "items": {"type": "long", "logicalType": "timestamp-millis"},
                },
            },
        },
    ],
}
SHAPES: dict[str, Any] = cast(dict[str, Any], parse_schema(SHAPES_SCHEMA))


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Inner(AvroRecord):
    flag: bool
    kind: MarketKind
    price: Decimal | None = None


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Shapes(AvroRecord):
    maybe_kind: MarketKind | None = None
    maybe_flag: bool | None = None
    maybe_long: int | None = None
    maybe_time: datetime | None = None
    maybe_text: str | None = None
    inner: Inner
    maybe_inner: Inner | None = None
    inners: tuple[Inner, ...] = ()
    counts: Mapping[str, int] = dataclasses.field(default_factory=dict)
    nested: tuple[tuple[str, ...], ...] = ()
    kinds: tuple[MarketKind, ...] = ()
    stamps: Mapping[str, tuple[datetime, ...]] = dataclasses.field(default_factory=dict)


def fastavro_bytes(record: AvroRecord) -> bytes:
    """What the codec writes for a Shapes (no header: it is no catalog value)."""
    buffer = io.BytesIO()
    schemaless_writer(buffer, SHAPES, record.to_avro())
    return buffer.getvalue()


@dataclasses.dataclass
class Compiled:
    """The compiled Shapes encoders, the fallbacks counted."""

    names: tuple[str, ...] = tuple(f["name"] for f in SHAPES["fields"])
    record_type: type[AvroRecord] = Shapes
    fallbacks: int = 0

    def __post_init__(self) -> None:
        self.encode, self.encode_fields, self.source = compile_encoder(
            Shapes, SHAPES, b"", self.by_fastavro, self.fields_by_fastavro
        )

    def by_fastavro(self, record: AvroRecord) -> bytes:
        self.fallbacks += 1
        return fastavro_bytes(record)

    def fields_by_fastavro(self, values: Sequence[Any]) -> bytes:
        self.fallbacks += 1
        return fastavro_bytes(Shapes(**dict(zip(self.names, values, strict=True))))


COMPILED = Compiled()


@settings(max_examples=300, deadline=None)
@given(from_schema(SHAPES, SHAPES["__named_schemas"]).map(Shapes.from_avro))
def test_every_shape_encodes_as_fastavro(shapes: Shapes) -> None:
    expected = fastavro_bytes(shapes)
    before = COMPILED.fallbacks
    assert COMPILED.encode(shapes) == expected
    assert COMPILED.encode(shapes) == expected
    assert COMPILED.encode_fields(fields(shapes)) == expected
    # Only a union of null and a record is the codec's (it validates the whole record).
    assert COMPILED.fallbacks == before + (3 if shapes.maybe_inner is not None else 0)


def test_union_branches_take_what_the_codec_takes() -> None:
    shapes = Shapes(inner=Inner(flag=True, kind=MarketKind.BINARY))
    numbers = [1, True, False, 1.0, 0, Decimal(1), "1", 2**31, 2**63 - 1, 2**63, -(2**63) - 1]
    changes: list[dict[str, Any]] = [
        {"maybe_kind": k} for k in [None, "binary", MarketKind.MATCH_1X2, "nope", 0, Flag.ON]
    ]
    changes += [{"maybe_flag": n, "maybe_long": n} for n in [None, *numbers, Flag.OFF]]
    changes += [{"maybe_time": t} for t in [None, NOW, NOW.timestamp(), 5, NOW.date()]]
    changes += [{"maybe_text": t} for t in [None, "x", "é" * 70, MarketKind.BINARY, b"x", 5]]
    prices = [Decimal("0.5"), Decimal("0.50000"), Decimal("12345.6"), Decimal("1E-4"), b"\x01", 1]
    odd: Any = Inner  # deliberately off-type values, as an upstream bug would send them
    changes += [{"inner": odd(flag=True, kind="binary", price=p)} for p in [None, *prices]]
    changes += [{"counts": c} for c in [{}, {"a": 1}, {"a": True, "b": 2**40}, {1: 1}, [("a", 1)]]]
    changes += [{"nested": n} for n in [(), ((),), (("a",), ("b", "c")), [["a"]], ("ab",)]]
    changes += [{"kinds": k} for k in [(), ("binary",), (MarketKind.MATCH_1X2,), ("nope",)]]
    changes += [{"stamps": {"a": (NOW, NOW + timedelta(microseconds=1))}}, {"stamps": {"a": (5,)}}]
    check(COMPILED, shapes, fastavro_bytes, changes)


# -- the API -------------------------------------------------------------------------------


def test_encode_fields_takes_one_value_per_field() -> None:
    values = fields(LINE)
    assert LINE_ENCODER.encode_fields(values) == CODEC.encode(LINE, LEADERBOARD_UPDATES)
    assert LINE_ENCODER.encode_fields(list(values)) == CODEC.encode(LINE, LEADERBOARD_UPDATES)
    assert LINE_ENCODER.encode_fields(iter(values)) == CODEC.encode(LINE, LEADERBOARD_UPDATES)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        LINE_ENCODER.encode_fields(values[:-1])
    with pytest.raises(ValueError):
        LINE_ENCODER.encode_fields((*values, None))
    with pytest.raises(ValueError):
        LINE_ENCODER.encode_fields(())


def test_another_record_type_gets_the_codecs_error() -> None:
    with pytest.raises(TypeError):
        LINE_ENCODER.encode(AWARD)
    with pytest.raises(TypeError):
        RecordEncoder(CODEC, "LeaderboardEntryChanged", LEADERBOARD_UPDATES, AWARD)


def test_caches_stay_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fast_encode, "CACHE_LIMIT", 8)
    encode = RecordEncoder(CODEC, "LeaderboardEntryChanged", LEADERBOARD_UPDATES, LINE)
    caches = {
        name: value
        for name, value in encode.encode.__globals__.items()
        if name.endswith("_cache") and isinstance(value, dict)
    }
    assert caches
    for i in range(100):
        line = dataclasses.replace(
            LINE,
            total=Decimal(i).scaleb(-2),
            tiebreakers=(Tiebreaker(name="exact", value=Decimal(-i)),),
            rank=i,
            version=i,
            updated_at=NOW + timedelta(seconds=i),
        )
        assert encode.encode(line) == CODEC.encode(line, LEADERBOARD_UPDATES)
        assert encode.encode_fields(fields(line)) == CODEC.encode(line, LEADERBOARD_UPDATES)
        assert all(len(c) <= 8 for c in caches.values()), {n: len(c) for n, c in caches.items()}
    assert encode.fallbacks == 0


def test_the_source_is_shown_in_tracebacks() -> None:
    source = SCORE_ENCODER.source()
    assert "def encode_ScoreAwarded(r):" in source
    assert "def encode_fields_ScoreAwarded(values):" in source
    filename = SCORE_ENCODER.encode.__code__.co_filename
    assert filename.startswith("<fast_encode ScoreAwarded ")
    assert "".join(linecache.getlines(filename)) == source
    with pytest.raises(ValueError) as raised:
        SCORE_ENCODER.encode_fields(())
    assert "= values  # ValueError" in "".join(traceback.format_exception(raised.value))


def test_long_bytes_is_avro_zigzag() -> None:
    assert [long_bytes(n) for n in (0, -1, 1, -2, 63, 64)] == [
        b"\x00",
        b"\x01",
        b"\x02",
        b"\x03",
        b"\x7e",
        b"\x80\x01",
    ]
    assert string_bytes("é") == b"\x04\xc3\xa9"
