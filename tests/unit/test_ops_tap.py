"""How ``scoreline tap`` shows a record: JSON lines that jq reads, whatever the topic holds."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from core.ops.tap import (
    TABLE_COLUMNS,
    TapRecord,
    format_record,
    table_row,
    to_jsonl,
    value_kind,
)
from schemas.catalog import CATALOG, PREDICTIONS_MATCH_STATE, spec
from schemas.codec import AvroCodec
from schemas.records import ScoreAwarded
from tests.unit.test_codec import InMemoryRegistry

SINGLE = AvroCodec()
CONFLUENT = AvroCodec(registry=InMemoryRegistry().client())
AT = datetime(2026, 5, 1, 12, 0, 0, 123000, tzinfo=UTC)
AT_MS = int(AT.timestamp() * 1000)


def an_award() -> ScoreAwarded:
    return ScoreAwarded(
        member_id="m-1",
        board_ids=("tournament:17", "league:l1"),
        points_delta=Decimal("3.50"),
        exact_delta=1,
        reason="exact",
        source="prediction:1001:e-1",
        rule_version=1,
        result_version=1,
        idempotency_key="1001:e-1:1:1",
        awarded_at=AT,
    )


def line_for(topic: str, value: bytes | None, **changes: object) -> dict[str, object]:
    fields: dict[str, object] = {
        "topic": topic,
        "partition": 2,
        "offset": 41,
        "timestamp_ms": AT_MS,
        "key": b"m-1",
        "value": value,
        "headers": (),
    }
    record = TapRecord(**(fields | changes))  # type: ignore[arg-type]
    line = format_record(record, value_kind(spec(topic)), CONFLUENT.decode)
    assert json.loads(to_jsonl(line)) == line, "a line is plain JSON"
    return line


@pytest.mark.parametrize("codec", [SINGLE, CONFLUENT], ids=["single-object", "confluent"])
def test_avro_values_are_decoded_with_decimals_as_strings(codec: AvroCodec) -> None:
    line = line_for("scores", codec.encode(an_award(), "scores"))
    assert line["value_format"] == "avro"
    assert line["schema"] == "ScoreAwarded"
    assert line["wire_format"] == codec.wire_format
    value = line["value"]
    assert isinstance(value, dict)
    assert value["points_delta"] == "3.50"
    assert value["awarded_at"] == "2026-05-01T12:00:00.123+00:00"
    assert value["board_ids"] == ["tournament:17", "league:l1"]
    assert value["idempotency_key"] == "1001:e-1:1:1"


def test_position_timestamp_key_and_headers() -> None:
    headers = (("provider", b"football"), ("sha256", b"\xff\x00"), ("empty", b""))
    line = line_for("raw.football.events", b"{}", headers=headers)
    assert (line["topic"], line["partition"], line["offset"]) == ("raw.football.events", 2, 41)
    assert line["timestamp"] == "2026-05-01T12:00:00.123+00:00"
    assert datetime.fromisoformat(str(line["timestamp"])) == AT
    assert (line["key"], line["key_encoding"]) == ("m-1", "text")
    assert line["headers"] == [
        {"key": "provider", "value": "football"},
        {"key": "sha256", "base64": base64.b64encode(b"\xff\x00").decode()},
        {"key": "empty", "value": ""},
    ]


def test_raw_payloads_are_text_when_utf8_else_base64() -> None:
    payload = '{"event": {"id": 1, "name": "Zürich – Genève"}}'.encode()
    text = line_for("raw.football.events", payload)
    assert (text["value_format"], text["value"]) == ("text", payload.decode())
    binary = line_for("raw.football.events", b"\x1f\x8b\x08\x00gzip")
    assert binary["value_format"] == "base64"
    assert base64.b64decode(str(binary["value"])) == b"\x1f\x8b\x08\x00gzip"


def test_dead_letters_keep_their_original_bytes() -> None:
    original = SINGLE.encode(an_award(), "scores")
    line = line_for("dlq.streams", original)
    assert line["value_format"] == "base64"
    assert base64.b64decode(str(line["value"])) == original


def test_json_internal_topics_are_parsed() -> None:
    state = {"match_id": "1001", "scored": None, "scored_through": 12}
    line = line_for(PREDICTIONS_MATCH_STATE, json.dumps(state).encode())
    assert (line["value_format"], line["value"]) == ("json", state)
    broken = line_for(PREDICTIONS_MATCH_STATE, b"{not json")
    assert (broken["value_format"], broken["value"]) == ("text", "{not json")
    assert "not JSON" in str(broken["error"])


def test_an_undecodable_avro_value_is_shown_as_base64_with_the_reason() -> None:
    line = line_for("fixtures.matches", b"\x07garbage")
    assert line["value_format"] == "base64"
    assert base64.b64decode(str(line["value"])) == b"\x07garbage"
    assert "unknown magic" in str(line["error"])


def test_tombstones_and_binary_keys() -> None:
    line = line_for("fixtures.matches", None, key=b"\xfe\xff")
    assert (line["value_format"], line["value"]) == ("null", None)
    assert line["key_encoding"] == "base64"
    assert base64.b64decode(str(line["key"])) == b"\xfe\xff"
    keyless = line_for("rules", None, key=None)
    assert (keyless["key"], keyless["key_encoding"]) == (None, "null")


def test_every_catalog_topic_has_a_way_to_be_shown() -> None:
    kinds = {s.name: value_kind(s) for s in CATALOG}
    assert kinds["fixtures.matches"] == "avro"
    assert kinds["raw.football.events"] == "bytes"
    assert kinds["dlq.sinks"] == "bytes"
    assert kinds[PREDICTIONS_MATCH_STATE] == "json"
    for s in CATALOG:
        assert (kinds[s.name] == "avro") == bool(s.value_schemas), s.name


def test_a_table_row_is_short_and_has_every_column() -> None:
    line = line_for("scores", SINGLE.encode(an_award(), "scores"))
    row = table_row(line, width=60)
    assert len(row) == len(TABLE_COLUMNS)
    assert row[:4] == ("2", "41", "2026-05-01T12:00:00.123+00:00", "m-1")
    assert row[5].startswith("ScoreAwarded: {")
    assert len(row[5]) == 60
