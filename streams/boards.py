"""The boards stage: ``scores`` (keyed by member) in, absolute totals out.

Each ScoreAwarded adds its delta to the member's total on each of its boards, once per
idempotency key; every total that changed goes out on ``leaderboard.updates`` as a
LeaderboardEntryChanged with the absolute total, the exact-score count (the declared
tiebreaker) and a version that grows with every change of that (board, member).

It is a plain aiokafka consume-transform-produce loop with Kafka transactions
(read_committed in, one transactional producer, offsets sent to the transaction), not a
Faust agent: Faust's consumer path tops out near 5,800 events/s here even in batches
(``ingest_entries_per_s`` in BENCHMARKS.md; about 500/s one event at a time with a send
each), and a finished match fans out to one award per entry. The partitions are
assigned, not subscribed: the embedded broker's group rebalances are unreliable
(docs/broker.md), and a static assignment behaves the same on Apache Kafka. Its state has
no changelog: ``scores`` up to the committed offset is the changelog, folded again on start.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError, ProducerFenced

from core.exceptions import SchemaDecodeError
from core.kafka import BatchSender, admin_client, consumer, producer
from core.logging import get_logger
from core.settings import Settings
from schemas.catalog import LEADERBOARD_UPDATES, SCORES, spec, topic
from schemas.codec import AvroCodec
from schemas.fast_decode import RecordDecoder
from schemas.fast_encode import RecordEncoder
from schemas.records import LeaderboardEntryChanged, ScoreAwarded, Tiebreaker
from streams.dlq import dead_letter
from streams.rules.boards import EXACT_SCORES
from streams.state import committed_offset, read_partition

log = get_logger("streams.boards")

MAX_BATCH = 20_000
#: Producer batch size (bytes): below the broker's default message.max.bytes (1 MiB + 12).
BATCH_BYTES = 1 << 20


@dataclass(slots=True)
class Standing:
    total: Decimal = Decimal("0.00")
    exact_count: int = 0
    version: int = 0


@dataclass(slots=True)
class BoardTotals:
    """Totals per (board, member), each award applied once by its idempotency key."""

    standings: dict[tuple[str, str], Standing] = field(default_factory=dict)
    applied: set[str] = field(default_factory=set)

    def apply(self, award: ScoreAwarded) -> list[tuple[tuple[str, str], Standing]]:
        """Add an award; the (board, member) lines whose standing changed, with it."""
        if award.idempotency_key in self.applied:
            return []
        self.applied.add(award.idempotency_key)
        changed = []
        for board_id in award.board_ids:
            key = (board_id, award.member_id)
            standing = self.standings.get(key)
            if standing is None:
                standing = self.standings[key] = Standing()
            standing.total += award.points_delta
            standing.exact_count += award.exact_delta
            standing.version += 1
            changed.append((key, standing))
        return changed


def update_fields(
    changed: Mapping[tuple[str, str], Standing], now: datetime
) -> Iterator[tuple[str, tuple[Any, ...]]]:
    """(board_id, LeaderboardEntryChanged field values) per changed (board, member).

    One absolute update per line, in first-changed order. Field values in schema order, for
    ``RecordEncoder.encode_fields``: the hot path never builds the record objects.
    """
    tiebreakers: dict[int, tuple[Tiebreaker, ...]] = {}
    for (board_id, member_id), standing in changed.items():
        exact = standing.exact_count
        declared = tiebreakers.get(exact)
        if declared is None:
            declared = (Tiebreaker(name=EXACT_SCORES, value=Decimal(exact)),)
            tiebreakers[exact] = declared
        fields = (board_id, member_id, standing.total, declared, None, standing.version, now)
        yield board_id, fields


def line_encoder(codec: AvroCodec) -> RecordEncoder:
    """The fast LeaderboardEntryChanged encoder (one record per changed line)."""
    sample = LeaderboardEntryChanged(
        board_id="", member_id="", total=Decimal("0.00"), version=0, updated_at=datetime.now(UTC)
    )
    return RecordEncoder(codec, "LeaderboardEntryChanged", LEADERBOARD_UPDATES, sample)


class BoardsProcessor:
    """Runs the boards stage over some (by default all) partitions of ``scores``."""

    def __init__(self, settings: Settings, partitions: Iterable[int] | None = None) -> None:
        self.settings = settings
        self.prefix = settings.topic_prefix
        self.codec = AvroCodec.from_settings(settings)
        self.decode = RecordDecoder(self.codec, ["ScoreAwarded"])
        count = spec(SCORES).partitions
        self.partitions = sorted(set(partitions) if partitions is not None else range(count))
        self.scores = [TopicPartition(topic(SCORES, self.prefix), p) for p in self.partitions]
        self.group_id = f"{self.prefix}scoreline-boards"
        suffix = "-".join(str(p) for p in self.partitions)
        self.transactional_id = f"{self.group_id}-{suffix}"
        self.totals = BoardTotals()
        self._encoder = line_encoder(self.codec)

    async def run(self, stop: asyncio.Event) -> None:
        # Whole 1 MiB batches: the producer hands a partition one batch at a time, and the
        # tournament board puts every update of a fan-out on one partition.
        out = producer(
            self.settings,
            transactional_id=self.transactional_id,
            linger_ms=20,
            max_batch_size=BATCH_BYTES,
        )
        reader = consumer(self.settings, max_partition_fetch_bytes=8 * 1024 * 1024)
        admin = admin_client(self.settings)
        await out.start()  # init_transactions: fences an older instance, aborts its txn
        await reader.start()
        await admin.start()
        try:
            restored, delay = False, 0.2
            while not stop.is_set():
                try:
                    if not restored:
                        await self._restore(reader, admin)
                        restored, delay = True, 0.2
                    await self._loop(reader, out, stop)
                except ProducerFenced:
                    log.error("boards.fenced", transactional_id=self.transactional_id)
                    raise
                except (KafkaError, TimeoutError) as e:
                    # A transaction aborted (the in-memory totals ran ahead of what
                    # committed) or the broker did not answer (a restore cut short): fold
                    # the totals again from the committed offsets, after a pause.
                    log.warning("boards.retry", error=type(e).__name__, detail=str(e))
                    restored = False
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 5.0)
        finally:
            await reader.stop()
            await out.stop()
            await admin.close()

    async def _restore(self, reader: AIOKafkaConsumer, admin: AIOKafkaAdminClient) -> None:
        self.totals = BoardTotals()
        positions = {}
        for tp in self.scores:
            until = await committed_offset(admin, self.group_id, tp)
            async for _offset, _key, value in read_partition(reader, tp, until):
                award = self._decode(value)
                if award is not None:
                    self.totals.apply(award)
            positions[tp] = until
        reader.assign(self.scores)
        for tp, offset in positions.items():
            reader.seek(tp, offset)
        log.info(
            "boards.restored",
            partitions=self.partitions,
            standings=len(self.totals.standings),
            awards=len(self.totals.applied),
        )

    def _decode(self, value: bytes | None) -> ScoreAwarded | None:
        try:
            record = self.decode(value or b"")
        except SchemaDecodeError:
            return None
        return record if isinstance(record, ScoreAwarded) else None

    async def _loop(
        self, reader: AIOKafkaConsumer, out: AIOKafkaProducer, stop: asyncio.Event
    ) -> None:
        idle = 0.02
        updates_topic = topic(LEADERBOARD_UPDATES, self.prefix)
        while not stop.is_set():
            batch = await reader.getmany(timeout_ms=200, max_records=MAX_BATCH)
            if not any(batch.values()):
                # The embedded broker answers an empty fetch at once: back off, not spin.
                await asyncio.sleep(idle)
                idle = min(idle * 2, 0.1)  # short: it adds to the result-to-board latency
                continue
            idle = 0.02
            now = datetime.now(UTC)
            offsets: dict[TopicPartition, int] = {}
            changed: dict[tuple[str, str], Standing] = {}  # first-changed order
            started = time.perf_counter()
            async with out.transaction():
                for tp, records in batch.items():
                    for record in records:
                        award = self._decode(record.value)
                        if award is None:
                            await dead_letter(
                                out,
                                self.prefix,
                                tp,
                                record.offset,
                                record.key,
                                record.value,
                                SchemaDecodeError("not a ScoreAwarded"),
                            )
                        else:
                            changed.update(self.totals.apply(award))
                    offsets[tp] = records[-1].offset + 1
                folded = time.perf_counter()
                batches = BatchSender(out)
                await batches.open(updates_topic)
                encode = self._encoder.encode_fields
                for board_id, fields in update_fields(changed, now):
                    batches.append(updates_topic, board_id.encode(), encode(fields))
                await batches.flush()
                sent = time.perf_counter()
                await out.send_offsets_to_transaction(offsets, self.group_id)
            committed = time.perf_counter()
            awards = sum(map(len, batch.values()))
            emit = log.info if awards >= 1000 else log.debug  # a fan-out's timeline at info
            emit(
                "boards.committed",
                awards=awards,
                updates=len(changed),
                fold_s=round(folded - started, 3),
                send_s=round(sent - folded, 3),
                commit_s=round(committed - sent, 3),
            )
