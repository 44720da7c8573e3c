"""The records mirror the .avsc files; the .avsc files follow the contract's rules."""

from __future__ import annotations

import dataclasses
import json
from typing import Any, get_args, get_type_hints

import avro.schema
import pytest

from schemas.loader import load_schema, parse, rabin_fingerprint, schema_names
from schemas.records import CENTS, PRICE_TICK, RECORD_TYPES, AvroRecord

pytestmark = pytest.mark.unit


def record_schemas(schema: Any) -> list[dict[str, Any]]:
    """Every record schema inside ``schema`` (itself included)."""
    if isinstance(schema, list):
        return [r for branch in schema for r in record_schemas(branch)]
    if not isinstance(schema, dict):
        return []
    found = [schema] if schema["type"] == "record" else []
    for part in (schema.get("items"), schema.get("values")):
        found += record_schemas(part)
    for field in schema.get("fields", ()):
        found += record_schemas(field["type"])
    return found


def fields_of(schema: Any) -> list[dict[str, Any]]:
    return [f for r in record_schemas(schema) for f in r["fields"]]


def test_one_record_class_per_schema() -> None:
    assert set(RECORD_TYPES) == set(schema_names())


def nested_class(hint: Any) -> type[AvroRecord] | None:
    for arg in (hint, *get_args(hint)):
        if isinstance(arg, type) and issubclass(arg, AvroRecord):
            return arg
    return None


def check_mirrors(cls: type[AvroRecord], schema: dict[str, Any]) -> None:
    hints = get_type_hints(cls)
    assert [f.name for f in dataclasses.fields(cls)] == [f["name"] for f in schema["fields"]]
    for f, field in zip(dataclasses.fields(cls), schema["fields"], strict=True):
        where = f"{cls.__name__}.{f.name}"
        if "default" in field:
            default = f.default
            assert default is not dataclasses.MISSING, f"{where}: the schema has a default"
            assert (list(default) if isinstance(default, tuple) else default) == field["default"]
        else:
            assert f.default is dataclasses.MISSING, f"{where}: the schema has no default"
        nested, inner = record_schemas(field["type"]), nested_class(hints[f.name])
        assert (inner is None) == (not nested), where
        if inner is not None:
            assert inner.__name__ == nested[0]["name"], where
            check_mirrors(inner, nested[0])


@pytest.mark.parametrize("name", schema_names())
def test_the_record_mirrors_the_schema_field_for_field(name: str) -> None:
    check_mirrors(RECORD_TYPES[name], load_schema(name))
    assert RECORD_TYPES[name].schema_name == name


@pytest.mark.parametrize("name", schema_names())
def test_schemas_are_documented_and_namespaced(name: str) -> None:
    schema = load_schema(name)
    assert schema["name"] == name
    assert schema["namespace"] == "scoreline.v1"
    assert schema.get("doc")
    for field in fields_of(schema):
        assert field.get("doc"), f"{name}.{field['name']} has no doc"


@pytest.mark.parametrize("name", schema_names())
def test_optional_fields_default_to_null(name: str) -> None:
    for field in fields_of(load_schema(name)):
        if isinstance(field["type"], list) and "null" in field["type"]:
            assert field["type"][0] == "null" and field.get("default", "missing") is None, field


@pytest.mark.parametrize("name", schema_names())
def test_money_points_and_prices_use_the_named_quanta(name: str) -> None:
    def decimals(schema: Any) -> list[dict[str, Any]]:
        if isinstance(schema, list):
            return [d for branch in schema for d in decimals(branch)]
        if not isinstance(schema, dict):
            return []
        if schema.get("logicalType") == "decimal":
            return [schema]
        found = decimals(schema.get("items")) + decimals(schema.get("values"))
        return found + [d for f in schema.get("fields", ()) for d in decimals(f["type"])]

    cents, tick = -int(CENTS.as_tuple().exponent), -int(PRICE_TICK.as_tuple().exponent)
    allowed = {(18, cents), (6, tick), (10, 4)}
    for decimal in decimals(load_schema(name)):
        assert decimal["type"] == "bytes"
        assert (decimal["precision"], decimal["scale"]) in allowed, decimal


@pytest.mark.parametrize("name", schema_names())
def test_timestamps_are_millis(name: str) -> None:
    text = json.dumps(load_schema(name))
    assert "timestamp-micros" not in text and "local-timestamp" not in text
    parse(load_schema(name))


def test_the_fingerprint_is_the_reference_crc_64_avro() -> None:
    # Apache Avro's Python canonical form keeps {"type": "bytes"} for logical types (the spec
    # and Java reduce it to "bytes"), so compare on a schema without logical types.
    schema = {
        "type": "record",
        "name": "Plain",
        "namespace": "scoreline.test",
        "fields": [{"name": "a", "type": "string"}, {"name": "b", "type": ["null", "long"]}],
    }
    reference = avro.schema.parse(json.dumps(schema)).fingerprint("CRC-64-AVRO")
    assert rabin_fingerprint(schema) == bytes(reference)
