"""The predictions agent: matches and entries of one partition, processed together.

One agent reads ``fixtures.matches`` and ``entries.predictions`` (co-partitioned by
match_id), so the offsets of both and everything an event causes (scores, rejections,
notifications, the match-state changelog) commit in one transaction per partition. The
per-entry work of a finished match happens in a batch inside that one event: the entries
come from the partition's index, the awards go out through the partition's transactional
producer directly (Faust's per-message send path is the bottleneck at this volume).
"""

from __future__ import annotations

import asyncio
import json
import os
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, NoReturn, cast

import faust
from aiokafka import AIOKafkaProducer, TopicPartition

from core.exceptions import SchemaDecodeError
from core.kafka import BatchSender, admin_client, consumer
from core.logging import get_logger
from core.settings import Settings
from schemas.catalog import (
    ENTRIES_PREDICTIONS,
    ENTRIES_REJECTED,
    FIXTURES_MATCHES,
    NOTIFICATIONS,
    PREDICTIONS_MATCH_STATE,
    RULES,
    SCORES,
    topic,
)
from schemas.codec import AvroCodec
from schemas.fast_decode import RecordDecoder
from schemas.fast_encode import RecordEncoder
from schemas.records import (
    EntryRejected,
    MatchUpdated,
    PredictionPlaced,
    ResultCorrected,
    ScoreAwarded,
    wire_now,
)
from streams.dlq import dead_letter
from streams.rulebook import RuleBook
from streams.scoring import MatchState, Output, on_entry, on_match_update, scoring_under_way
from streams.state import PartitionState, load_partition
from streams.transactions import SourcePartitionTransactionManager, source_partition

log = get_logger("streams.predictions")

RULES_READY_TIMEOUT_S = 30.0
#: Entries scored per transaction when a result arrives (see ``on_match_update``).
SCORING_CHUNK = 10_000
#: Events taken from the stream at a time (Faust's per-event path costs ~1 ms each).
BATCH_EVENTS = 5000
#: Outputs after which the agent commits at once instead of on Faust's commit timer
#: (``broker_commit_interval``): the last chunk of a scoring reaches the boards up to a
#: second earlier (measured: a 10,000-guess match's awards waited 0.85 s for the timer).
COMMIT_NOW_OUTPUTS = 1000
BATCH_WITHIN_S = 0.05


class PredictionsWorker:
    """The agent's state and I/O: partition stores, the rule book, the output sends."""

    def __init__(self, app: faust.App, settings: Settings) -> None:
        self.app = app
        self.settings = settings
        self.codec = AvroCodec.from_settings(settings)
        self.decode = RecordDecoder(self.codec, ["MatchUpdated", "PredictionPlaced"])
        self.prefix = settings.topic_prefix
        self.matches_topic = topic(FIXTURES_MATCHES, self.prefix)
        self.entries_topic = topic(ENTRIES_PREDICTIONS, self.prefix)
        self.state_topic = topic(PREDICTIONS_MATCH_STATE, self.prefix)
        self.rulebook = RuleBook()
        self.partitions: dict[int, PartitionState] = {}
        #: Next offset to read of each source partition this worker processed.
        self.positions: dict[TopicPartition, int] = {}
        #: Outputs sent since the last commit the agent made or asked for (COMMIT_NOW_OUTPUTS).
        self.uncommitted_outputs = 0
        self._score_encoder = score_encoder(self.codec)
        self._loading: dict[int, asyncio.Lock] = {}
        self.stop = asyncio.Event()

    # -- partitions -----------------------------------------------------------------
    async def partition(self, partition: int) -> PartitionState:
        state = self.partitions.get(partition)
        if state is not None:
            return state
        lock = self._loading.setdefault(partition, asyncio.Lock())
        async with lock:
            if partition not in self.partitions:
                self.partitions[partition] = await self._load(partition)
        return self.partitions[partition]

    async def _load(self, partition: int) -> PartitionState:
        admin = admin_client(self.settings)
        reader = consumer(self.settings, enable_auto_commit=False)
        await admin.start()
        await reader.start()
        try:
            return await load_partition(
                reader,
                admin,
                self.decode,
                group_id=self.app.conf.id,
                entries_topic=self.entries_topic,
                state_topic=self.state_topic,
                partition=partition,
            )
        finally:
            await reader.stop()
            await admin.close()

    def forget(self, partitions: set[int]) -> None:
        for partition in partitions:
            self.partitions.pop(partition, None)
        self.positions = {
            tp: offset for tp, offset in self.positions.items() if tp.partition not in partitions
        }

    # -- events ---------------------------------------------------------------------
    async def handle(self, tp: Any, offset: int, key: bytes | None, value: bytes | None) -> None:
        producer = self._producer(tp)
        try:
            record = self.decode(value or b"")
        except SchemaDecodeError as e:
            await dead_letter(producer, self.prefix, tp, offset, key, value, e)
            return
        state = await self.partition(tp.partition)
        now = wire_now()  # as the records will hold it: they are built without normalizing
        if isinstance(record, MatchUpdated) and tp.topic == self.matches_topic:
            await asyncio.wait_for(self.rulebook.ready.wait(), RULES_READY_TIMEOUT_S)
            before = state.matches.get(record.match_id)
            rules = self.rulebook.for_tournament(record.tournament_id)
            after, outputs = on_match_update(
                before, record, state.index, rules, now, chunk=SCORING_CHUNK
            )
            while scoring_under_way(after, record):
                # A big scoring commits chunk by chunk, each with its progress, so boards
                # fill in while it runs; this event's offset commits with the last chunk.
                state.matches[after.match_id] = after
                await self._send(producer, outputs)
                await self._save_match(producer, tp.partition, after)
                await self._commit_chunk(producer, tp, offset, after)
                after, outputs = on_match_update(
                    after, record, state.index, rules, now, chunk=SCORING_CHUNK
                )
            if after != before:
                state.matches[after.match_id] = after
                await self._save_match(producer, tp.partition, after)
        elif isinstance(record, PredictionPlaced) and tp.topic == self.entries_topic:
            match = state.matches.get(record.match_id)
            # The rules in force: after a promotion (scoreline reprocess) a late guess on a
            # match scored before it counts under the promoted rules, as its totals do.
            rules_now = None
            if match is not None and match.scored is not None:
                await asyncio.wait_for(self.rulebook.ready.wait(), RULES_READY_TIMEOUT_S)
                rules_now = self.rulebook.for_tournament(match.tournament_id)
            after_entry, outputs = on_entry(match, state.index, record, offset, now, rules_now)
            if after_entry is not None and after_entry != match:
                state.matches[after_entry.match_id] = after_entry
                await self._save_match(producer, tp.partition, after_entry)
        else:
            error = SchemaDecodeError(f"{record.schema_name} is not a value of {tp.topic}")
            await dead_letter(producer, self.prefix, tp, offset, key, value, error)
            return
        await self._send(producer, outputs)
        self.positions[TopicPartition(tp.topic, tp.partition)] = offset + 1
        if len(outputs) > 1000:
            log.info("predictions.batch", partition=tp.partition, offset=offset, out=len(outputs))

    # -- output ---------------------------------------------------------------------
    def _producer(self, tp: Any) -> AIOKafkaProducer:
        manager = transaction_manager(self.app)
        # The aiokafka producer Faust opened for this partition's transactional id.
        producers: dict[str, AIOKafkaProducer] = cast(Any, manager.producer)._transaction_producers
        return producers[manager.transactional_id_for(tp)]

    async def _send(self, producer: AIOKafkaProducer, outputs: list[Output]) -> None:
        if not outputs:
            return
        self.uncommitted_outputs += len(outputs)
        batches = BatchSender(producer)
        scores = topic(SCORES, self.prefix)
        await batches.open(scores)
        encode = self._score_encoder.encode
        for output in outputs:
            if isinstance(output, ScoreAwarded):
                batches.append(scores, output.member_id.encode(), encode(output))
                continue
            if isinstance(output, EntryRejected):
                name, key = ENTRIES_REJECTED, output.entry_id
            elif isinstance(output, ResultCorrected):
                name, key = NOTIFICATIONS, output.member_id
            else:  # pragma: no cover - Output is a closed union
                raise TypeError(type(output).__name__)
            await batches.add(
                topic(name, self.prefix), key.encode(), self.codec.encode(output, name)
            )
        await batches.flush()

    async def _commit_chunk(
        self, producer: AIOKafkaProducer, tp: Any, offset: int, match: MatchState
    ) -> None:
        """Commit the open transaction: a chunk, and the offsets of what came before it.

        The event being processed stays uncommitted (its offset is the position), so a
        crash delivers it again and the scoring resumes from the committed progress.
        """
        positions = {
            source: position
            for source, position in self.positions.items()
            if source.partition == tp.partition
        }
        positions[TopicPartition(tp.topic, tp.partition)] = offset
        await producer.send_offsets_to_transaction(positions, self.app.conf.id)
        await producer.commit_transaction()
        await producer.begin_transaction()
        self.uncommitted_outputs = 0
        log.info(
            "predictions.chunk_committed",
            partition=tp.partition,
            match_id=match.match_id,
            done=match.scoring.done if match.scoring is not None else None,
        )

    async def _save_match(
        self, producer: AIOKafkaProducer, partition: int, match: MatchState
    ) -> None:
        await producer.send(
            self.state_topic,
            key=match.match_id.encode(),
            value=json.dumps(match.to_json(), sort_keys=True).encode(),
            partition=partition,
        )


def register(app: faust.App, settings: Settings) -> PredictionsWorker:
    """Declare the agent and its helpers on ``app``."""
    worker = PredictionsWorker(app, settings)
    source = app.topic(
        worker.matches_topic,
        worker.entries_topic,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
    )

    async def predictions(stream: faust.types.StreamT[Any]) -> None:
        manager = transaction_manager(app)
        async for events in cast(Any, stream).take_events(BATCH_EVENTS, within=BATCH_WITHIN_S):
            # Both topics' partition p commit in one transaction: group by partition,
            # keep each partition's order, and ack inside the commit guard.
            by_partition: dict[int, list[Any]] = {}
            for event in events:
                by_partition.setdefault(event.message.partition, []).append(event)
            for batch in by_partition.values():
                tp = batch[0].message.tp
                async with manager.processing(tp):
                    try:
                        with source_partition(tp):
                            for event in batch:
                                message = event.message
                                await worker.handle(
                                    message.tp, message.offset, message.key, event.value
                                )
                    except BaseException as e:
                        crash_without_acking(tp, e)
                    for event in batch:
                        event.ack()
            if worker.uncommitted_outputs >= COMMIT_NOW_OUTPUTS:
                # Outside the partition guards (the commit takes them): the same commit
                # the timer makes, now, so a scoring's last chunk is not held back.
                worker.uncommitted_outputs = 0
                await app.consumer.commit()

    async def follow_rules() -> None:
        reader = consumer(settings)
        await reader.start()
        try:
            rules_topic = topic(RULES, worker.prefix)
            await worker.rulebook.follow(reader, rules_topic, worker.codec, worker.stop)
        finally:
            await reader.stop()

    async def on_revoked(sender: Any, *args: Any, signal: Any, **kw: Any) -> None:
        revoked = args[0] if args else kw.get("revoked", set())
        ours = (worker.entries_topic, worker.matches_topic)
        worker.forget({tp.partition for tp in revoked if tp.topic in ours})

    app.agent(source, name="predictions")(predictions)
    app.task(follow_rules)
    cast(Any, app.on_partitions_revoked).connect(on_revoked)
    return worker


def crash_without_acking(tp: Any, error: BaseException) -> NoReturn:
    """Stop the process now, before Faust acks (and commits) events we did not finish.

    When an agent raises, Faust's ``take_events`` acks the whole batch on its way out and
    the next commit would skip the unprocessed events. Exiting at once leaves the open
    transaction to be aborted when the worker restarts with the same transactional ids:
    crash-only, like a kill -9, which the chaos test shows is safe.
    """
    if isinstance(error, asyncio.CancelledError):  # stopping (SIGTERM) mid-batch
        log.warning("predictions.stopped_mid_batch", topic=tp.topic, partition=tp.partition)
        os._exit(0)
    log.critical(
        "predictions.crash",
        topic=tp.topic,
        partition=tp.partition,
        error=type(error).__name__,
        detail=str(error),
        exc_info=error,
    )
    os._exit(70)


def transaction_manager(app: faust.App) -> SourcePartitionTransactionManager:
    manager = app.consumer.transactions
    if not isinstance(manager, SourcePartitionTransactionManager):
        raise TypeError("the app must use streams.transactions.Transport (exactly_once)")
    return manager


def score_encoder(codec: AvroCodec) -> RecordEncoder:
    """The fast ScoreAwarded encoder (the worker writes one per scored entry)."""
    sample = ScoreAwarded(
        member_id="",
        board_ids=(),
        points_delta=Decimal("0.00"),
        reason="",
        source="",
        rule_version=0,
        result_version=0,
        idempotency_key="",
        awarded_at=datetime.now(UTC),
    )
    return RecordEncoder(codec, "ScoreAwarded", SCORES, sample)
