"""The one Avro codec: records to bytes and back, in either wire format.

Encoding: without a schema registry, Avro single-object encoding (``C3 01``, the 8-byte
little-endian CRC-64-AVRO fingerprint of the schema's canonical form, the body); with one,
the Confluent wire format (``00``, the 4-byte big-endian schema id, the body). Decoding
accepts both whatever is configured, and raises ``SchemaDecodeError`` for anything else.
A registry that is down raises ``TransientError``: those bytes are not poison.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import httpx
from fastavro import schemaless_reader, schemaless_writer

from core.exceptions import ConfigurationError, PoisonRecordError, SchemaDecodeError
from core.settings import Settings
from schemas import catalog
from schemas.compatibility import backward_incompatibilities
from schemas.loader import (
    AvroSchema,
    fullname,
    load_schema,
    parse,
    parsed_schema,
    rabin_fingerprint,
    schema_names,
)
from schemas.records import RECORD_TYPES, AvroRecord
from schemas.registry import SchemaRegistryClient

SINGLE_OBJECT_MAGIC = b"\xc3\x01"
CONFLUENT_MAGIC = b"\x00"
_SINGLE_OBJECT_HEADER = len(SINGLE_OBJECT_MAGIC) + 8
_CONFLUENT_HEADER = len(CONFLUENT_MAGIC) + 4

WireFormat = Literal["single-object", "confluent"]


@dataclass(frozen=True, slots=True)
class _Local:
    """A schema this version ships: what it writes with and reads into."""

    name: str
    fullname: str
    raw: AvroSchema
    parsed: AvroSchema
    fingerprint: bytes
    record_type: type[AvroRecord]


@dataclass(frozen=True, slots=True)
class _Writer:
    """How to read a body written with some schema: that schema, resolved to a local one."""

    schema: AvroSchema
    reader: AvroSchema | None  # None when the writer schema is the local one
    local: _Local


class AvroCodec:
    """Encode records for a catalog topic; decode bytes of either wire format to records.

    ``writer_schemas`` adds other versions of the shipped schemas (older ones, or newer ones
    the shipped schema can read), so single-object values written with them still decode
    (the registry plays that part in the Confluent format); ``from_settings`` loads them
    from ``SCORELINE_WRITER_SCHEMAS_DIR`` (:func:`load_writer_schemas`).
    """

    def __init__(
        self,
        *,
        registry: SchemaRegistryClient | None = None,
        topic_prefix: str = "",
        writer_schemas: Iterable[Mapping[str, Any]] = (),
    ) -> None:
        self._registry = registry
        self._prefix = topic_prefix
        self._local: dict[str, _Local] = {}
        self._by_fullname: dict[str, _Local] = {}
        self._by_fingerprint: dict[bytes, _Writer] = {}
        self._by_id: dict[int, _Writer] = {}
        for name in schema_names():
            raw = load_schema(name)
            local = _Local(
                name=name,
                fullname=fullname(raw),
                raw=raw,
                parsed=parsed_schema(name),
                fingerprint=rabin_fingerprint(raw),
                record_type=RECORD_TYPES[name],
            )
            self._local[name] = local
            self._by_fullname[local.fullname] = local
            self._by_fingerprint[local.fingerprint] = _Writer(local.parsed, None, local)
        for schema in writer_schemas:
            self.add_writer_schema(schema)

    @classmethod
    def from_settings(
        cls, settings: Settings, *, http_client: httpx.Client | None = None
    ) -> AvroCodec:
        """The codec the settings ask for: Confluent format when a registry URL is set."""
        url = settings.schema_registry_url
        registry = None if url is None else SchemaRegistryClient(url, client=http_client)
        return cls(
            registry=registry,
            topic_prefix=settings.topic_prefix,
            writer_schemas=load_writer_schemas(settings.writer_schemas_dir),
        )

    def close(self) -> None:
        """Close the schema registry client, if any."""
        if self._registry is not None:
            self._registry.close()

    @property
    def wire_format(self) -> WireFormat:
        return "single-object" if self._registry is None else "confluent"

    def fingerprint(self, schema_name: str) -> bytes:
        """The 8-byte single-object fingerprint of a shipped schema."""
        return self._local[schema_name].fingerprint

    def add_writer_schema(self, schema: Mapping[str, Any]) -> None:
        """Accept single-object values written with ``schema`` (an older version)."""
        raw = dict(schema)
        local = self._by_fullname.get(fullname(raw))
        if local is None:
            raise ValueError(f"{fullname(raw)} is not a record this version ships")
        parsed = parse(raw)
        self._by_fingerprint.setdefault(rabin_fingerprint(raw), self._writer(parsed, local))

    def encode(self, record: AvroRecord, topic: str) -> bytes:
        """The value bytes of ``record`` for the catalog topic ``topic`` (logical name)."""
        local = self._local.get(record.schema_name)
        spec = catalog.spec(topic)
        if local is None or not isinstance(record, local.record_type):
            raise TypeError(f"{type(record).__name__} is not a top-level Avro record")
        if local.name not in spec.value_schemas:
            raise TypeError(
                f"{local.name} is not a value of {topic}; the catalog allows "
                f"{', '.join(spec.value_schemas) or 'raw bytes only'}"
            )
        buffer = io.BytesIO()
        try:
            schemaless_writer(buffer, local.parsed, record.to_avro())
        except Exception as e:  # fastavro raises ValueError, TypeError, ... for a bad value
            raise PoisonRecordError(f"{local.name} does not fit its schema: {e}") from e
        if self._registry is None:
            return SINGLE_OBJECT_MAGIC + local.fingerprint + buffer.getvalue()
        subject = spec.value_subject(local.fullname, self._prefix)
        schema_id = self._registry.register(subject, local.raw)
        self._by_id.setdefault(schema_id, _Writer(local.parsed, None, local))
        return CONFLUENT_MAGIC + schema_id.to_bytes(4, "big") + buffer.getvalue()

    def decode(self, data: bytes) -> AvroRecord:
        """The record in ``data``, in either wire format; SchemaDecodeError if it holds none."""
        if not isinstance(data, bytes | bytearray | memoryview):
            raise SchemaDecodeError(f"expected bytes, got {type(data).__name__}")
        data = bytes(data)
        if not data:
            raise SchemaDecodeError(
                "empty value: expected Avro single-object (C3 01) or Confluent (00) framing"
            )
        if data.startswith(SINGLE_OBJECT_MAGIC):
            if len(data) < _SINGLE_OBJECT_HEADER:
                raise SchemaDecodeError(f"truncated single-object header ({len(data)} bytes)")
            fp = data[len(SINGLE_OBJECT_MAGIC) : _SINGLE_OBJECT_HEADER]
            writer = self._by_fingerprint.get(fp)
            if writer is None:
                raise SchemaDecodeError(
                    f"unknown schema fingerprint {fp.hex()} (single-object encoding): "
                    "not a schema this version knows"
                )
            return self._read(writer, data[_SINGLE_OBJECT_HEADER:])
        if data.startswith(CONFLUENT_MAGIC):
            if len(data) < _CONFLUENT_HEADER:
                raise SchemaDecodeError(f"truncated Confluent header ({len(data)} bytes)")
            schema_id = int.from_bytes(data[1:_CONFLUENT_HEADER], "big")
            return self._read(self._writer_for_id(schema_id), data[_CONFLUENT_HEADER:])
        raise SchemaDecodeError(
            f"unknown magic {data[:2].hex(' ')}: expected c3 01 (Avro single-object) "
            "or 00 (Confluent wire format)"
        )

    def _writer_for_id(self, schema_id: int) -> _Writer:
        cached = self._by_id.get(schema_id)
        if cached is not None:
            return cached
        if self._registry is None:
            raise SchemaDecodeError(
                f"Confluent-framed value with schema id {schema_id}, "
                "but no schema registry is configured"
            )
        schema = self._registry.get_schema(schema_id)
        local = self._by_fullname.get(fullname(schema)) if "name" in schema else None
        if local is None:
            raise SchemaDecodeError(
                f"schema id {schema_id} is {schema.get('name')!r}, not a record this version knows"
            )
        try:
            parsed = parse(schema)
        except Exception as e:  # fastavro raises several types for a malformed schema
            raise SchemaDecodeError(f"schema id {schema_id} does not parse: {e}") from e
        writer = self._writer(parsed, local)
        self._by_id[schema_id] = writer
        return writer

    @staticmethod
    def _writer(parsed: AvroSchema, local: _Local) -> _Writer:
        return _Writer(parsed, None if parsed == local.parsed else local.parsed, local)

    @staticmethod
    def _read(writer: _Writer, body: bytes) -> AvroRecord:
        name = writer.local.name
        buffer = io.BytesIO(body)
        try:
            datum = schemaless_reader(buffer, writer.schema, writer.reader)
        except Exception as e:  # corrupt bodies raise EOFError, ValueError, IndexError, ...
            raise SchemaDecodeError(
                f"{name} body does not decode ({len(body)} bytes): {type(e).__name__}: {e}"
            ) from e
        if buffer.tell() != len(body):
            raise SchemaDecodeError(
                f"{name} body has {len(body) - buffer.tell()} trailing bytes after the value"
            )
        if not isinstance(datum, dict):
            raise SchemaDecodeError(f"{name} body is not a record")
        try:
            return writer.local.record_type.from_avro(datum)
        except (KeyError, ValueError, TypeError, OverflowError) as e:
            raise SchemaDecodeError(f"{name} value is invalid: {type(e).__name__}: {e}") from e


def load_writer_schemas(directory: Path | None) -> list[AvroSchema]:
    """The ``*.avsc`` writer schemas in ``directory`` (none when it is None), checked.

    Each must be a version of a record this version ships that the shipped schema can
    read (Avro schema resolution: an older version, or a newer one whose added fields the
    reader ignores). Anything else is a ConfigurationError naming the file, so a role
    fails at start instead of dead-lettering what it was meant to read.
    """
    if directory is None:
        return []
    if not directory.is_dir():
        raise ConfigurationError(f"SCORELINE_WRITER_SCHEMAS_DIR {directory} is not a directory")
    shipped = {fullname(load_schema(name)): name for name in schema_names()}
    schemas: list[AvroSchema] = []
    for path in sorted(directory.glob("*.avsc")):
        try:
            schema = json.loads(path.read_text(encoding="utf-8"))
            name = shipped.get(fullname(schema)) if isinstance(schema, dict) else None
            if name is None:
                raise ValueError("not a version of a record this version ships")
            problems = backward_incompatibilities(load_schema(name), schema)
        except Exception as e:  # unreadable file, bad JSON, fastavro's parse errors
            raise ConfigurationError(f"writer schema {path}: {type(e).__name__}: {e}") from e
        if problems:
            raise ConfigurationError(
                f"writer schema {path}: the shipped {name} cannot read it: {'; '.join(problems)}"
            )
        schemas.append(schema)
    return schemas
