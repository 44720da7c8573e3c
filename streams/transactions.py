"""Fixes to faust-streaming's exactly-once transaction handling, as a Transport subclass.

Two defects bite any Faust app that writes to other partitions than it reads:

1. **Producer choice.** Faust picks a record's transactional producer by its *destination*
   partition (``{app}-{group}-{destination partition}``) but commits transactions by the
   *source* partition. A record sent to partition 3 while processing partition 0 sits in
   the transaction of producer 3, which commits only when source partition 3 commits
   offsets: with events on only some partitions it never does, and read_committed readers
   never see the record. :class:`SourcePartitionTransactionManager` sends every record
   through the producer of the partition being processed (the current event's, or the one
   named by :func:`source_partition`), so outputs commit atomically with the offsets of
   the input that caused them.
2. **Commit in the middle of an event.** Faust commits on a timer. A commit that lands
   while an agent is half-way through the records one event produces commits those
   records without the event's offset; after a crash the event is processed again and
   the records appear twice. :meth:`SourcePartitionTransactionManager.processing` holds a
   per-partition guard that the commit waits for; the agent acks the event inside it, so
   a transaction holds either all of an event's effects and its offset, or none.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Iterator, Mapping
from contextvars import ContextVar
from typing import Any

from faust.streams import current_event
from faust.transport.consumer import TransactionManager
from faust.transport.drivers.aiokafka import Transport as AIOKafkaTransport
from faust.types import TP

_source_tp: ContextVar[TP | None] = ContextVar("scoreline_source_tp", default=None)


@contextlib.contextmanager
def source_partition(tp: TP) -> Iterator[None]:
    """Send records in this block through the transaction of source partition ``tp``."""
    token = _source_tp.set(tp)
    try:
        yield
    finally:
        _source_tp.reset(token)


class SourcePartitionTransactionManager(TransactionManager):
    """Faust's TransactionManager with the producer chosen by the source partition."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._guards: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    def transactional_id_for(self, tp: TP) -> str:
        group = self.app.assignor.group_for_topic(tp.topic)
        return f"{self.app.conf.id}-{group}-{tp.partition}"

    def _source(self) -> TP | None:
        explicit = _source_tp.get()
        if explicit is not None:
            return explicit
        event = current_event()
        return event.message.tp if event is not None else None

    async def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        partition: int | None,
        timestamp: float | None,
        headers: Any,
        *,
        transactional_id: str | None = None,
    ) -> Awaitable[Any]:
        source = self._source()
        if source is None:
            # Outside any event (a timer): Faust's own choice by destination.
            return await super().send(
                topic, key, value, partition, timestamp, headers, transactional_id=None
            )
        destination = self.consumer.key_partition(topic, key, partition)
        return await self.producer.send(
            topic,
            key,
            value,
            destination,
            timestamp,
            headers,
            transactional_id=self.transactional_id_for(source),
        )

    @contextlib.asynccontextmanager
    async def processing(self, tp: TP) -> AsyncIterator[None]:
        """Hold off commits of ``tp``'s transaction while one event is processed."""
        async with self._guards[self.transactional_id_for(tp)]:
            yield

    async def commit(self, offsets: Mapping[TP, int], start_new_transaction: bool = True) -> bool:
        tids = sorted({self.transactional_id_for(tp) for tp in offsets})
        async with contextlib.AsyncExitStack() as stack:
            for tid in tids:  # sorted: a fixed order, so two commits never deadlock
                await stack.enter_async_context(self._guards[tid])
            result: bool = await super().commit(offsets, start_new_transaction)
            return result


class Transport(AIOKafkaTransport):
    """The aiokafka transport with :class:`SourcePartitionTransactionManager`."""

    TransactionManager = SourcePartitionTransactionManager
