"""Where partitions begin and end, offsets by time, and committing a group's offsets.

Ends are given twice: the log end (high watermark) and the last stable offset (LSO, the
end a ``read_committed`` consumer sees; below the high watermark while a transaction is
open). Every Scoreline consumer reads ``read_committed``, so lag and reset clamping use
the LSO.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import for_code
from aiokafka.protocol.commit import OffsetCommitRequest

from core import kafka
from core.ops.exceptions import OperatorError
from core.settings import Settings
from schemas.catalog import CATALOG, UnknownTopicError, spec


@dataclass(frozen=True, slots=True)
class Watermark:
    earliest: int
    log_end: int  # high watermark
    stable_end: int  # last stable offset: the read_committed end


def resolve_topic(name: str, prefix: str) -> str:
    """The physical name of a catalog topic; a name that already has the prefix is kept."""
    try:
        return prefix + spec(name).name
    except UnknownTopicError:
        if prefix and name.startswith(prefix) and name[len(prefix) :] in {s.name for s in CATALOG}:
            return name
        raise


def logical_name(physical: str, prefix: str) -> str:
    """The catalog name of a physical topic (the name itself when it has not the prefix)."""
    return physical[len(prefix) :] if prefix and physical.startswith(prefix) else physical


async def topic_partitions(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    """Every partition of ``topic`` from cluster metadata; OperatorError when it is unknown."""
    ids = consumer.partitions_for_topic(topic)
    if not ids:
        await consumer._client.force_metadata_update()
        ids = consumer.partitions_for_topic(topic)
    if not ids:
        raise OperatorError(f"topic {topic} does not exist on the broker")
    return [TopicPartition(topic, p) for p in sorted(ids)]


class OffsetReader:
    """Two short-lived consumers (read_committed and not) that look offsets up, no group."""

    def __init__(self, settings: Settings) -> None:
        self.committed = kafka.consumer(settings, client_id="scoreline-ops")
        self.uncommitted = kafka.consumer(
            settings, client_id="scoreline-ops", isolation_level="read_uncommitted"
        )

    async def __aenter__(self) -> OffsetReader:
        await self.committed.start()
        try:
            await self.uncommitted.start()
        except BaseException:
            await self.committed.stop()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.uncommitted.stop()
        await self.committed.stop()

    async def partitions(
        self, topic: str, only: Collection[int] | None = None
    ) -> list[TopicPartition]:
        found = await topic_partitions(self.committed, topic)
        if only is None:
            return found
        missing = sorted(set(only) - {tp.partition for tp in found})
        if missing:
            raise OperatorError(
                f"topic {topic} has partitions {[tp.partition for tp in found]}, not {missing}"
            )
        return [tp for tp in found if tp.partition in only]

    async def watermarks(self, tps: Iterable[TopicPartition]) -> dict[TopicPartition, Watermark]:
        wanted = list(tps)
        if not wanted:
            return {}
        earliest = await self.committed.beginning_offsets(wanted)
        stable = await self.committed.end_offsets(wanted)
        log_end = await self.uncommitted.end_offsets(wanted)
        return {tp: Watermark(earliest[tp], log_end[tp], stable[tp]) for tp in wanted}

    async def pending(
        self, tp: TopicPartition, start: int, end: int, *, timeout_s: float = 5.0
    ) -> int | None:
        """The records a read_committed consumer at ``start`` still reads before ``end``.

        Not ``end - start``: transaction markers take offsets (a consumer that committed
        "last record + 1" stays a marker or two behind the stable end for ever), and aborted
        records are never read. None when reading them takes longer than ``timeout_s``.
        """
        if start >= end:
            return 0
        reader = self.committed
        reader.assign([tp])
        reader.seek(tp, start)
        count = 0
        deadline = time.monotonic() + timeout_s
        while await reader.position(tp) < end:
            if time.monotonic() > deadline:
                return None
            batch = await reader.getmany(tp, timeout_ms=200, max_records=10_000)
            count += sum(1 for record in batch.get(tp, []) if record.offset < end)
        return count

    async def offsets_at(
        self, tps: Iterable[TopicPartition], moment: datetime
    ) -> dict[TopicPartition, int | None]:
        """The first offset whose timestamp is at or after ``moment`` (None: no such record)."""
        millis = int(moment.timestamp() * 1000)
        wanted = list(tps)
        if not wanted:
            return {}
        found = await self.committed.offsets_for_times({tp: millis for tp in wanted})
        return {tp: (None if found.get(tp) is None else found[tp].offset) for tp in wanted}


async def committed_offsets(admin: AIOKafkaAdminClient, group_id: str) -> dict[TopicPartition, int]:
    """Every offset ``group_id`` committed (partitions without one are left out)."""
    found = await admin.list_consumer_group_offsets(group_id)
    return {tp: meta.offset for tp, meta in found.items() if meta.offset >= 0}


async def commit_group_offsets(
    admin: AIOKafkaAdminClient, group_id: str, offsets: Mapping[TopicPartition, int]
) -> None:
    """Commit ``offsets`` for ``group_id`` as an admin does (generation -1, no member id).

    The coordinator accepts it only while the group has no members, the same rule as
    ``kafka-consumer-groups --reset-offsets --execute`` (Admin.alterConsumerGroupOffsets).
    """
    by_topic: dict[str, list[tuple[int, int, str]]] = {}
    for tp, offset in sorted(offsets.items()):
        by_topic.setdefault(tp.topic, []).append((tp.partition, offset, "scoreline offsets reset"))
    request = OffsetCommitRequest(
        group_id,
        OffsetCommitRequest.DEFAULT_GENERATION_ID,
        "",
        OffsetCommitRequest.DEFAULT_RETENTION_TIME,
        list(by_topic.items()),
    )
    node = await admin.find_coordinator(group_id)
    response: Any = await admin._send_request(request, node)
    failures = [
        f"{topic}[{partition}]: {for_code(error).__name__}"
        for topic, partitions in response.topics
        for partition, error in partitions
        if error
    ]
    if failures:
        raise OperatorError(
            f"the coordinator refused the offsets of group {group_id}: {'; '.join(failures)}"
        )
