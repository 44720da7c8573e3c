"""``scoreline tap`` on every catalog topic: each line is a JSON object jq can read.

One record (two for raw topics: UTF-8 and binary; one per value schema for Avro topics)
goes to every topic of the catalog; the tap of each topic from the beginning must print
exactly those, as JSON lines with position, timestamp, key, headers and the decoded value.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

from typer.main import get_command
from typer.testing import CliRunner

from core import kafka
from core.cli import app as cli_app
from core.settings import Settings
from core.topics import apply_catalog
from schemas.catalog import CATALOG, SCORES, TopicSpec, topic
from schemas.codec import AvroCodec
from schemas.compatibility import sample
from schemas.loader import parsed_schema
from schemas.records import RECORD_TYPES, DeadLetter
from tests.integration.test_ops_offsets import invoke
from tests.processes import scoreline
from tests.support import eventually

FIELDS = {
    "topic",
    "partition",
    "offset",
    "timestamp",
    "key",
    "key_encoding",
    "headers",
    "value_format",
    "value",
}
BINARY = b"\x89PNG\r\n\x1a\n\x00\xff"
HEADER = ("origin", b"test_ops_tap")


def payloads(spec: TopicSpec, codec: AvroCodec) -> list[tuple[bytes, str, str | None]]:
    """(value, expected value_format, expected schema) of the records a topic gets."""
    if spec.value_schemas:
        return [
            (
                codec.encode(RECORD_TYPES[name].from_avro(sample(parsed_schema(name))), spec.name),
                "avro",
                name,
            )
            for name in spec.value_schemas
        ]
    if spec.name.startswith("raw."):
        return [('{"provider": "replay", "ü": 1}'.encode(), "text", None), (BINARY, "base64", None)]
    if spec.name.startswith("dlq.") and spec.name != "dlq.replayed":
        return [(BINARY, "base64", None)]
    return [(json.dumps({"id": spec.name, "n": 1}).encode(), "json", None)]


async def publish_one_of_each(settings: Settings) -> dict[str, list[tuple[str, str | None]]]:
    codec = AvroCodec.from_settings(settings)
    out = kafka.producer(settings)
    await out.start()
    letter = DeadLetter(
        error_class="SchemaDecodeError",
        error_message="unknown magic",
        source_topic=topic(SCORES, settings.topic_prefix),
        source_partition=0,
        source_offset=3,
        attempts=1,
        failed_at=datetime(2026, 5, 1, tzinfo=UTC),
    )
    expected: dict[str, list[tuple[str, str | None]]] = {}
    try:
        for spec in CATALOG:
            headers = [HEADER, *(letter.to_headers() if spec.name.startswith("dlq.") else [])]
            for i, (value, value_format, schema) in enumerate(payloads(spec, codec)):
                await out.send_and_wait(
                    topic(spec.name, settings.topic_prefix),
                    key=f"key-{i}".encode(),
                    value=value,
                    headers=headers,
                )
                expected.setdefault(spec.name, []).append((value_format, schema))
    finally:
        await out.stop()
        codec.close()
    return expected


def check_line(line: dict[str, Any], topic_name: str) -> None:
    assert line.keys() >= FIELDS, f"{topic_name}: missing {FIELDS - line.keys()}"
    assert line["topic"] == topic_name
    assert isinstance(line["partition"], int) and isinstance(line["offset"], int)
    assert datetime.fromisoformat(line["timestamp"]).utcoffset() is not None
    assert line["key"].startswith("key-") and line["key_encoding"] == "text"
    assert {"key": "origin", "value": "test_ops_tap"} in line["headers"]


async def test_every_catalog_topic_taps_as_json_lines(settings: Settings) -> None:
    await apply_catalog(settings)
    expected = await publish_one_of_each(settings)
    assert set(expected) == {s.name for s in CATALOG}
    for spec in CATALOG:
        result = await invoke(settings, "tap", spec.name, "--from-beginning")
        assert result.exit_code == 0, (spec.name, result.output)
        lines = [json.loads(text) for text in result.stdout.splitlines()]
        for line in lines:
            check_line(line, spec.name)
        got = sorted((line["value_format"], line.get("schema")) for line in lines)
        assert got == sorted(expected[spec.name]), spec.name
        if spec.value_schemas:  # Decimals as strings, datetimes ISO: nothing but JSON types
            for line in lines:
                assert "error" not in line, line
        if spec.name.startswith("dlq.") and spec.name != "dlq.replayed":
            names = {h["key"] for h in lines[0]["headers"]}
            assert {"error_class", "source_topic", "source_offset"} <= names


async def test_key_limit_and_table(settings: Settings) -> None:
    await apply_catalog(settings)
    await publish_one_of_each(settings)
    raw = "raw.football.events"
    keyed = await invoke(settings, "tap", raw, "--from-beginning", "--key", "key-1")
    lines = [json.loads(text) for text in keyed.stdout.splitlines()]
    assert [(line["key"], line["value_format"]) for line in lines] == [("key-1", "base64")]
    limited = await invoke(settings, "tap", raw, "--from-beginning", "--limit", "1")
    assert len(limited.stdout.splitlines()) == 1
    since = await invoke(settings, "tap", raw, "--from-datetime", "2020-01-01T00:00:00Z")
    assert len(since.stdout.splitlines()) == 2, "every record is after 2020; then it stops"
    future = await invoke(settings, "tap", raw, "--from-datetime", "2099-01-01T00:00:00+01:00")
    assert (future.exit_code, future.stdout) == (0, "")
    shown = await invoke(settings, "tap", raw, "--from-beginning", "--format", "table")
    assert shown.exit_code == 0, shown.output
    assert "partition" in shown.stdout and "text: " in shown.stdout and "base64: " in shown.stdout


async def test_tap_follows_the_end_until_its_limit(settings: Settings) -> None:
    """Without --from-*, the tap starts at the end and prints what arrives (a real process)."""
    await apply_catalog(settings)
    name = topic("raw.f1.results", settings.topic_prefix)
    follower = asyncio.create_task(scoreline(settings, "tap", "raw.f1.results", "--limit", "2"))
    out = kafka.producer(settings)
    await out.start()
    sent: list[int] = []
    try:

        async def produced_until_done() -> bool:
            if follower.done():
                return True
            record = await out.send_and_wait(name, key=b"race", value=b"tick", partition=0)
            sent.append(record.offset)
            return False

        # One record every 0.3 s until the tap has printed its two and exited.
        await eventually(produced_until_done, timeout=90, interval=0.3, what="the tap to stop")
    finally:
        await out.stop()
    result = await follower
    assert result.code == 0, result
    lines = [json.loads(text) for text in result.stdout.splitlines()]
    assert len(lines) == 2
    assert all(line["offset"] in sent and line["value"] == "tick" for line in lines)
    assert lines[1]["offset"] == lines[0]["offset"] + 1, "consecutive records, none skipped"


def test_tap_help_documents_every_option() -> None:
    result = CliRunner().invoke(cli_app, ["tap", "--help"], env={"TERMINAL_WIDTH": "200"})
    assert result.exit_code == 0, result.output
    shown = " ".join(result.stdout.split())
    tap: Any = get_command(cli_app).commands["tap"]  # type: ignore[attr-defined]
    for param in tap.params:
        if param.name == "help":
            continue
        assert param.help, f"{param.name} has no help text"
        assert " ".join(param.help.split())[:40] in shown, f"{param.name}: help not shown"
        for opt in [*param.opts, *param.secondary_opts]:
            if opt.startswith("-"):
                assert opt in shown, f"{opt} missing from --help"
