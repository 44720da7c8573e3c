"""The fix for a dead-lettered value written with a schema readers did not know: make it known.

A producer rolled out ahead of the worker writes MatchUpdated with a newer schema (one more
optional field). Its single-object fingerprint is unknown to the worker, which dead-letters
the value. The operator drops that writer schema in ``SCORELINE_WRITER_SCHEMAS_DIR``; every
codec made from the settings then reads those values into the shipped record.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from fastavro import schemaless_writer

from core.exceptions import ConfigurationError, SchemaDecodeError
from core.settings import Settings
from schemas.codec import SINGLE_OBJECT_MAGIC, AvroCodec, load_writer_schemas
from schemas.loader import load_schema, parse, rabin_fingerprint
from schemas.records import MatchUpdated
from tests.builders import a_match

pytestmark = pytest.mark.unit


def newer_match_schema() -> dict[str, Any]:
    """MatchUpdated as a newer producer writes it: one more optional field (the venue)."""
    schema = load_schema("MatchUpdated")
    venue = {"name": "venue", "type": ["null", "string"], "default": None, "doc": "Stadium."}
    schema["fields"] = [*schema["fields"], venue]
    return schema


def written_with(schema: dict[str, Any], match: MatchUpdated, **extra: Any) -> bytes:
    """``match`` encoded by a producer that writes with ``schema`` (single-object)."""
    body = io.BytesIO()
    schemaless_writer(body, parse(schema), {**match.to_avro(), **extra})
    return SINGLE_OBJECT_MAGIC + rabin_fingerprint(schema) + body.getvalue()


def test_a_newer_writer_schema_is_poison_until_it_is_known(tmp_path: Path) -> None:
    schema = newer_match_schema()
    match = a_match("1001", score=(2, 1))
    payload = written_with(schema, match, venue="Anfield")
    with pytest.raises(SchemaDecodeError, match="unknown schema fingerprint"):
        AvroCodec().decode(payload)

    (tmp_path / "MatchUpdated-v2.avsc").write_text(json.dumps(schema))
    settings = Settings(SCORELINE_WRITER_SCHEMAS_DIR=tmp_path)
    assert AvroCodec.from_settings(settings).decode(payload) == match
    assert AvroCodec.from_settings(Settings()).decode(match_bytes(match)) == match


def match_bytes(match: MatchUpdated) -> bytes:
    return AvroCodec().encode(match, "fixtures.matches")


def test_no_directory_means_no_extra_schemas(tmp_path: Path) -> None:
    assert load_writer_schemas(None) == []
    assert load_writer_schemas(tmp_path) == []
    (tmp_path / "notes.txt").write_text("not a schema")
    assert load_writer_schemas(tmp_path) == [], "only *.avsc files are read"


def test_a_missing_directory_fails_at_start(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="is not a directory"):
        AvroCodec.from_settings(Settings(SCORELINE_WRITER_SCHEMAS_DIR=tmp_path / "nope"))


def test_a_schema_the_shipped_one_cannot_read_fails_at_start(tmp_path: Path) -> None:
    schema = load_schema("MatchUpdated")
    schema["fields"] = [f for f in schema["fields"] if f["name"] != "provider"]
    (tmp_path / "MatchUpdated-old.avsc").write_text(json.dumps(schema))
    with pytest.raises(ConfigurationError, match=r"MatchUpdated-old.avsc.*provider"):
        load_writer_schemas(tmp_path)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("{not json", "JSONDecodeError"),
        (json.dumps({"type": "record", "name": "Other", "fields": []}), "not a version"),
        (json.dumps(["null", "string"]), "not a version"),
        (
            json.dumps(
                {
                    "type": "record",
                    "name": "MatchUpdated",
                    "namespace": "scoreline.v1",
                    "fields": [{"name": "x", "type": "nope"}],
                }
            ),
            "UnknownType",
        ),
    ],
)
def test_what_is_not_a_version_of_a_shipped_record_fails_at_start(
    tmp_path: Path, text: str, match: str
) -> None:
    (tmp_path / "bad.avsc").write_text(text)
    with pytest.raises(ConfigurationError, match=rf"bad.avsc.*{match}"):
        load_writer_schemas(tmp_path)
