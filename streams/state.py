"""Partition state of the predictions worker, rebuilt from Kafka when a partition arrives.

The entry index has no changelog: ``entries.predictions`` is its changelog. A worker that
gets partition ``p`` reads ``streams.predictions.match-state[p]`` to its end, then
``entries.predictions[p]`` from the start up to the offset its group committed (what the
last committed transaction had processed) or, after an operator rewound the group, up to
the furthest entry a match state says was scored (so replayed entries are redeliveries),
read_committed. Events after that arrive through the agent as usual.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from core.exceptions import SchemaDecodeError
from core.logging import get_logger
from schemas.records import AvroRecord, PredictionPlaced
from streams.scoring import EntryIndex, MatchState, entries_covered

log = get_logger("streams.state")


@dataclass(slots=True)
class PartitionState:
    partition: int
    index: EntryIndex = field(default_factory=EntryIndex)
    matches: dict[str, MatchState] = field(default_factory=dict)


async def committed_offset(admin: AIOKafkaAdminClient, group_id: str, tp: TopicPartition) -> int:
    """The group's committed offset of ``tp`` (0 when it never committed)."""
    offsets = await admin.list_consumer_group_offsets(group_id, partitions=[tp])
    found = offsets.get(tp)
    return max(0, found.offset) if found is not None else 0


async def read_partition(
    consumer: AIOKafkaConsumer, tp: TopicPartition, until: int | None
) -> AsyncIterator[tuple[int, bytes | None, bytes | None]]:
    """(offset, key, value) of ``tp`` from its start up to ``until`` (None: its end)."""
    consumer.assign([tp])
    await consumer.seek_to_beginning(tp)
    if until is None:
        until = (await consumer.end_offsets([tp]))[tp]
    idle_since = time.monotonic()
    while await consumer.position(tp) < until:
        batch = await consumer.getmany(tp, timeout_ms=500, max_records=10_000)
        records = batch.get(tp, [])
        if not records:
            if time.monotonic() - idle_since > 60:
                raise TimeoutError(f"reading {tp.topic}[{tp.partition}] stalled before {until}")
            continue
        idle_since = time.monotonic()
        for record in records:
            if record.offset >= until:
                return
            yield record.offset, record.key, record.value


async def load_partition(
    consumer: AIOKafkaConsumer,
    admin: AIOKafkaAdminClient,
    decode: Callable[[bytes], AvroRecord],
    *,
    group_id: str,
    entries_topic: str,
    state_topic: str,
    partition: int,
) -> PartitionState:
    """Rebuild partition ``partition``: the entries index and the match states."""
    started = time.perf_counter()
    state = PartitionState(partition)
    async for _offset, key, value in read_partition(
        consumer, TopicPartition(state_topic, partition), None
    ):
        if key is None:
            continue
        if value is None:
            state.matches.pop(key.decode(), None)
        else:
            match = MatchState.from_json(json.loads(value))
            state.matches[match.match_id] = match
    entries_tp = TopicPartition(entries_topic, partition)
    committed = await committed_offset(admin, group_id, entries_tp)
    # After an operator rewound the group, the match states remember entries beyond the
    # committed offset: index those too, so replayed entries count as redeliveries and a
    # result scored again sees every entry it was scored with before.
    until = max(committed, entries_covered(state.matches.values()))
    async for offset, _key, value in read_partition(consumer, entries_tp, until):
        try:
            entry = decode(value or b"")
        except SchemaDecodeError:
            continue  # dead-lettered when it was first processed
        if isinstance(entry, PredictionPlaced):
            state.index.add(entry, offset)
    state.index.next_offset = max(state.index.next_offset, until)
    log.info(
        "state.loaded",
        partition=partition,
        entries=len(state.index.seen),
        entries_until=until,
        committed=committed,
        matches=len(state.matches),
        seconds=round(time.perf_counter() - started, 3),
    )
    return state
