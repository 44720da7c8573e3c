"""The ``.avsc`` files shipped in ``schemas/avro``, found through the package, parsed once."""

from __future__ import annotations

import copy
import json
from functools import cache
from importlib.resources import files
from importlib.resources.abc import Traversable
from typing import Any

from fastavro.schema import fingerprint, parse_schema, to_parsing_canonical_form

#: Parsed-schema form fastavro works with; the raw JSON form is a plain dict too.
AvroSchema = dict[str, Any]


def schema_dir() -> Traversable:
    """The folder holding the ``.avsc`` files (inside the installed package)."""
    return files("schemas").joinpath("avro")


@cache
def schema_names() -> tuple[str, ...]:
    """Every schema's short name (its file name without ``.avsc``), sorted."""
    return tuple(
        sorted(
            p.name.removesuffix(".avsc") for p in schema_dir().iterdir() if p.name.endswith(".avsc")
        )
    )


def load_schema(name: str) -> AvroSchema:
    """The schema's JSON exactly as written (what is registered with a schema registry)."""
    return copy.deepcopy(_raw(name))


@cache
def _raw(name: str) -> AvroSchema:
    path = schema_dir().joinpath(f"{name}.avsc")
    if not path.is_file():
        raise KeyError(f"no schema named {name!r}; known: {', '.join(schema_names())}")
    schema: AvroSchema = json.loads(path.read_text(encoding="utf-8"))
    return schema


@cache
def parsed_schema(name: str) -> AvroSchema:
    """The schema parsed by fastavro (ready for its readers and writers)."""
    return parse(_raw(name))


def parse(schema: AvroSchema) -> AvroSchema:
    """A record schema parsed by fastavro; ValueError when it is not a record schema."""
    parsed = parse_schema(schema)
    if not isinstance(parsed, dict) or parsed.get("type") != "record":
        raise ValueError(f"not an Avro record schema: {str(schema)[:80]}")
    return parsed


def fullname(schema: AvroSchema) -> str:
    """``namespace.Name`` of a record schema, raw or parsed."""
    name = str(schema["name"])
    namespace = schema.get("namespace")
    return name if "." in name or not namespace else f"{namespace}.{name}"


def rabin_fingerprint(schema: AvroSchema) -> bytes:
    """CRC-64-AVRO fingerprint of the schema's canonical form, 8 bytes little-endian."""
    canonical = to_parsing_canonical_form(parse(schema))
    return bytes.fromhex(fingerprint(canonical, "CRC-64-AVRO"))
