"""Dead letters for operators: read them, filter them, replay them exactly once.

A dead letter (``dlq.<consumer>``) holds the original key and bytes of a record its
consumer could not process, and the reason and origin in headers (:class:`DeadLetter`).
Its id is its own position: ``<dlq topic>/<partition>/<offset>``.

A replay re-publishes a letter to its source topic and partition (same key, same bytes,
header ``scoreline-replay-of: <letter id>``) and, in the same Kafka transaction, records it
on the compacted ``dlq.replayed`` catalog (key: the letter id). Readers of the catalog
(``read_committed``) skip letters already replayed, so a letter is re-published at most
once, and a crash before the commit publishes nothing. One transactional id per dead-letter
topic: a replay that starts fences any replay of the same topic still running (its commit
fails), so two operators cannot both replay a letter either.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from core.exceptions import ConfigurationError, SchemaDecodeError, TransientError
from core.kafka import admin_client, consumer, producer
from core.logging import get_logger
from core.settings import Settings
from core.topics import partition_counts
from schemas.catalog import (
    DLQ_PRODUCERS,
    DLQ_REPLAYED,
    DLQ_SINKS,
    DLQ_STREAMS,
    UnknownTopicError,
    spec,
    topic,
)
from schemas.codec import AvroCodec
from schemas.records import DeadLetter

log = get_logger("ops.dlq")

#: Header of a re-published record: the id of the letter it replays.
REPLAY_HEADER = "scoreline-replay-of"
#: The dead-letter topics (logical names).
DEAD_LETTER_TOPICS = (DLQ_PRODUCERS, DLQ_STREAMS, DLQ_SINKS)
#: Letters re-published per transaction.
REPLAY_BATCH = 100
READ_TIMEOUT_S = 60.0
WHERE_FIELDS = ("error", "message", "source", "key", "offset", "replayed", "decodes")


@dataclass(frozen=True, slots=True, order=True)
class Position:
    """A record's place in Kafka; a letter's position is its id (``topic/partition/offset``)."""

    topic: str
    partition: int
    offset: int

    def __str__(self) -> str:
        return f"{self.topic}/{self.partition}/{self.offset}"

    @classmethod
    def parse(cls, text: str) -> Position:
        """``topic/partition/offset`` back to a position; ValueError when malformed."""
        parts = text.rsplit("/", 2)
        if len(parts) != 3 or not parts[0]:
            raise ValueError(f"not a letter id (topic/partition/offset): {text!r}")
        try:
            return cls(parts[0], int(parts[1]), int(parts[2]))
        except ValueError:
            raise ValueError(f"not a letter id (topic/partition/offset): {text!r}") from None


@dataclass(frozen=True, slots=True)
class Letter:
    """One record of a dead-letter topic; ``reason`` is None when its headers are malformed."""

    id: Position
    timestamp: datetime
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]
    reason: DeadLetter | None
    problem: str = ""

    @property
    def source(self) -> Position | None:
        if self.reason is None:
            return None
        r = self.reason
        return Position(r.source_topic, r.source_partition, r.source_offset)


def letter_from_record(
    position: Position,
    timestamp_ms: int,
    key: bytes | None,
    value: bytes | None,
    headers: Iterable[tuple[str, bytes]],
) -> Letter:
    """A letter from a consumed record; malformed headers give a letter without a reason."""
    kept = tuple((name, bytes(data or b"")) for name, data in headers)
    reason: DeadLetter | None = None
    problem = ""
    try:
        reason = DeadLetter.from_headers(kept)
    except SchemaDecodeError as e:
        problem = str(e)
    when = datetime.fromtimestamp(timestamp_ms / 1000, UTC)
    return Letter(position, when, key, value, kept, reason, problem)


@dataclass(frozen=True, slots=True)
class Replay:
    """One record of ``dlq.replayed``: a letter, where it was re-published, and when."""

    letter: Position
    target: Position
    replayed_at: datetime

    def to_json(self) -> bytes:
        return json.dumps(
            {
                "letter": str(self.letter),
                "topic": self.target.topic,
                "partition": self.target.partition,
                "offset": self.target.offset,
                "replayed_at": self.replayed_at.isoformat(),
            },
            sort_keys=True,
        ).encode()

    @classmethod
    def from_json(cls, data: bytes) -> Replay:
        """Read a catalog record back; ValueError when it is not one."""
        try:
            body = json.loads(data)
            when = datetime.fromisoformat(body["replayed_at"]).astimezone(UTC)
            target = Position(str(body["topic"]), int(body["partition"]), int(body["offset"]))
            return cls(Position.parse(str(body["letter"])), target, when)
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"not a replay record: {e}") from e


@dataclass(frozen=True, slots=True)
class LetterStatus:
    """A letter with what the replay catalog says about it."""

    letter: Letter
    replayed: Replay | None
    replay_of: Position | None  # the letter this one is a failed replay of
    attempts: int  # its own attempts plus those of the letters it replays
    decodes: str = ""  # the record type it decodes to here, or "" (see ``decode_error``)
    decode_error: str = ""
    #: An earlier letter with the same origin (the DLQ is at-least-once, and two consumers
    #: of one topic may both give up on a record): only the earliest is replayed.
    duplicate_of: Position | None = None


def annotate(
    letters: Sequence[Letter],
    replays: Mapping[Position, Replay],
    decode: Callable[[bytes], str] | None = None,
) -> list[LetterStatus]:
    """Join letters with the replay catalog: replayed or not, failed replay of which letter,
    duplicate of which letter.

    ``decode`` (value bytes to a record type name, raising on failure) fills ``decodes``.
    """
    replay_of = {r.target: r.letter for r in replays.values()}
    attempts: dict[Position, int] = {}
    first_by_source: dict[Position, Position] = {}
    statuses = []
    for letter in sorted(letters, key=lambda item: item.id):
        own = letter.reason.attempts if letter.reason is not None else 1
        source = letter.source
        parent = replay_of.get(source) if source is not None else None
        total = own + (attempts.get(parent, 1) if parent is not None else 0)
        attempts[letter.id] = total
        duplicate_of = None
        if source is not None:
            duplicate_of = first_by_source.setdefault(source, letter.id)
            duplicate_of = None if duplicate_of == letter.id else duplicate_of
        decodes, error = "", ""
        if decode is not None:
            try:
                decodes = decode(letter.value or b"")
            except Exception as e:  # any failure is "does not decode here"
                error = f"{type(e).__name__}: {e}"
        replayed = replays.get(letter.id)
        statuses.append(LetterStatus(letter, replayed, parent, total, decodes, error, duplicate_of))
    return statuses


@dataclass(frozen=True, slots=True)
class Where:
    """``--where field=value`` conditions: the same field repeated is OR, fields are AND."""

    conditions: Mapping[str, tuple[str, ...]]
    prefix: str = ""

    @classmethod
    def parse(cls, expressions: Iterable[str], prefix: str = "") -> Where:
        found: dict[str, tuple[str, ...]] = {}
        for expression in expressions:
            name, sep, value = expression.partition("=")
            name = name.strip().lower()
            if not sep or name not in WHERE_FIELDS:
                raise ValueError(
                    f"--where {expression!r}: expected field=value with field one of "
                    f"{', '.join(WHERE_FIELDS)}"
                )
            if name in ("replayed", "decodes") and value.lower() not in ("yes", "no"):
                raise ValueError(f"--where {name}= takes yes or no, not {value!r}")
            if name == "offset":
                parse_partition_offset(value)
            found[name] = (*found.get(name, ()), value.strip())
        return cls(found, prefix)

    def __call__(self, status: LetterStatus) -> bool:
        return all(
            any(self._one(name, value, status) for value in values)
            for name, values in self.conditions.items()
        )

    def _one(self, name: str, value: str, status: LetterStatus) -> bool:
        letter, reason = status.letter, status.letter.reason
        if name == "replayed":
            return (status.replayed is not None) == (value.lower() == "yes")
        if name == "decodes":
            return bool(status.decodes) == (value.lower() == "yes")
        if name == "offset":
            return (letter.id.partition, letter.id.offset) == parse_partition_offset(value)
        if name == "key":
            return letter.key is not None and text_or_base64(letter.key) == value
        if reason is None:
            return False
        if name == "error":
            wanted = value.lower()
            return wanted in (
                reason.error_class.lower(),
                reason.error_class.rsplit(".")[-1].lower(),
            )
        if name == "message":
            return value.lower() in reason.error_message.lower()
        # source=topic[/partition[/offset]], the topic by its logical or physical name
        parts = value.split("/")
        if reason.source_topic not in (parts[0], self.prefix + parts[0]):
            return False
        wanted_numbers = [int(p) for p in parts[1:3] if p.isdigit()]
        actual = (reason.source_partition, reason.source_offset)
        return list(actual[: len(wanted_numbers)]) == wanted_numbers


def parse_partition_offset(text: str) -> tuple[int, int]:
    """``P:O`` (or ``O``, partition 0) as numbers; ValueError when malformed."""
    partition, sep, offset = text.partition(":")
    try:
        return (int(partition), int(offset)) if sep else (0, int(partition))
    except ValueError:
        raise ValueError(f"expected PARTITION:OFFSET, got {text!r}") from None


def text_or_base64(data: bytes) -> str:
    """UTF-8 text when the bytes are printable text, else ``base64:...``."""
    try:
        text = data.decode()
        if text.isprintable():
            return text
    except UnicodeDecodeError:
        pass
    return "base64:" + base64.b64encode(data).decode()


@dataclass(frozen=True, slots=True)
class Planned:
    """One letter in a replay plan: re-published to ``target``, or skipped for ``reason``."""

    status: LetterStatus
    target: tuple[str, int] | None
    reason: str = ""


def refusal(status: LetterStatus, prefix: str, partitions: Mapping[str, int]) -> str:
    """Why a letter cannot be replayed ('' when it can)."""
    letter, source = status.letter, status.letter.source
    if status.replayed is not None:
        r = status.replayed
        return f"already replayed as {r.target} at {r.replayed_at:%Y-%m-%d %H:%M:%S}Z"
    if source is None:
        return f"no origin: {letter.problem}"
    if status.duplicate_of is not None:
        return f"duplicate of {status.duplicate_of} (same origin): replay that one"
    if letter.value is None:
        return "no value (a tombstone): nothing to replay"
    logical = source.topic.removeprefix(prefix) if source.topic.startswith(prefix) else ""
    try:
        spec(logical)
    except UnknownTopicError:
        return f"source topic {source.topic} is not a catalog topic under prefix {prefix!r}"
    if logical.startswith("raw."):
        return (
            "a poller's letter points at the raw record of its fetch, which no stream reads: "
            "fix the adapter and poll again"
        )
    count = partitions.get(source.topic)
    if count is None:
        return f"source topic {source.topic} does not exist"
    if source.partition >= count:
        return f"source partition {source.partition} is gone ({source.topic} has {count})"
    return ""


def plan(
    statuses: Iterable[LetterStatus], prefix: str, partitions: Mapping[str, int]
) -> list[Planned]:
    """What a replay does with each letter: re-publish it to its origin, or skip it."""
    planned = []
    for status in statuses:
        why = refusal(status, prefix, partitions)
        source = status.letter.source
        target = None if why or source is None else (source.topic, source.partition)
        planned.append(Planned(status, target, why))
    return planned


# -- Kafka ------------------------------------------------------------------------------


def dead_letter_topic(name: str, prefix: str) -> str:
    """The physical name of a dead-letter topic given by its logical name."""
    if name not in DEAD_LETTER_TOPICS:
        raise ConfigurationError(
            f"{name!r} is not a dead-letter topic; choose one of {', '.join(DEAD_LETTER_TOPICS)}"
        )
    return topic(name, prefix)


async def read_to_end(reader: AIOKafkaConsumer, name: str, partitions: int) -> list[Any]:
    """Every committed record of ``name`` (read_committed: up to the last stable offsets)."""
    if partitions < 1:
        raise ConfigurationError(f"topic {name} does not exist: run `scoreline topics apply`")
    tps = [TopicPartition(name, p) for p in range(partitions)]
    reader.assign(tps)
    await reader.seek_to_beginning(*tps)
    ends = await reader.end_offsets(tps)
    records: list[Any] = []
    deadline = time.monotonic() + READ_TIMEOUT_S
    while True:
        pending = [tp for tp in tps if await reader.position(tp) < ends[tp]]
        if not pending:
            return records
        if time.monotonic() > deadline:
            raise TransientError(f"{name} not read to its end within {READ_TIMEOUT_S:.0f}s")
        for batch in (await reader.getmany(*pending, timeout_ms=500)).values():
            records.extend(batch)


async def topic_partitions(settings: Settings) -> dict[str, int]:
    """Partitions per existing topic."""
    admin = admin_client(settings)
    await admin.start()
    try:
        return await partition_counts(admin)
    finally:
        await admin.close()


async def load(
    settings: Settings, name: str, *, codec: AvroCodec | None = None
) -> tuple[list[LetterStatus], dict[str, int]]:
    """The letters of a dead-letter topic with their replay status, and partitions per topic."""
    prefix = settings.topic_prefix
    physical = dead_letter_topic(name, prefix)
    partitions = await topic_partitions(settings)
    catalog = topic(DLQ_REPLAYED, prefix)
    reader = consumer(settings)
    await reader.start()
    try:
        replays: dict[Position, Replay] = {}
        for record in await read_to_end(reader, catalog, partitions.get(catalog, 0)):
            try:
                replay = Replay.from_json(record.value or b"")
            except ValueError as e:
                log.warning("dlq.bad_replay_record", offset=record.offset, error=str(e))
                continue
            replays[replay.letter] = replay
        letters = [
            letter_from_record(
                Position(r.topic, r.partition, r.offset),
                r.timestamp,
                r.key,
                r.value,
                r.headers or (),
            )
            for r in await read_to_end(reader, physical, partitions.get(physical, 0))
        ]
    finally:
        await reader.stop()
    decode = None if codec is None else (lambda data: codec.decode(data).schema_name)
    return annotate(letters, replays, decode), partitions


@dataclass(frozen=True, slots=True)
class ReplayRun:
    """What ``replay`` did (or, as a dry run, would do)."""

    planned: list[Planned]
    replayed: list[Replay]
    executed: bool


async def replay(
    settings: Settings,
    name: str,
    where: Where,
    *,
    execute: bool,
    codec: AvroCodec | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ReplayRun:
    """Re-publish the selected letters of ``name`` to their origin, each at most once.

    The transactional producer starts (and fences any earlier replay of this topic) before
    the catalog is read, so what it reads is final: no other replay can commit after it.
    """
    out = None
    physical = dead_letter_topic(name, settings.topic_prefix)
    if execute:
        out = producer(settings, transactional_id=f"scoreline-dlq-replay.{physical}")
    try:
        if out is not None:
            await out.start()
        statuses, partitions = await load(settings, name, codec=codec)
        planned = plan((s for s in statuses if where(s)), settings.topic_prefix, partitions)
        if out is None:
            return ReplayRun(planned, [], executed=False)
        todo = [p for p in planned if p.target is not None]
        done: list[Replay] = []
        if progress is not None:
            progress(0, len(todo))
        for start in range(0, len(todo), REPLAY_BATCH):
            done += await _publish(out, settings.topic_prefix, todo[start : start + REPLAY_BATCH])
            if progress is not None:
                progress(len(done), len(todo))
        return ReplayRun(planned, done, executed=True)
    finally:
        if out is not None:
            await out.stop()


async def _publish(out: Any, prefix: str, batch: Sequence[Planned]) -> list[Replay]:
    """One transaction: the letters to their origin, and their records in the catalog."""
    catalog = topic(DLQ_REPLAYED, prefix)
    try:
        async with out.transaction():
            sends = []
            for item in batch:
                if item.target is None:  # plan() gives only letters with a target here
                    raise ValueError(f"{item.status.letter.id} has nowhere to go")
                target_topic, target_partition = item.target
                letter = item.status.letter
                sends.append(
                    await out.send(
                        target_topic,
                        key=letter.key,
                        value=letter.value,
                        partition=target_partition,
                        headers=[(REPLAY_HEADER, str(letter.id).encode())],
                    )
                )
            sent = await asyncio.gather(*sends)
            now = datetime.now(UTC)
            replays = [
                Replay(item.status.letter.id, Position(m.topic, m.partition, m.offset), now)
                for item, m in zip(batch, sent, strict=True)
            ]
            marks = [
                await out.send(catalog, key=str(r.letter).encode(), value=r.to_json())
                for r in replays
            ]
            await asyncio.gather(*marks)
    except KafkaError as e:
        raise TransientError(
            f"replay transaction failed ({type(e).__name__}: {e}); nothing of its "
            f"{len(batch)} letter(s) was published. Another replay of this topic may have "
            "started: run the replay again, it skips what was replayed"
        ) from e
    for r in replays:
        log.info(
            "dlq.replayed",
            letter=str(r.letter),
            topic=r.target.topic,
            partition=r.target.partition,
            offset=r.target.offset,
        )
    return replays
