"""``scoreline offsets reset``: move a group's offsets, Kafka group or sink, safely.

Dry-run by default: the plan (partition | current | new) is computed and nothing changes.
With ``execute`` the plan is applied, and only while nothing consumes with those offsets:

- Kafka group: refused while it has a live member (:func:`core.ops.groups.assess`).
  Static members with no liveness lease may be removed first (``remove_static_members``,
  KIP-345 LeaveGroup v3); the group is then watched for ``grace_s``: a live member would
  rejoin within a heartbeat interval, and then nothing is reset. The offsets are committed
  as an admin commits them (generation -1), which the coordinator itself refuses while the
  group has members.
- Sink: the sink's lease is taken exclusively for the whole operation, so no sink runs
  and none can start (it waits for the lease, then loads the new offsets); the offsets
  are written where the sink keeps them (Postgres ``sink_offsets`` or the Redis hash).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg
import redis.asyncio as aioredis
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from core import kafka
from core.logging import get_logger
from core.ops.exceptions import GroupActiveError, InvalidResetError, OperatorError
from core.ops.groups import (
    GroupView,
    SinkGroup,
    assess,
    describe_kafka_group,
    sink_group,
    sink_partitions,
    sink_store,
    sink_stored_offsets,
    store_errors,
)
from core.ops.offsets import (
    PartitionPosition,
    PlannedOffset,
    ResetSpec,
    parse_topic_partitions,
    plan_reset,
)
from core.ops.positions import OffsetReader, commit_group_offsets, resolve_topic
from core.ops.protocol import describe_groups, remove_static_members
from core.settings import Settings
from core.stack import resolve_urls
from sinks.liveness import exclusive_lease, lease_holders, sink_lease_name
from sinks.offsets import store_pg_offsets, store_redis_offsets
from sinks.redis_layout import offsets_key

log = get_logger("ops.offsets")

#: How long a removed static member has to rejoin before it is taken for stopped: three
#: heartbeat intervals of the worker (Faust's broker_heartbeat_interval is 3 s); measured
#: on the embedded broker, a live worker rejoins 0.8-2.9 s after its removal.
DEFAULT_GRACE_S = 10.0
UNKNOWN_MEMBER_ID = 25  # LeaveGroup: that instance is not (or no longer) a member


@dataclass(frozen=True, slots=True)
class ResetOutcome:
    group: str
    store: str
    spec: ResetSpec
    plan: list[PlannedOffset]
    executed: bool
    static_members: tuple[str, ...]  # removed (executed) or to remove (dry run)
    member_group: str | None


def _selected(topics: Sequence[str]) -> list[tuple[str, tuple[int, ...] | None]]:
    return [parse_topic_partitions(t) for t in topics]


async def _positions(
    reader: OffsetReader,
    tps: Sequence[TopicPartition],
    current: dict[TopicPartition, int],
    spec: ResetSpec,
    now: datetime,
) -> list[PartitionPosition]:
    marks = await reader.watermarks(tps)
    moment = spec.target_time(now)
    at_time = await reader.offsets_at(tps, moment) if moment is not None else {}
    return [
        PartitionPosition(
            topic=tp.topic,
            partition=tp.partition,
            current=current.get(tp),
            earliest=marks[tp].earliest,
            end=marks[tp].stable_end,
            at_time=at_time.get(tp),
        )
        for tp in tps
    ]


async def reset_offsets(
    settings: Settings,
    group: str,
    topics: Sequence[str],
    spec: ResetSpec,
    *,
    execute: bool = False,
    remove_static_members: bool = False,
    grace_s: float = DEFAULT_GRACE_S,
    now: datetime | None = None,
) -> ResetOutcome:
    """Plan (and with ``execute`` apply) a reset; GroupActiveError changes nothing."""
    now = now or datetime.now(UTC)
    sink = sink_group(group)
    if sink is not None:
        return await _reset_sink(settings, sink, topics, spec, execute=execute, now=now)
    async with OffsetReader(settings) as reader:
        admin = kafka.admin_client(settings)
        await admin.start()
        try:
            return await _reset_kafka(
                settings,
                admin,
                reader,
                group,
                topics,
                spec,
                execute=execute,
                remove_static_members=remove_static_members,
                grace_s=grace_s,
                now=now,
            )
        finally:
            await admin.close()


async def _reset_kafka(
    settings: Settings,
    admin: AIOKafkaAdminClient,
    reader: OffsetReader,
    group: str,
    topics: Sequence[str],
    spec: ResetSpec,
    *,
    execute: bool,
    remove_static_members: bool,
    grace_s: float,
    now: datetime,
) -> ResetOutcome:
    view = await describe_kafka_group(settings, admin, reader, group)
    activity = assess(view)
    if activity.blocking:
        raise GroupActiveError(
            f"group {group} is active, nothing changed: " + "; ".join(activity.blocking)
        )
    if activity.removable and not remove_static_members:
        raise GroupActiveError(
            f"group {activity.removable_group} lists static member(s) "
            f"{', '.join(activity.removable)} that hold no liveness lease, nothing changed. "
            "A static member (group.instance.id) never leaves its group when it stops; "
            "Apache Kafka drops it after session.timeout.ms, the embedded broker never "
            "does. If it is stopped, add --remove-static-members (KIP-345 removal)."
        )
    current = {TopicPartition(p.topic, p.partition): p.committed for p in view.partitions}
    committed = {tp: offset for tp, offset in current.items() if offset is not None}
    tps: list[TopicPartition] = []
    if topics:
        for name, only in _selected(topics):
            tps += await reader.partitions(resolve_topic(name, settings.topic_prefix), only)
    else:
        tps = sorted(committed)
        if not tps:
            raise InvalidResetError(f"group {group} has no committed offsets: name --topic")
    plan = plan_reset(spec, await _positions(reader, tps, committed, spec, now))
    if not execute:
        return ResetOutcome(
            group, "kafka", spec, plan, False, activity.removable, activity.removable_group
        )
    if activity.removable and activity.removable_group is not None:
        await _remove_and_check(admin, activity.removable_group, activity.removable, grace_s)
    await commit_group_offsets(
        admin, group, {TopicPartition(p.topic, p.partition): p.new for p in plan}
    )
    log.info(
        "offsets.reset",
        group=group,
        mode=spec.describe(),
        partitions=len(plan),
        moved=sum(p.changes for p in plan),
    )
    return ResetOutcome(
        group, "kafka", spec, plan, True, activity.removable, activity.removable_group
    )


async def _remove_and_check(
    admin: AIOKafkaAdminClient, group: str, instances: Sequence[str], grace_s: float
) -> None:
    """Remove lease-free static members; GroupActiveError if one of them rejoins."""
    results = await remove_static_members(admin, group, list(instances))
    failed = {i: code for i, code in results.items() if code not in (0, UNKNOWN_MEMBER_ID)}
    if failed:
        raise OperatorError(f"could not remove static members of {group}: {failed}")
    log.info("offsets.members_removed", group=group, instances=list(instances))
    deadline = time.monotonic() + grace_s
    while True:
        (info,) = await describe_groups(admin, [group])
        if info.members:
            who = ", ".join(m.instance_id or m.member_id for m in info.members)
            raise GroupActiveError(
                f"{who} joined group {group} again after the removal: it is alive, so "
                "nothing was reset. Stop it, then run the command again"
            )
        if time.monotonic() >= deadline:
            return
        await asyncio.sleep(0.25)


async def _reset_sink(
    settings: Settings,
    sink: SinkGroup,
    topics: Sequence[str],
    spec: ResetSpec,
    *,
    execute: bool,
    now: datetime,
) -> ResetOutcome:
    url = resolve_urls(settings).database_url
    lease = sink_lease_name(sink.consumer, settings.topic_prefix)
    async with store_errors("postgres", url):
        conn = await asyncpg.connect(url)
    try:
        async with store_errors("postgres", url), exclusive_lease(conn, lease) as free:
            if not free:
                holders = await lease_holders(conn, lease)
                view = GroupView(sink.name, "sink", "running", sink.store, holders=holders)
                reasons = assess(view).blocking or (f"{sink.name} holds its lease",)
                raise GroupActiveError(
                    f"{sink.name} is running, nothing changed: {'; '.join(reasons)}"
                )
            async with OffsetReader(settings) as reader:
                every = await sink_partitions(reader, settings, sink)
                tps = _sink_selection(settings, sink, every, topics)
                stored = await sink_stored_offsets(settings, sink, tps)
                plan = plan_reset(spec, await _positions(reader, tps, stored, spec, now))
            if execute:
                positions = {TopicPartition(p.topic, p.partition): p.new for p in plan}
                if sink.store == "postgres":
                    async with conn.transaction():
                        await store_pg_offsets(conn, sink.consumer, positions)
                else:
                    await _store_redis(settings, sink, positions)
                log.info(
                    "offsets.reset",
                    group=sink.name,
                    mode=spec.describe(),
                    partitions=len(plan),
                    moved=sum(p.changes for p in plan),
                )
    finally:
        await conn.close()
    return ResetOutcome(sink.name, sink_store(settings, sink), spec, plan, execute, (), None)


def _sink_selection(
    settings: Settings, sink: SinkGroup, every: list[TopicPartition], topics: Sequence[str]
) -> list[TopicPartition]:
    if not topics:
        return every
    chosen: list[TopicPartition] = []
    for name, only in _selected(topics):
        physical = resolve_topic(name, settings.topic_prefix)
        tps = [tp for tp in every if tp.topic == physical]
        if not tps:
            raise InvalidResetError(
                f"{sink.name} does not read {name}; it reads {', '.join(sink.topics)}"
            )
        missing = sorted(set(only or ()) - {tp.partition for tp in tps})
        if missing:
            raise InvalidResetError(f"{physical} has no partition {missing}")
        chosen += [tp for tp in tps if only is None or tp.partition in only]
    return chosen


async def _store_redis(
    settings: Settings, sink: SinkGroup, positions: dict[TopicPartition, int]
) -> None:
    url = resolve_urls(settings).redis_url
    async with store_errors("redis", url):
        client = aioredis.Redis.from_url(url)
        try:
            key = offsets_key(settings.redis_prefix, sink.consumer)
            await store_redis_offsets(client, key, positions)
        finally:
            await client.aclose()
