"""``scoreline tap``: any catalog topic as JSON lines (or a table), read_committed.

One JSON object per record::

    {"topic": "fixtures.matches", "partition": 0, "offset": 12,
     "timestamp": "2026-05-01T12:00:00.123+00:00",
     "key": "m-1", "key_encoding": "text",
     "headers": [{"key": "provider", "value": "football"}],
     "value_format": "avro", "schema": "MatchUpdated", "wire_format": "single-object",
     "value": {"match_id": "m-1", "home_score": 2, ...}}

How a value is shown depends on its topic (:func:`value_kind`):

- Avro topics: decoded with :class:`AvroCodec` (single-object or Confluent framing);
  ``value_format`` ``avro``, ``schema`` and ``wire_format`` say what it was. Decimals are
  strings (``"12.50"``), datetimes ISO 8601 in UTC, bytes base64.
- raw provider topics and dead-letter topics: the bytes as they are, ``value_format``
  ``text`` when they are UTF-8, else ``base64``.
- the other byte topics (internal state, the replay catalog): JSON documents, parsed
  (``value_format`` ``json``), else shown as text or base64.

A value that does not decode is shown as base64 with ``error`` saying why; a tombstone
has ``value_format`` ``null``. Header values and keys are text when UTF-8, else base64
(``key_encoding`` / a header's ``base64`` field).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from enum import Enum
from typing import Any, Literal

from aiokafka import TopicPartition

from core import kafka
from core.exceptions import ScorelineError
from core.ops.positions import topic_partitions
from core.settings import Settings
from schemas.catalog import DLQ_PRODUCERS, DLQ_SINKS, DLQ_STREAMS, TopicSpec, spec, topic
from schemas.codec import CONFLUENT_MAGIC, SINGLE_OBJECT_MAGIC, AvroCodec

ValueKind = Literal["avro", "json", "bytes"]
Start = Literal["end", "beginning", "datetime"]

#: Byte topics shown exactly as they are: dead letters hold the original bytes.
_DEAD_LETTER_TOPICS = frozenset({DLQ_PRODUCERS, DLQ_STREAMS, DLQ_SINKS})


def value_kind(topic_spec: TopicSpec) -> ValueKind:
    """How the values of a catalog topic are decoded."""
    if topic_spec.value_schemas:
        return "avro"
    if topic_spec.name.startswith("raw.") or topic_spec.name in _DEAD_LETTER_TOPICS:
        return "bytes"
    return "json"


def iso_utc(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")


def timestamp_iso(millis: int) -> str:
    return iso_utc(datetime.fromtimestamp(millis / 1000, tz=UTC))


def jsonable(value: Any) -> Any:
    """A decoded value with only JSON types: Decimal as str, datetime ISO UTC, bytes base64."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return iso_utc(value)
    if isinstance(value, Enum):
        return jsonable(value.value)
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    return value


def text_or_base64(data: bytes) -> tuple[str, Literal["text", "base64"]]:
    try:
        return data.decode("utf-8"), "text"
    except UnicodeDecodeError:
        return base64.b64encode(data).decode("ascii"), "base64"


def wire_format(data: bytes) -> str:
    if data.startswith(SINGLE_OBJECT_MAGIC):
        return "single-object"
    if data.startswith(CONFLUENT_MAGIC):
        return "confluent"
    return "unknown"


@dataclass(frozen=True, slots=True)
class TapRecord:
    """A record as consumed, before formatting."""

    topic: str  # catalog name
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes]] = ()


def format_value(kind: ValueKind, value: bytes | None, decode: Callable[[bytes], Any]) -> Any:
    """The value fields of a line: value_format, value, and schema/wire_format/error."""
    if value is None:
        return {"value_format": "null", "value": None}
    if kind == "avro":
        try:
            record = decode(value)
        except ScorelineError as e:
            encoded = base64.b64encode(value).decode("ascii")
            return {"value_format": "base64", "value": encoded, "error": str(e)}
        return {
            "value_format": "avro",
            "schema": record.schema_name,
            "wire_format": wire_format(value),
            "value": jsonable(record.to_avro()),
        }
    text, encoding = text_or_base64(value)
    if kind == "json" and encoding == "text":
        try:
            return {"value_format": "json", "value": json.loads(text)}
        except ValueError as e:
            return {"value_format": "text", "value": text, "error": f"not JSON: {e}"}
    return {"value_format": encoding, "value": text}


def format_record(
    record: TapRecord, kind: ValueKind, decode: Callable[[bytes], Any]
) -> dict[str, Any]:
    """One output object (a JSON line) for a record."""
    line: dict[str, Any] = {
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "timestamp": timestamp_iso(record.timestamp_ms),
    }
    if record.key is None:
        line |= {"key": None, "key_encoding": "null"}
    else:
        key, encoding = text_or_base64(record.key)
        line |= {"key": key, "key_encoding": encoding}
    headers = []
    for name, raw in record.headers:
        text, encoding = text_or_base64(raw or b"")
        headers.append(
            {"key": name, "value": text} if encoding == "text" else {"key": name, "base64": text}
        )
    line["headers"] = headers
    line |= jsonable(format_value(kind, record.value, decode))
    return line


def to_jsonl(line: Mapping[str, Any]) -> str:
    return json.dumps(line, ensure_ascii=False, separators=(",", ":"))


TABLE_COLUMNS = ("partition", "offset", "timestamp", "key", "headers", "value")


def table_row(line: Mapping[str, Any], width: int = 120) -> tuple[str, ...]:
    """A line as table cells; the value as compact JSON, cut at ``width`` characters."""
    value = (
        line["value"]
        if line["value_format"] in ("text", "base64")
        else to_jsonl({"v": line["value"]})[5:-1]
    )
    label = line.get("schema") or line["value_format"]
    value = f"{label}: {value}"
    if len(value) > width:
        value = value[: width - 1] + "…"
    headers = ", ".join(h["key"] for h in line["headers"])
    return (
        str(line["partition"]),
        str(line["offset"]),
        line["timestamp"],
        "" if line["key"] is None else str(line["key"]),
        headers,
        value,
    )


@dataclass(frozen=True, slots=True)
class TapOptions:
    topic: str  # catalog name
    start: Start = "end"
    at: datetime | None = None
    key: str | None = None
    limit: int | None = None
    follow: bool = True  # False: stop at the stable end the topic had when the tap began


async def tap(
    settings: Settings,
    options: TapOptions,
    emit: Callable[[dict[str, Any]], None],
    batch_done: Callable[[], None] | None = None,
) -> int:
    """Read ``options.topic`` and ``emit`` each matching line; the number emitted.

    ``batch_done`` is called after each fetched batch (a table flushes its rows there).
    """
    topic_spec = spec(options.topic)
    kind = value_kind(topic_spec)
    physical = topic(options.topic, settings.topic_prefix)
    codec = AvroCodec.from_settings(settings)
    reader = kafka.consumer(settings, client_id="scoreline-tap")
    await reader.start()
    try:
        tps = await topic_partitions(reader, physical)
        reader.assign(tps)
        await _seek(reader, tps, options)
        ends = await reader.end_offsets(tps) if not options.follow else {}
        wanted = None if options.key is None else options.key.encode()
        emitted = 0
        while options.limit is None or emitted < options.limit:
            if not options.follow and await _at_end(reader, tps, ends):
                break
            batch = await reader.getmany(timeout_ms=500, max_records=1000)
            records = sorted(
                (m for messages in batch.values() for m in messages),
                key=lambda m: (m.timestamp, m.partition, m.offset),
            )
            for m in records:
                if wanted is not None and m.key != wanted:
                    continue
                if not options.follow and m.offset >= ends[TopicPartition(m.topic, m.partition)]:
                    continue
                record = TapRecord(
                    options.topic,
                    m.partition,
                    m.offset,
                    m.timestamp,
                    m.key,
                    m.value,
                    tuple(m.headers or ()),
                )
                emit(format_record(record, kind, codec.decode))
                emitted += 1
                if options.limit is not None and emitted >= options.limit:
                    break
            if records and batch_done is not None:
                batch_done()
        return emitted
    finally:
        await reader.stop()
        codec.close()


async def _seek(reader: Any, tps: list[TopicPartition], options: TapOptions) -> None:
    if options.start == "beginning":
        await reader.seek_to_beginning(*tps)
        return
    if options.start == "datetime" and options.at is not None:
        millis = int(options.at.timestamp() * 1000)
        found = await reader.offsets_for_times({tp: millis for tp in tps})
        ends = await reader.end_offsets(tps)
        for tp in tps:
            hit = found.get(tp)
            reader.seek(tp, ends[tp] if hit is None else hit.offset)
        return
    await reader.seek_to_end(*tps)


async def _at_end(reader: Any, tps: list[TopicPartition], ends: dict[TopicPartition, int]) -> bool:
    for tp in tps:
        if await reader.position(tp) < ends[tp]:
            return False
    return True
