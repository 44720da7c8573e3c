"""Backward compatibility of Avro schemas: can the new schema read what the old one wrote?

Two checks, both pure: a structural one following Avro's schema-resolution rules (a field
the reader adds needs a default, types must be equal or promotable, enums may not lose
symbols unless the reader has a default, names must match or be aliased, decimals keep
their scale), and a sample one (write sample data with the old schema, read it with the
new one through fastavro). :func:`backward_incompatibilities` returns why not, empty when
compatible.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from fastavro import schemaless_reader, schemaless_writer
from fastavro.schema import expand_schema

from schemas.loader import parse

#: Writer primitive -> reader primitives that can read it (Avro's promotions).
PROMOTIONS: Mapping[str, frozenset[str]] = {
    "int": frozenset({"int", "long", "float", "double"}),
    "long": frozenset({"long", "float", "double"}),
    "float": frozenset({"float", "double"}),
    "string": frozenset({"string", "bytes"}),
    "bytes": frozenset({"bytes", "string"}),
}
_NAMED = ("record", "enum", "fixed")


def backward_incompatibilities(new: Mapping[str, Any], old: Mapping[str, Any]) -> list[str]:
    """Why ``new`` cannot read every value ``old`` wrote; an empty list when it can."""
    reader = expand_schema(parse(dict(new)))
    writer = expand_schema(parse(dict(old)))
    problems = list(_structural(reader, writer, "$"))
    if problems:
        return problems
    return list(_samples(parse(dict(new)), parse(dict(old))))


def is_backward_compatible(new: Mapping[str, Any], old: Mapping[str, Any]) -> bool:
    """True when ``new`` can read every value written with ``old``."""
    return not backward_incompatibilities(new, old)


def _type(schema: Any) -> str:
    if isinstance(schema, list):
        return "union"
    if isinstance(schema, dict):
        return str(schema["type"])
    return str(schema)


def _logical(schema: Any) -> tuple[Any, ...]:
    if not isinstance(schema, dict) or "logicalType" not in schema:
        return ()
    return (schema["logicalType"], schema.get("precision"), schema.get("scale"))


def _readable(reader: Any, writer: Any) -> bool:
    return not any(True for _ in _structural(reader, writer, ""))


def _structural(reader: Any, writer: Any, path: str) -> Iterator[str]:
    rt, wt = _type(reader), _type(writer)
    if wt == "union":
        for i, branch in enumerate(writer):
            yield from _structural(reader, branch, f"{path}<{i}>")
        return
    if rt == "union":
        if not any(_readable(branch, writer) for branch in reader):
            yield f"{path}: the reader union has no branch that reads the writer's {wt}"
        return
    if rt in PROMOTIONS or rt in ("null", "boolean", "double"):
        if rt != wt and rt not in PROMOTIONS.get(wt, frozenset()):
            yield f"{path}: {wt} cannot be read as {rt}"
        else:
            yield from _logical_changes(reader, writer, path)
        return
    if rt != wt:
        yield f"{path}: {wt} cannot be read as {rt}"
        return
    if rt in _NAMED and not _same_name(reader, writer):
        yield f"{path}: {writer['name']} cannot be read as {reader['name']} (no alias)"
        return
    if rt == "array":
        yield from _structural(reader["items"], writer["items"], f"{path}[]")
    elif rt == "map":
        yield from _structural(reader["values"], writer["values"], f"{path}{{}}")
    elif rt == "fixed":
        if reader["size"] != writer["size"]:
            yield f"{path}: fixed size changed from {writer['size']} to {reader['size']}"
        yield from _logical_changes(reader, writer, path)
    elif rt == "enum":
        lost = [s for s in writer["symbols"] if s not in reader["symbols"]]
        if lost and "default" not in reader:
            yield f"{path}: enum {reader['name']} lost symbols {lost} and has no default"
    elif rt == "record":
        yield from _record(reader, writer, path)


def _record(reader: Mapping[str, Any], writer: Mapping[str, Any], path: str) -> Iterator[str]:
    written = {f["name"]: f for f in writer["fields"]}
    for field in reader["fields"]:
        names = [field["name"], *field.get("aliases", ())]
        match = next((written[n] for n in names if n in written), None)
        where = f"{path}.{field['name']}"
        if match is None:
            if "default" not in field:
                yield f"{where}: field added without a default"
        else:
            yield from _structural(field["type"], match["type"], where)


def _same_name(reader: Mapping[str, Any], writer: Mapping[str, Any]) -> bool:
    short = str(writer["name"]).rsplit(".", 1)[-1]
    aliases = {str(a) for a in reader.get("aliases", ())}
    return reader["name"] == writer["name"] or bool({writer["name"], short} & aliases)


def _logical_changes(reader: Any, writer: Any, path: str) -> Iterator[str]:
    old, new = _logical(writer), _logical(reader)
    if old == new:
        return
    if old and new and old[0] == new[0] == "decimal":
        if old[2] != new[2]:
            yield f"{path}: decimal scale changed from {old[2]} to {new[2]}"
        elif (new[1] or 0) < (old[1] or 0):
            yield f"{path}: decimal precision shrank from {old[1]} to {new[1]}"
        return
    yield f"{path}: logical type changed from {old or 'none'} to {new or 'none'}"


def _samples(reader: Any, writer: Any) -> Iterator[str]:
    for label, datum in (("minimal", sample(writer, full=False)), ("full", sample(writer))):
        buffer = io.BytesIO()
        try:
            schemaless_writer(buffer, writer, datum)
            buffer.seek(0)
            schemaless_reader(buffer, writer, reader)
        except Exception as e:  # fastavro raises SchemaResolutionError, ValueError, ...
            yield f"$: a {label} sample written with the old schema does not read: {e}"


def sample(schema: Any, *, full: bool = True) -> Any:
    """A datum of a parsed schema: ``full`` fills every optional part, else leaves it empty."""
    named = schema.get("__named_schemas", {}) if isinstance(schema, dict) else {}
    return _sample(schema, full, named)


def _sample(schema: Any, full: bool, named: Mapping[str, Any]) -> Any:
    if isinstance(schema, str) and schema in named:
        schema = named[schema]
    if isinstance(schema, list):
        branches = [b for b in schema if b != "null"] if full else schema
        return _sample(branches[0] if branches else "null", full, named)
    kind = _type(schema)
    logical = _logical(schema)
    if logical and logical[0] == "decimal":
        return Decimal(1).scaleb(-(logical[2] or 0)) if full else Decimal(0)
    if logical and logical[0].startswith("timestamp"):
        return datetime(2024, 1, 1, tzinfo=UTC)
    simple: dict[str, Any] = {
        "null": None,
        "boolean": full,
        "int": int(full),
        "long": int(full),
        "float": float(full),
        "double": float(full),
        "string": "x" if full else "",
        "bytes": b"x" if full else b"",
    }
    if kind in simple:
        return simple[kind]
    if kind == "fixed":
        return bytes(schema["size"])
    if kind == "enum":
        return schema["symbols"][-1 if full else 0]
    if kind == "array":
        return [_sample(schema["items"], full, named)] if full else []
    if kind == "map":
        return {"k": _sample(schema["values"], full, named)} if full else {}
    return {f["name"]: _sample(f["type"], full, named) for f in schema["fields"]}
