"""Kafka clients, made in one place so every role talks to the broker the same way."""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.consumer.fetcher import Fetcher as _Fetcher
from aiokafka.consumer.fetcher import PartitionRecords as _PartitionRecords
from aiokafka.errors import KafkaError
from aiokafka.partitioner import murmur2

from core.settings import Settings
from core.stack import resolve_urls


def bootstrap_servers(settings: Settings) -> str:
    return resolve_urls(settings).kafka_bootstrap_servers


def is_embedded_broker(settings: Settings) -> bool:
    """True on the embedded broker, whose gaps (docs/broker.md) some settings contain."""
    return settings.kafka_bootstrap_servers is None


def apply_broker_workarounds(settings: Settings) -> None:
    """The client-side containments the embedded broker needs (docs/broker.md)."""
    backoff = idle_fetch_backoff_ms(settings)
    contain_idle_fetches(backoff)
    if backoff > 0:  # the embedded broker (or a test naming it): same switch
        contain_stale_aborted_transactions()


def idle_fetch_backoff_ms(settings: Settings) -> int:
    """How long a consumer waits after an empty fetch: 50 ms on the embedded broker, else 0.

    ``SCORELINE_IDLE_FETCH_BACKOFF_MS`` overrides it (the test harness sets it, since the
    tests name the embedded broker with ``KAFKA_BOOTSTRAP_SERVERS``). Apache Kafka holds
    an empty fetch for ``fetch_max_wait_ms`` itself, so it needs none.
    """
    if settings.idle_fetch_backoff_ms is not None:
        return settings.idle_fetch_backoff_ms
    return 50 if is_embedded_broker(settings) else 0


def contain_idle_fetches(backoff_ms: int) -> None:
    """Make aiokafka wait ``backoff_ms`` after an empty fetch response (process-wide).

    The embedded broker answers a fetch at once instead of waiting ``fetch_max_wait_ms``,
    so aiokafka's background fetcher re-fetches in a tight loop: an idle consumer burns
    85% of a core (docs/broker.md, gap a). Settings such as ``fetch_min_bytes`` do not
    help; holding the fetcher after an empty answer does (0.5% with 200 ms). Faust's
    consumer is an aiokafka consumer too, so this covers the worker as well.
    """
    global _idle_backoff_s
    _idle_backoff_s = backoff_ms / 1000
    if backoff_ms > 0 and _Fetcher._proc_fetch_request is not _patched_proc_fetch_request:
        _Fetcher._proc_fetch_request = _patched_proc_fetch_request


_idle_backoff_s = 0.0
_original_proc_fetch_request = _Fetcher._proc_fetch_request


async def _patched_proc_fetch_request(self: Any, *args: Any, **kwargs: Any) -> Any:
    had_records = await _original_proc_fetch_request(self, *args, **kwargs)
    if not had_records and _idle_backoff_s > 0:
        try:
            await asyncio.sleep(_idle_backoff_s)
        except asyncio.CancelledError:  # the consumer is stopping: a normal end
            return False
    return had_records


def contain_stale_aborted_transactions() -> None:
    """Ignore aborted transactions the embedded broker reports outside the fetched range.

    A fetch response lists the aborted transactions that overlap it; a read_committed
    client skips a producer's batches from an aborted transaction's first offset until it
    meets that producer's abort marker. The embedded broker lists *every* aborted
    transaction of the partition, ended ones included. After a producer is fenced (a
    worker restarted with its transactional id, which keeps its producer id), a consumer
    whose fetch starts after the abort marker still sees the old entry, never meets the
    marker, and silently skips the new, committed transactions of that producer
    (reproduced: 5 committed records lost by a consumer that was waiting at the open
    transaction; docs/broker.md). Apache Kafka lists only overlapping transactions; this
    keeps only those starting in the fetched range, which is what it lists unless a
    fetch starts inside an aborted transaction (then its tail is delivered, as
    duplicates that the idempotency keys and versions downstream absorb).
    """
    if _PartitionRecords.__init__ is not _patched_partition_records_init:
        _PartitionRecords.__init__ = _patched_partition_records_init


_original_partition_records_init = _PartitionRecords.__init__


def _patched_partition_records_init(
    self: Any, tp: Any, records: Any, aborted: Any, fetch_offset: int, *args: Any
) -> None:
    current = [entry for entry in aborted or [] if entry[1] >= fetch_offset]
    _original_partition_records_init(self, tp, records, current, fetch_offset, *args)


def admin_client(settings: Settings, **overrides: Any) -> AIOKafkaAdminClient:
    options: dict[str, Any] = {
        "bootstrap_servers": bootstrap_servers(settings),
        "request_timeout_ms": 15000,
        "client_id": "scoreline-admin",
    }
    options.update(overrides)
    return AIOKafkaAdminClient(**options)


def compression_type(settings: Settings) -> str | None:
    """The producers' ``compression_type``: the setting, None for "none"."""
    return None if settings.kafka_compression == "none" else settings.kafka_compression


def producer(settings: Settings, **overrides: Any) -> AIOKafkaProducer:
    """An idempotent producer (acks=all); pass transactional_id for transactions."""
    options: dict[str, Any] = {
        "bootstrap_servers": bootstrap_servers(settings),
        "enable_idempotence": True,
        "acks": "all",
        "linger_ms": 5,
        "compression_type": compression_type(settings),
    }
    options.update(overrides)
    return AIOKafkaProducer(**options)


def consumer(settings: Settings, *topics: str, **overrides: Any) -> AIOKafkaConsumer:
    """A read_committed consumer without auto-commit: callers own their offsets."""
    options: dict[str, Any] = {
        "bootstrap_servers": bootstrap_servers(settings),
        "isolation_level": "read_committed",
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
    }
    options.update(overrides)
    return AIOKafkaConsumer(*topics, **options)


class BatchSender:
    """Many records to a producer as whole record batches, partitioned like ``send``.

    ``AIOKafkaProducer.send`` costs about 9 us a record; appending to a ``BatchBuilder``
    and handing full batches over with ``send_batch`` costs about 1 us. Records go to the
    partition the default partitioner would choose for their key (murmur2, as the Java
    client), so consumers see the same placement as with ``send``. Inside a transaction
    the batches join it like any send. ``add`` a record, or on a hot path ``open`` the
    topic once (it learns its partition count) and ``append``; ``flush`` hands every batch
    to the producer.
    """

    def __init__(self, producer: AIOKafkaProducer) -> None:
        self._producer = producer
        self._builders: dict[tuple[str, int], Any] = {}
        self._full: list[tuple[str, int, Any]] = []
        self._partitions: dict[str, int] = {}
        self.futures: list[asyncio.Future[Any]] = []

    async def open(self, topic: str) -> None:
        if topic not in self._partitions:
            await self._producer.client._wait_on_metadata(topic)
            found = self._producer.client.cluster.partitions_for_topic(topic)
            if not found:
                raise KafkaError(f"no partitions known for {topic}")
            self._partitions[topic] = len(found)

    async def add(self, topic: str, key: bytes, value: bytes | None) -> None:
        """``open`` the topic if needed, then ``append``."""
        await self.open(topic)
        self.append(topic, key, value)

    def append(self, topic: str, key: bytes, value: bytes | None) -> None:
        """Add a record to its partition's batch (the topic must be open)."""
        partition = _placement(key) % self._partitions[topic]
        where = (topic, partition)
        builder = self._builders.get(where)
        if builder is None:
            builder = self._builders[where] = self._producer.create_batch()
        if builder.append(key=key, value=value, timestamp=None) is None:  # full
            self._full.append((topic, partition, builder))
            builder = self._builders[where] = self._producer.create_batch()
            if builder.append(key=key, value=value, timestamp=None) is None:
                raise KafkaError(f"a record of {len(value or b'')} bytes fits no batch")

    async def flush(self) -> None:
        """Hand every batch to the producer (it sends them at once, a partition in order)."""
        self._full.extend((topic, p, builder) for (topic, p), builder in self._builders.items())
        self._builders.clear()
        full, self._full = self._full, []
        for topic, partition, builder in full:
            if builder.record_count():
                self.futures.append(
                    await self._producer.send_batch(builder, topic, partition=partition)
                )


_PLACEMENT: dict[bytes, int] = {}


def _placement(key: bytes) -> int:
    """murmur2 of a key, positive, as the Java client's default partitioner (cached)."""
    found = _PLACEMENT.get(key)
    if found is None:
        if len(_PLACEMENT) > 500_000:
            _PLACEMENT.clear()
        found = _PLACEMENT[key] = murmur2(key) & 0x7FFFFFFF
    return found
