"""AvroCodec: every schema round-trips in both wire formats; garbage is a SchemaDecodeError.

Records are generated from the ``.avsc`` files themselves, so a new schema is covered the
moment it is added. The Confluent format runs against an in-memory schema registry behind
``httpx.MockTransport``.
"""

from __future__ import annotations

import contextlib
import io
import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import httpx
import pytest
from fastavro import schemaless_writer
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr

from core.exceptions import (
    ConfigurationError,
    PoisonRecordError,
    SchemaDecodeError,
    TransientError,
)
from core.settings import Settings
from schemas.catalog import (
    FIXTURES_MARKETS,
    FIXTURES_MATCHES,
    SETTLEMENTS,
    spec,
    topics_for_schema,
)
from schemas.codec import CONFLUENT_MAGIC, SINGLE_OBJECT_MAGIC, AvroCodec
from schemas.compatibility import sample
from schemas.faust_codecs import build_codecs, codec_name, register_codecs
from schemas.loader import load_schema, parse, parsed_schema, rabin_fingerprint, schema_names
from schemas.records import RECORD_TYPES, AvroRecord, BetSettled, SettlementStatus
from schemas.registry import SchemaRegistryClient

pytestmark = pytest.mark.unit

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ON_A_TOPIC = [n for n in schema_names() if topics_for_schema(n)]
URL = "https://scoreline:s3cret-pw@registry.example:8081"


# -- records generated from the Avro schemas ----------------------------------------------


def from_schema(schema: Any, named: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Avro datums of any (parsed) schema."""
    if isinstance(schema, str) and schema in named:
        return from_schema(named[schema], named)
    if isinstance(schema, list):
        return st.one_of([from_schema(branch, named) for branch in schema])
    kind = schema["type"] if isinstance(schema, dict) else schema
    logical = schema.get("logicalType") if isinstance(schema, dict) else None
    if logical == "decimal":
        limit = 10 ** schema["precision"] - 1
        scale = schema.get("scale", 0)
        return st.integers(-limit, limit).map(lambda n: Decimal(n).scaleb(-scale))
    if logical == "timestamp-millis":
        low, high = -2_208_988_800_000, 7_258_118_400_000  # 1900 to 2200
        return st.integers(low, high).map(lambda ms: EPOCH + timedelta(milliseconds=ms))
    primitives: dict[str, st.SearchStrategy[Any]] = {
        "null": st.none(),
        "boolean": st.booleans(),
        "int": st.integers(-(2**31), 2**31 - 1),
        "long": st.integers(-(2**63), 2**63 - 1),
        "float": st.floats(width=32, allow_nan=False),
        "double": st.floats(allow_nan=False),
        "string": st.text(max_size=20),
        "bytes": st.binary(max_size=20),
    }
    if kind in primitives:
        return primitives[kind]
    if kind == "enum":
        return st.sampled_from(schema["symbols"])
    if kind == "array":
        return st.lists(from_schema(schema["items"], named), max_size=3)
    if kind == "map":
        return st.dictionaries(
            st.text(max_size=8), from_schema(schema["values"], named), max_size=3
        )
    if kind == "record":
        fields = {f["name"]: from_schema(f["type"], named) for f in schema["fields"]}
        return st.fixed_dictionaries(fields)
    raise NotImplementedError(f"no strategy for Avro type {kind!r}: add one here")


def records(name: str) -> st.SearchStrategy[AvroRecord]:
    schema = parsed_schema(name)
    return from_schema(schema, schema["__named_schemas"]).map(RECORD_TYPES[name].from_avro)


# -- an in-memory Confluent schema registry -----------------------------------------------


class InMemoryRegistry:
    """The two endpoints the client uses, over httpx.MockTransport."""

    def __init__(self) -> None:
        self.schemas: dict[int, str] = {}
        self.subjects: dict[str, list[int]] = {}
        self.requests: list[httpx.Request] = []
        self.fail_with: int | None = None

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.fail_with is not None:
            return httpx.Response(self.fail_with, json={"message": "nope"})
        parts = request.url.path.strip("/").split("/")
        if request.method == "POST" and parts[0] == "subjects" and parts[2] == "versions":
            text = json.loads(request.content)["schema"]
            ids = [i for i, known in self.schemas.items() if known == text]
            schema_id = ids[0] if ids else len(self.schemas) + 1
            self.schemas[schema_id] = text
            self.subjects.setdefault(parts[1], []).append(schema_id)
            return httpx.Response(200, json={"id": schema_id})
        if request.method == "GET" and parts[:2] == ["schemas", "ids"]:
            text = self.schemas.get(int(parts[2]))
            if text is None:
                return httpx.Response(404, json={"error_code": 40403, "message": "not found"})
            return httpx.Response(200, json={"schema": text})
        return httpx.Response(404, json={"error_code": 404, "message": "no such endpoint"})

    def client(self, url: str = URL) -> SchemaRegistryClient:
        http = httpx.Client(transport=httpx.MockTransport(self.handle))
        return SchemaRegistryClient(SecretStr(url), client=http)


REGISTRY = InMemoryRegistry()
SINGLE = AvroCodec()
CONFLUENT = AvroCodec(registry=REGISTRY.client())
READER = AvroCodec(registry=REGISTRY.client())  # knows no id until it decodes one


def a_settlement(**changes: Any) -> BetSettled:
    values: dict[str, Any] = {
        "bet_id": "bet-1",
        "member_id": "m-1",
        "status": SettlementStatus.WON,
        "stake": Decimal("10.00"),
        "payout": Decimal("18.50"),
        "version": 1,
        "idempotency_key": "bet-1:1",
        "settled_at": datetime(2024, 5, 1, 12, tzinfo=UTC),
    }
    return BetSettled(**(values | changes))


# -- round trips --------------------------------------------------------------------------


@pytest.mark.parametrize("name", ON_A_TOPIC)
@given(data=st.data())
def test_every_schema_round_trips_in_single_object_encoding(name: str, data: st.DataObject) -> None:
    record = data.draw(records(name))
    payload = SINGLE.encode(record, topics_for_schema(name)[0].name)
    assert payload[:2] == SINGLE_OBJECT_MAGIC
    assert payload[2:10] == SINGLE.fingerprint(name)
    assert SINGLE.decode(payload) == record
    assert CONFLUENT.decode(payload) == record  # readers accept both formats


@pytest.mark.parametrize("name", ON_A_TOPIC)
@given(data=st.data())
def test_every_schema_round_trips_in_confluent_wire_format(name: str, data: st.DataObject) -> None:
    record = data.draw(records(name))
    payload = CONFLUENT.encode(record, topics_for_schema(name)[0].name)
    assert payload[:1] == CONFLUENT_MAGIC
    assert int.from_bytes(payload[1:5], "big") in REGISTRY.schemas
    assert READER.decode(payload) == record  # fetches the writer schema by id


@pytest.mark.parametrize("name", schema_names())
@given(data=st.data())
def test_every_record_round_trips_through_its_avro_dict(name: str, data: st.DataObject) -> None:
    record = data.draw(records(name))
    buffer = io.BytesIO()
    schemaless_writer(buffer, parsed_schema(name), record.to_avro())
    assert type(record).from_avro(record.to_avro()) == record


@given(records("DeadLetter"))
def test_dead_letter_headers_round_trip(record: Any) -> None:
    assert type(record).from_headers(record.to_headers()) == record


def test_faust_codecs_encode_through_the_same_codec() -> None:
    built = build_codecs(SINGLE)
    assert set(built) == {codec_name(n) for n in ON_A_TOPIC}
    record = a_settlement()
    payload = built[codec_name("BetSettled")].dumps(record)
    assert payload == SINGLE.encode(record, SETTLEMENTS)
    assert built[codec_name("BetSettled")].loads(payload) == record
    with pytest.raises(TypeError, match="encodes BetSettled"):
        built[codec_name("BetSettled")].dumps(object())


def test_faust_codecs_are_registered_by_name() -> None:
    from faust.serializers import codecs

    register_codecs(SINGLE)
    assert codecs.loads("avro-BetSettled", codecs.dumps("avro-BetSettled", a_settlement())) == (
        a_settlement()
    )


# -- the registry side --------------------------------------------------------------------


def test_subjects_follow_the_catalog_strategy() -> None:
    registry = InMemoryRegistry()
    codec = AvroCodec(registry=registry.client(), topic_prefix="t1.")
    codec.encode(a_settlement(), SETTLEMENTS)
    market = RECORD_TYPES["MarketResolved"].from_avro(_datum("MarketResolved"))
    codec.encode(market, FIXTURES_MARKETS)
    assert set(registry.subjects) == {
        "t1.settlements-value",
        "t1.fixtures.markets-scoreline.v1.MarketResolved",
    }


def test_registered_ids_are_cached() -> None:
    registry = InMemoryRegistry()
    codec = AvroCodec(registry=registry.client())
    payloads = [codec.encode(a_settlement(version=v), SETTLEMENTS) for v in range(5)]
    assert len(registry.requests) == 1
    assert [codec.decode(p).version for p in payloads] == list(range(5))  # type: ignore[attr-defined]
    assert len(registry.requests) == 1


def test_credentials_go_in_basic_auth_and_never_in_messages() -> None:
    registry = InMemoryRegistry()
    client = registry.client()
    client.register("x-value", load_schema("BetSettled"))
    assert registry.requests[0].headers["authorization"].startswith("Basic ")
    assert "s3cret-pw" not in str(registry.requests[0].url)
    registry.fail_with = 500
    with pytest.raises(TransientError) as error:
        client.register("y-value", load_schema("BetSettled"))
    assert "s3cret-pw" not in str(error.value)
    assert "***" in str(error.value)


@pytest.mark.parametrize(
    ("status", "error"),
    [(500, TransientError), (503, TransientError), (409, ConfigurationError),
     (401, ConfigurationError), (422, ConfigurationError)],
)  # fmt: skip
def test_registry_errors_are_translated(status: int, error: type[Exception]) -> None:
    registry = InMemoryRegistry()
    registry.fail_with = status
    with pytest.raises(error, match=str(status)):
        registry.client().register("x-value", load_schema("BetSettled"))


def test_an_unreachable_registry_is_transient_not_poison() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    http = httpx.Client(transport=httpx.MockTransport(refuse))
    codec = AvroCodec(registry=SchemaRegistryClient(SecretStr(URL), client=http))
    with pytest.raises(TransientError, match="unreachable") as error:
        codec.decode(CONFLUENT_MAGIC + (7).to_bytes(4, "big") + b"\x02")
    assert "s3cret-pw" not in str(error.value)


def test_from_settings_picks_the_wire_format() -> None:
    assert AvroCodec.from_settings(Settings()).wire_format == "single-object"
    settings = Settings(schema_registry_url=SecretStr(URL))
    assert AvroCodec.from_settings(settings).wire_format == "confluent"


# -- what decode refuses ------------------------------------------------------------------


@given(st.binary(max_size=64))
def test_garbage_is_a_schema_decode_error(garbage: bytes) -> None:
    for codec in (SINGLE, CONFLUENT):
        try:
            decoded = codec.decode(garbage)
        except SchemaDecodeError:
            continue
        assert isinstance(decoded, AvroRecord)  # a rare valid value is fine, anything else not


@pytest.mark.parametrize("name", ON_A_TOPIC)
@given(body=st.binary(max_size=64))
def test_a_known_header_and_a_random_body_raise_nothing_else(name: str, body: bytes) -> None:
    for payload in (
        SINGLE_OBJECT_MAGIC + SINGLE.fingerprint(name) + body,
        CONFLUENT_MAGIC + (1).to_bytes(4, "big") + body,
    ):
        with contextlib.suppress(SchemaDecodeError):
            CONFLUENT.decode(payload)


@pytest.mark.parametrize("name", ON_A_TOPIC)
@given(data=st.data())
def test_every_truncation_is_a_schema_decode_error(name: str, data: st.DataObject) -> None:
    topic = topics_for_schema(name)[0].name
    record = data.draw(records(name))
    for codec in (SINGLE, CONFLUENT):
        payload = codec.encode(record, topic)
        cut = data.draw(st.integers(0, len(payload) - 1))
        with pytest.raises(SchemaDecodeError):
            codec.decode(payload[:cut])


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"", "empty value"),
        (b"\x7b\x22json\x22: 1}", "unknown magic"),
        (b"\xc3\x02" + bytes(8), "unknown magic"),
        (b"\xc3\x01\x00\x01", "truncated single-object header"),
        (b"\x00\x00\x01", "truncated Confluent header"),
        (SINGLE_OBJECT_MAGIC + bytes(8) + b"\x00", "unknown schema fingerprint"),
        (CONFLUENT_MAGIC + (999_999).to_bytes(4, "big") + b"\x00", "999999"),
    ],
)
def test_refusals_say_why(payload: bytes, message: str) -> None:
    with pytest.raises(SchemaDecodeError, match=message):
        CONFLUENT.decode(payload)


def test_confluent_bytes_without_a_registry_are_refused() -> None:
    payload = CONFLUENT.encode(a_settlement(), SETTLEMENTS)
    with pytest.raises(SchemaDecodeError, match="no schema registry is configured"):
        SINGLE.decode(payload)


def test_trailing_bytes_are_refused() -> None:
    with pytest.raises(SchemaDecodeError, match="trailing bytes"):
        SINGLE.decode(SINGLE.encode(a_settlement(), SETTLEMENTS) + b"\x00")


def test_non_bytes_are_refused() -> None:
    with pytest.raises(SchemaDecodeError, match="expected bytes"):
        SINGLE.decode("hello")  # type: ignore[arg-type]


# -- what encode refuses ------------------------------------------------------------------


def test_a_value_that_does_not_fit_its_schema_is_poison() -> None:
    with pytest.raises(PoisonRecordError, match="BetSettled"):
        SINGLE.encode(a_settlement(payout=Decimal("1.001")), SETTLEMENTS)
    with pytest.raises(PoisonRecordError):
        SINGLE.encode(a_settlement(stake=Decimal("12345678901234567.89")), SETTLEMENTS)


def test_a_record_goes_only_to_its_catalog_topic() -> None:
    with pytest.raises(TypeError, match="not a value of fixtures.matches"):
        SINGLE.encode(a_settlement(), FIXTURES_MATCHES)


def test_naive_datetimes_are_refused_and_aware_ones_normalized_to_utc_millis() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        a_settlement(settled_at=datetime(2024, 1, 1))
    paris = datetime(2024, 1, 1, 13, 0, 0, 123456, tzinfo=timezone(timedelta(hours=1)))
    assert a_settlement(settled_at=paris).settled_at.tzinfo is UTC
    assert a_settlement(settled_at=paris).settled_at.microsecond == 123000
    assert a_settlement(settled_at=paris).settled_at.hour == 12


# -- older writer schemas -----------------------------------------------------------------


def test_values_written_with_an_older_schema_decode_once_it_is_known() -> None:
    old = load_schema("MatchUpdated")
    old["fields"] = [f for f in old["fields"] if f["name"] != "period"]
    datum = {k: v for k, v in _datum("MatchUpdated").items() if k != "period"}
    buffer = io.BytesIO()
    schemaless_writer(buffer, parse(old), datum)
    payload = SINGLE_OBJECT_MAGIC + rabin_fingerprint(old) + buffer.getvalue()
    with pytest.raises(SchemaDecodeError, match="unknown schema fingerprint"):
        SINGLE.decode(payload)
    codec = AvroCodec(writer_schemas=[old])
    decoded = codec.decode(payload)
    assert decoded.period is None  # type: ignore[attr-defined]
    assert decoded.match_id == datum["match_id"]  # type: ignore[attr-defined]
    assert spec(FIXTURES_MATCHES).value_schemas == ("MatchUpdated",)


def _datum(name: str) -> dict[str, Any]:
    return dict(sample(parsed_schema(name)))
