"""The sink extension point and the one loop that feeds every sink.

A :class:`Sink` stores a batch of decoded records *together with* the positions that
follow it, atomically (a Postgres transaction, a Redis Lua call), and says where it left
off. :class:`SinkRunner` owns the Kafka side: it assigns itself every partition of the
sink's topics (no consumer group: the offsets live in the sink's store, not in Kafka),
seeks each to the stored position, reads ``read_committed`` batches with ``getmany``,
dead-letters poison records and retries transient failures with backoff. While a batch
is being written, the next one is fetched and decoded (one write in flight, in order).

Idle containment: a broker that answers fetches at once (the embedded one ignores
``fetch_max_wait_ms``) makes an idle consumer spin. When a read returns nothing the runner
pauses its partitions for a backoff (50 ms doubling to 500 ms) before fetching again; on
Apache Kafka this only delays the first record after an idle spell by up to that backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import Any, NamedTuple, Protocol, TypeVar

from aiokafka import TopicPartition
from prometheus_client import Counter, Gauge, Histogram

from core import kafka
from core.exceptions import PoisonRecordError, TransientError
from core.logging import get_logger
from core.settings import Settings
from core.stack import resolve_urls
from schemas.catalog import spec
from schemas.codec import AvroCodec
from schemas.fast_decode import RecordDecoder
from schemas.records import AvroRecord
from sinks.dlq import DeadLetterPublisher
from sinks.exceptions import RecordRejectedError, UnexpectedRecordError
from sinks.liveness import holding_lease, sink_lease_name
from sinks.offsets import Positions, positions_after

T = TypeVar("T")

# Counters are exposed with a ``_total`` suffix: scoreline_sink_records_total, ...
RECORDS = Counter("scoreline_sink_records", "Records a sink consumed", ["sink", "topic"])
BATCH_SIZE = Histogram(
    "scoreline_sink_batch_size",
    "Records per batch a sink stored",
    ["sink"],
    buckets=(1, 10, 100, 500, 1000, 2500, 5000, 10000, 20000),
)
BATCH_SECONDS = Histogram("scoreline_sink_batch_seconds", "Time to store one batch", ["sink"])
RETRIES = Counter("scoreline_sink_retries", "Transient failures a sink retried", ["sink"])
LAG = Gauge("scoreline_sink_lag", "Records behind the stable end", ["sink", "topic", "partition"])


#: Batches at least this big are logged at info level.
BIG_BATCH = 1000


class ConsumedRecord(NamedTuple):
    """A decoded record and where it came from.

    A NamedTuple, not a frozen dataclass: sinks make one per record, and a frozen
    dataclass' ``__init__`` (one ``object.__setattr__`` per field) cost 1.0 us against
    0.3 us, about 0.4 CPU-s of a 200,000-guess match's 600,000 sink records.
    """

    topic: str  # the logical (catalog) name
    source_topic: str  # the physical name, with the topic prefix
    partition: int
    offset: int
    key: bytes | None
    value: AvroRecord
    raw: bytes  # the value as consumed, for the dead-letter topic
    timestamp_ms: int


@dataclass(frozen=True, slots=True)
class Batch:
    """Records to store, and the positions to store with them (next offset per partition).

    ``positions`` also covers records that are not in ``records`` (dead-lettered ones,
    tombstones): storing them is how the pipeline moves past those.
    """

    records: Sequence[ConsumedRecord]
    positions: Positions

    def __len__(self) -> int:
        return len(self.records)


class Sink(Protocol):
    """Where a runner's batches go, under a consumer ``name``, from logical ``topics``.

    ``write`` stores the records and the positions atomically: it raises TransientError
    (retried), RecordRejectedError (that record is dead-lettered) or another
    PoisonRecordError (the runner splits the batch to find the record). ``flush`` makes
    everything written durable; ``committed`` says where the sink left off.
    """

    @property
    def name(self) -> str: ...

    @property
    def topics(self) -> tuple[str, ...]: ...

    async def committed(
        self, partitions: Collection[TopicPartition]
    ) -> dict[TopicPartition, int]: ...

    async def write(self, batch: Batch) -> None: ...

    async def flush(self) -> None: ...


@dataclass(frozen=True, slots=True)
class RunnerConfig:
    """How a runner reads and retries."""

    max_records: int = 5000
    poll_timeout_ms: int = 100
    #: Pause after an empty poll, doubling up to the second value: short, since the time
    #: an idle stage takes to notice new records adds to the result-to-board latency
    #: (the poll itself waits poll_timeout_ms, and aiokafka backs off empty fetches).
    idle_backoff_s: tuple[float, float] = (0.02, 0.1)
    retry_backoff_s: tuple[float, float] = (0.1, 5.0)
    #: Only these partitions of a logical topic (None: all of them).
    partitions: Mapping[str, Collection[int]] | None = None
    #: ``(index, count)``: only the partitions ``p`` with ``p % count == index``, of every
    #: topic (one of ``count`` runners of a sink with ``partition_lanes``).
    lane: tuple[int, int] | None = None


class _StopRequestedError(Exception):
    """The stop event was set while the runner waited to retry."""


async def wait_or_stop(stop: asyncio.Event, seconds: float) -> bool:
    """Sleep up to ``seconds``; True when ``stop`` was set meanwhile."""
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except TimeoutError:
        return False
    return True


class SinkRunner:
    """Feeds one sink from Kafka until ``stop`` is set."""

    def __init__(
        self,
        sink: Sink,
        consumer: Any,
        *,
        decode: Callable[[bytes], AvroRecord],
        dead_letters: DeadLetterPublisher,
        topic_prefix: str = "",
        config: RunnerConfig | None = None,
        topics: Sequence[str] | None = None,
    ) -> None:
        self._sink = sink
        self._consumer = consumer
        self._decode_value = decode
        self._dlq = dead_letters
        self._config = config or RunnerConfig()
        topics = sink.topics if topics is None else topics  # a lane: some of the topics
        self._logical = {topic_prefix + name: name for name in topics}
        self._expected = {name: spec(name).value_schemas for name in topics}
        self._log = get_logger(sink.name)
        self.assignment: list[TopicPartition] = []

    async def run(self, stop: asyncio.Event) -> None:
        """Assign, seek to the stored positions, and store batches until ``stop`` is set."""
        writing: asyncio.Task[None] | None = None
        try:
            await self._assign(stop)
            idle_min, idle_max = self._config.idle_backoff_s
            idle = idle_min
            while not stop.is_set():
                data = await self._consumer.getmany(
                    timeout_ms=self._config.poll_timeout_ms, max_records=self._config.max_records
                )
                if not data:
                    if writing is not None:
                        await writing
                        writing = None
                    await self._idle(stop, idle)
                    idle = min(idle * 2, idle_max)
                    continue
                idle = idle_min
                batch = await self._decode(data, stop)  # while the previous batch is written
                if writing is not None:
                    await writing
                writing = asyncio.create_task(self._store_timed(batch, stop))
            if writing is not None:
                await writing
            await self._sink.flush()
        except _StopRequestedError:
            self._log.info("sink.stopped", operation="stop", detail="stopped while retrying")
            return
        finally:
            if writing is not None and not writing.done():  # cancelled: it commits or not
                writing.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await writing
        self._log.info("sink.stopped", operation="stop")

    async def _assign(self, stop: asyncio.Event) -> None:
        partitions = await self._retrying(self._partitions, stop, operation="assign")
        self._consumer.assign(partitions)
        self.assignment = partitions
        load = partial(self._sink.committed, partitions)
        stored = await self._retrying(load, stop, operation="load_offsets")
        for tp in partitions:
            if tp in stored:
                self._consumer.seek(tp, stored[tp])
            else:
                await self._consumer.seek_to_beginning(tp)
            where = stored.get(tp, "beginning")
            self._log.info(
                "sink.assigned",
                operation="seek",
                topic=tp.topic,
                partition=tp.partition,
                offset=where,
            )

    async def _partitions(self) -> list[TopicPartition]:
        found: list[TopicPartition] = []
        for physical, logical in self._logical.items():
            ids = self._consumer.partitions_for_topic(physical)
            if not ids:  # unknown to the cached metadata (created after start): ask again
                await self._consumer._client.force_metadata_update()
                ids = self._consumer.partitions_for_topic(physical)
            if not ids:
                raise TransientError(f"topic {physical} does not exist (yet)")
            subset = (self._config.partitions or {}).get(logical)
            lane = self._config.lane
            found.extend(
                TopicPartition(physical, p)
                for p in sorted(ids)
                if (subset is None or p in subset) and (lane is None or p % lane[1] == lane[0])
            )
        return found

    async def _idle(self, stop: asyncio.Event, seconds: float) -> None:
        """Pause fetching while idle, so a broker that never waits does not make us spin."""
        self._consumer.pause(*self.assignment)
        try:
            await wait_or_stop(stop, seconds)
        finally:
            self._consumer.resume(*self.assignment)

    async def _decode(
        self, data: Mapping[TopicPartition, Sequence[Any]], stop: asyncio.Event
    ) -> Batch:
        records: list[ConsumedRecord] = []
        positions: dict[TopicPartition, int] = {}
        decode = self._decode_value
        for tp, messages in data.items():
            logical = self._logical[tp.topic]
            expected = self._expected[logical]
            for m in messages:
                if m.value is None:  # a tombstone: nothing to store
                    continue
                try:
                    try:
                        value = decode(m.value)
                    except TransientError:  # e.g. the schema registry is down: not poison
                        value = await self._retrying(
                            partial(_call, decode, m.value), stop, "decode"
                        )
                    if value.schema_name not in expected:
                        raise UnexpectedRecordError(
                            f"{value.schema_name} is not a value of {logical} "
                            f"(expected {', '.join(expected)})"
                        )
                except PoisonRecordError as e:
                    await self._dead_letter(e, m, stop)
                    continue
                records.append(
                    ConsumedRecord(
                        logical,
                        tp.topic,
                        tp.partition,
                        m.offset,
                        m.key,
                        value,
                        m.value,
                        m.timestamp,
                    )
                )
            if messages:
                positions[tp] = messages[-1].offset + 1
            RECORDS.labels(sink=self._sink.name, topic=logical).inc(len(messages))
        return Batch(records, positions)

    async def _store_timed(self, batch: Batch, stop: asyncio.Event) -> None:
        started = time.perf_counter()
        await self._store(batch, stop)
        self._observe(batch, time.perf_counter() - started)

    async def _store(self, batch: Batch, stop: asyncio.Event) -> None:
        """Write the batch; on poison, dead-letter the record at fault and store the rest."""
        try:
            await self._retrying(partial(self._sink.write, batch), stop, operation="write")
        except RecordRejectedError as e:
            await self._dead_letter(e, e.record, stop)
            rest = [r for r in batch.records if r is not e.record]
            await self._store(replace(batch, records=rest), stop)
        except PoisonRecordError as e:
            if not batch.records:
                raise
            if len(batch.records) == 1:
                await self._dead_letter(e, batch.records[0], stop)
                await self._store(replace(batch, records=()), stop)
                return
            # Split: the first half with the positions it covers, then the rest with all.
            half = batch.records[: len(batch.records) // 2]
            covered = positions_after(
                (TopicPartition(r.source_topic, r.partition), r.offset) for r in half
            )
            await self._store(Batch(half, covered), stop)
            await self._store(replace(batch, records=batch.records[len(half) :]), stop)

    async def _retrying(
        self, attempt_fn: Callable[[], Awaitable[T]], stop: asyncio.Event, operation: str
    ) -> T:
        delay, ceiling = self._config.retry_backoff_s
        attempt = 1
        while True:
            try:
                return await attempt_fn()
            except TransientError as e:
                RETRIES.labels(sink=self._sink.name).inc()
                self._log.warning(
                    "sink.retry", operation=operation, attempt=attempt, delay_s=delay, error=str(e)
                )
                if await wait_or_stop(stop, delay):
                    raise _StopRequestedError from e
                delay = min(delay * 2, ceiling)
                attempt += 1

    async def _dead_letter(self, error: BaseException, record: Any, stop: asyncio.Event) -> None:
        """Send a ConsumedRecord (or a message that failed to decode) to the DLQ, with retries."""
        raw = record.raw if isinstance(record, ConsumedRecord) else record.value
        source = record.source_topic if isinstance(record, ConsumedRecord) else record.topic
        send = partial(
            self._dlq.publish,
            key=record.key,
            value=raw,
            error=error,
            source_topic=source,
            source_partition=record.partition,
            source_offset=record.offset,
            logical_topic=self._logical[source],
        )
        await self._retrying(send, stop, operation="dead_letter")

    def _observe(self, batch: Batch, seconds: float) -> None:
        name = self._sink.name
        BATCH_SIZE.labels(sink=name).observe(len(batch))
        BATCH_SECONDS.labels(sink=name).observe(seconds)
        for tp, position in batch.positions.items():
            end = self._consumer.last_stable_offset(tp)
            end = self._consumer.highwater(tp) if end is None else end
            if end is not None:
                lag = LAG.labels(sink=name, topic=self._logical[tp.topic], partition=tp.partition)
                lag.set(max(0, end - position))
        positions = {f"{tp.topic}:{tp.partition}": p for tp, p in batch.positions.items()}
        # Big batches (a finished match's awards) at info: the timeline of a fan-out.
        emit = self._log.info if len(batch) >= BIG_BATCH else self._log.debug
        emit(
            "sink.batch",
            operation="write",
            records=len(batch),
            positions=positions,
            seconds=seconds,
        )


async def _run_side_by_side(runners: Sequence[SinkRunner], stop: asyncio.Event) -> None:
    """Run the runners until ``stop``. When one fails the others stop, and its error is
    raised as it is (not wrapped in an exception group), as a single runner's would be."""
    if len(runners) == 1:
        await runners[0].run(stop)
        return
    try:
        async with asyncio.TaskGroup() as running:
            for runner in runners:
                running.create_task(runner.run(stop))
    except BaseExceptionGroup as group:
        raise group.exceptions[0] from group


async def _call(function: Callable[[bytes], T], value: bytes) -> T:
    return function(value)


async def run_sink(
    settings: Settings, sink: Sink, stop: asyncio.Event, *, config: RunnerConfig | None = None
) -> None:
    """Run ``sink`` with Kafka clients made from ``settings`` until ``stop`` is set.

    A sink with ``lanes`` (a tuple of tuples of its topics) gets one runner per lane, and
    one with ``partition_lanes = n`` n runners per lane, each with the partitions ``p % n``
    of its own: each runner has its own consumer, and they run side by side under the one
    lease. Each reads, decodes and stores its own batches, so one lane's Postgres work
    overlaps another's decoding and writing. The sink must write such batches
    independently (its positions are per partition).
    """
    config = config or RunnerConfig()
    codec = AvroCodec.from_settings(settings)
    topic_lanes: tuple[tuple[str, ...], ...] = getattr(sink, "lanes", None) or (tuple(sink.topics),)
    count: int = getattr(sink, "partition_lanes", 1)
    lanes = [
        (topics, replace(config, lane=(index, count)) if count > 1 else config)
        for topics in topic_lanes
        for index in range(count)
    ]
    consumers = [
        kafka.consumer(settings, group_id=None, client_id=f"scoreline-{sink.name}") for _ in lanes
    ]
    producer = kafka.producer(settings, client_id=f"scoreline-{sink.name}-dlq")
    try:
        for consumer in consumers:
            await consumer.start()
        await producer.start()
        dead_letters = DeadLetterPublisher(
            producer, consumer=sink.name, topic_prefix=settings.topic_prefix
        )
        runners = [
            SinkRunner(
                sink,
                consumer,
                decode=RecordDecoder(codec, (s for t in topics for s in spec(t).value_schemas)),
                dead_letters=dead_letters,
                topic_prefix=settings.topic_prefix,
                config=lane_config,
                topics=topics,
            )
            for consumer, (topics, lane_config) in zip(consumers, lanes, strict=True)
        ]
        # The lease says "running" to operator tools (sinks/liveness.py); taken before the
        # runner loads its offsets, so an offsets reset holding it is never overwritten.
        lease = sink_lease_name(sink.name, settings.topic_prefix)
        async with holding_lease(resolve_urls(settings).database_url, lease, stop) as held:
            if held:
                await _run_side_by_side(runners, stop)
    finally:
        await producer.stop()
        for consumer in consumers:
            await consumer.stop()
        codec.close()
