"""Dead letters end to end: a poison match update reaches dlq.streams with its origin, and
``scoreline dlq replay --execute`` re-publishes it exactly once, through the real CLI and
the real worker process.

The poison is realistic: a producer rolled out ahead of the worker writes MatchUpdated with
a newer schema (one more optional field), whose fingerprint the worker does not know. The
fix is what an operator does: make that writer schema known (SCORELINE_WRITER_SCHEMAS_DIR),
restart the worker, replay. Junk replayed without a fix goes back to the DLQ.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from datetime import timedelta
from pathlib import Path
from typing import Any

from aiokafka.structs import RecordMetadata

from core.kafka import consumer, producer
from core.ops.dlq import REPLAY_HEADER, read_to_end, topic_partitions
from core.settings import Settings
from schemas.catalog import (
    DLQ_REPLAYED,
    DLQ_STREAMS,
    ENTRIES_PREDICTIONS,
    FIXTURES_MATCHES,
    PREDICTIONS_MATCH_STATE,
    RULES,
    SCORES,
    topic,
)
from schemas.codec import AvroCodec
from schemas.records import Game, MatchStatus, RuleSet, ScoreAwarded
from tests.builders import KICKOFF, a_match, a_prediction
from tests.e2e import create_topics
from tests.processes import SCORELINE, Role, role_env
from tests.support import eventually
from tests.unit.test_dlq_fix import newer_match_schema, written_with

GUESSES = {"m001": (2, 1), "m002": (1, 0), "m003": (0, 0)}
TIMEOUT_S = 120


async def read_topic(settings: Settings, name: str) -> list[Any]:
    """Every committed record of a catalog topic (read_committed), all partitions."""
    physical = topic(name, settings.topic_prefix)
    partitions = await topic_partitions(settings)
    reader = consumer(settings)
    await reader.start()
    try:
        return await read_to_end(reader, physical, partitions[physical])
    finally:
        await reader.stop()


async def scoreline(settings: Settings, *args: str, **env: str) -> list[dict[str, Any]]:
    """Run the real ``scoreline`` CLI; its stdout as JSON lines."""
    result = await asyncio.to_thread(
        subprocess.run,
        [SCORELINE, *args, "--format", "jsonl"],
        env=role_env(settings, **env),
        capture_output=True,
        timeout=TIMEOUT_S,
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode(errors="replace")[-3000:]
    return [json.loads(line) for line in result.stdout.decode().splitlines() if line.strip()]


async def end_offsets(settings: Settings, *names: str) -> dict[str, int]:
    return {name: len(await read_topic(settings, name)) for name in names}


async def publish_rules_and_guesses(settings: Settings) -> None:
    codec = AvroCodec()
    prefix = settings.topic_prefix
    out = producer(settings)
    await out.start()
    try:
        rules = RuleSet(
            ruleset_id="predictions:17",
            game=Game.PREDICTIONS,
            version=1,
            params={},
            effective_from=KICKOFF - timedelta(days=1),
        )
        await out.send_and_wait(topic(RULES, prefix), key=b"r", value=codec.encode(rules, RULES))
        for n, (member, guess) in enumerate(GUESSES.items()):
            entry = a_prediction(f"e{n}", member_id=member, match_id="1001", guess=guess)
            await out.send_and_wait(
                topic(ENTRIES_PREDICTIONS, prefix),
                key=b"1001",
                value=codec.encode(entry, ENTRIES_PREDICTIONS),
            )
    finally:
        await out.stop()


async def publish_match_value(
    settings: Settings, key: bytes, value: bytes, partition: int | None = None
) -> RecordMetadata:
    out = producer(settings)
    await out.start()
    try:
        physical = topic(FIXTURES_MATCHES, settings.topic_prefix)
        return await out.send_and_wait(physical, key=key, value=value, partition=partition)
    finally:
        await out.stop()


async def wait_for_letters(settings: Settings, count: int, worker: Role) -> list[Any]:
    async def letters() -> list[Any]:
        assert worker.alive, worker.tail()
        found = await read_topic(settings, DLQ_STREAMS)
        return found if len(found) >= count else []

    return await eventually(letters, timeout=TIMEOUT_S, interval=0.5, what=f"{count} letter(s)")


async def processed_through(settings: Settings, partition: int, worker: Role) -> None:
    """Publish a sentinel match on ``partition`` and wait for its state: the worker has
    processed everything before it on that partition of fixtures.matches."""
    sentinel = a_match("9999", status=MatchStatus.NOTSTARTED, score=(0, 0))
    value = AvroCodec().encode(sentinel, FIXTURES_MATCHES)
    await publish_match_value(settings, b"9999", value, partition)

    async def seen() -> bool:
        assert worker.alive, worker.tail()
        states = await read_topic(settings, PREDICTIONS_MATCH_STATE)
        return any(r.key == b"9999" for r in states)

    await eventually(seen, timeout=TIMEOUT_S, interval=0.5, what="the sentinel processed")


def headers(record: Any) -> dict[str, bytes]:
    return {name: bytes(value) for name, value in record.headers}


async def test_a_poison_match_is_replayed_exactly_once_after_the_fix(
    settings: Settings, roles: dict[str, Role], tmp_path: Path
) -> None:
    prefix, worker = settings.topic_prefix, roles["worker"]
    matches = topic(FIXTURES_MATCHES, prefix)
    await create_topics(settings)
    await publish_rules_and_guesses(settings)
    worker.start()

    schema = newer_match_schema()
    poison = written_with(schema, a_match("1001", score=(2, 1)), venue="Anfield")
    origin = await publish_match_value(settings, b"1001", poison)

    # It lands in the DLQ with its origin.
    (letter,) = await wait_for_letters(settings, 1, worker)
    reason = headers(letter)
    assert (letter.key, letter.value) == (b"1001", poison)
    assert reason["source_topic"] == matches.encode()
    assert int(reason["source_partition"]) == origin.partition
    assert int(reason["source_offset"]) == origin.offset
    assert reason["error_class"] == b"SchemaDecodeError"
    assert b"unknown schema fingerprint" in reason["error_message"]
    letter_id = f"{prefix}dlq.streams/{letter.partition}/{letter.offset}"

    # `dlq list` shows it, not replayed, not decodable here.
    (row,) = await scoreline(settings, "dlq", "list", "--topic", "dlq.streams")
    assert row["id"] == letter_id
    assert row["source"] == f"{matches}/{origin.partition}/{origin.offset}"
    assert (row["error_class"], row["attempts"], row["key"]) == ("SchemaDecodeError", 1, "1001")
    assert (row["replayed"], row["decodes"]) == (False, None)

    # A dry run shows the plan and changes nothing.
    before = await end_offsets(settings, FIXTURES_MATCHES, DLQ_REPLAYED)
    (plan,) = await scoreline(settings, "dlq", "replay", "--topic", "dlq.streams")
    assert (plan["id"], plan["action"]) == (letter_id, "would replay")
    assert plan["to"] == f"{matches}/{origin.partition}"
    assert await end_offsets(settings, FIXTURES_MATCHES, DLQ_REPLAYED) == before

    # The fix: the newer writer schema becomes known; the worker restarts with it.
    schemas_dir = tmp_path / "writer-schemas"
    schemas_dir.mkdir()
    (schemas_dir / "MatchUpdated-venue.avsc").write_text(json.dumps(schema))
    fixed = {"SCORELINE_WRITER_SCHEMAS_DIR": str(schemas_dir)}
    worker.stop()
    worker.env.update(fixed)
    worker.start()

    replay = ["dlq", "replay", "--topic", "dlq.streams", "--where", "error=SchemaDecodeError"]
    (first,) = await scoreline(settings, *replay, "--execute", **fixed)
    assert (first["action"], first["decodes"]) == ("replayed", "MatchUpdated")
    target = first["to"]
    assert target.startswith(f"{matches}/{origin.partition}/")
    (second,) = await scoreline(settings, *replay, "--execute", **fixed)
    assert second["action"] == "skip"
    assert second["reason"].startswith(f"already replayed as {target}")

    # The worker processes the replayed copy, once: one award per guess, no new letter.
    await processed_through(settings, origin.partition, worker)
    codec = AvroCodec()
    awards = [codec.decode(r.value) for r in await read_topic(settings, SCORES)]
    assert all(isinstance(a, ScoreAwarded) for a in awards)
    assert sorted(a.member_id for a in awards) == sorted(GUESSES)  # type: ignore[attr-defined]
    assert len(await read_topic(settings, DLQ_STREAMS)) == 1

    # The source topic carries exactly one replayed copy: same key, same bytes, the header.
    copies = [
        r for r in await read_topic(settings, FIXTURES_MATCHES) if REPLAY_HEADER in headers(r)
    ]
    assert len(copies) == 1
    (copy,) = copies
    assert headers(copy)[REPLAY_HEADER] == letter_id.encode()
    assert (copy.key, copy.value) == (b"1001", poison)
    assert f"{matches}/{copy.partition}/{copy.offset}" == target
    assert len(await read_topic(settings, DLQ_REPLAYED)) == 1

    (row,) = await scoreline(settings, "dlq", "list", "--topic", "dlq.streams", **fixed)
    assert (row["replayed"], row["replayed_to"], row["decodes"]) == (True, target, "MatchUpdated")


async def test_junk_replayed_without_a_fix_goes_back_to_the_dlq(
    settings: Settings, roles: dict[str, Role]
) -> None:
    prefix, worker = settings.topic_prefix, roles["worker"]
    matches = topic(FIXTURES_MATCHES, prefix)
    await create_topics(settings)
    await publish_rules_and_guesses(settings)
    worker.start()
    junk = b"\xde\xad not a value of any schema"
    origin = await publish_match_value(settings, b"1001", junk)
    (first,) = await wait_for_letters(settings, 1, worker)

    (replayed,) = await scoreline(settings, "dlq", "replay", "--topic", "dlq.streams", "--execute")
    assert replayed["action"] == "replayed"
    assert replayed["decode_error"].startswith("SchemaDecodeError: unknown magic")

    # The copy fails again: a new letter whose origin is the copy; the worker goes on.
    letters = await wait_for_letters(settings, 2, worker)
    again = letters[1]
    assert again.value == junk
    assert (
        f"{matches}/{headers(again)['source_partition'].decode()}/"
        + headers(again)["source_offset"].decode()
        == replayed["to"]
    )
    await processed_through(settings, origin.partition, worker)
    assert worker.alive

    rows = await scoreline(settings, "dlq", "list", "--topic", "dlq.streams")
    first_id = f"{prefix}dlq.streams/{first.partition}/{first.offset}"
    assert [(r["id"], r["replayed"], r["replay_of"], r["attempts"]) for r in rows] == [
        (first_id, True, None, 1),
        (f"{prefix}dlq.streams/{again.partition}/{again.offset}", False, first_id, 2),
    ]
    only_new = await scoreline(
        settings, "dlq", "list", "--topic", "dlq.streams", "--where", "replayed=no"
    )
    assert [r["id"] for r in only_new] == [rows[1]["id"]]
