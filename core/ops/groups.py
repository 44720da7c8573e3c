"""Consumer groups as an operator sees them: Kafka groups and the sinks' own "groups".

A Kafka group is described by its coordinator (members, with their static instance ids,
and assignments: DescribeGroups v4) and by its committed offsets. The sinks are not Kafka
groups: each stores its offsets with its data (``sink:postgres`` and ``sink:markets`` in
the ``sink_offsets`` table, ``sink:redis`` in a Redis hash) and says it runs by holding a lease
(:mod:`sinks.liveness`). Both are shown the same way: members, and per partition the
committed offset, the log end, the stable end (LSO) and the lag (stable end - committed).

Whether a group is *active* (offsets may not move) is decided by :func:`assess`:

- a sink is active while a session holds its lease;
- a dynamic Kafka member is active: it leaves by itself when it stops (LeaveGroup) and,
  if killed, Apache Kafka drops it after ``session.timeout.ms``;
- a static Kafka member (``group.instance.id``) never sends LeaveGroup, so a stopped one
  stays listed until ``session.timeout.ms`` (Apache Kafka) or for ever (the embedded
  broker). It is active when it holds its liveness lease (:func:`member_lease_name`),
  otherwise *removable*: the operator may remove it (KIP-345 LeaveGroup by instance id)
  with ``--remove-static-members``; the removal is then checked (a live member rejoins).
- a process that commits a group's offsets without joining it (the boards stage assigns
  its partitions and commits with ``send_offsets_to_transaction``) leaves no trace in the
  group: it makes the group active by holding the group's lease
  (:func:`sinks.liveness.group_lease_name`).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Literal

import asyncpg
import redis.asyncio as aioredis
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from redis.exceptions import RedisError

from core import kafka
from core.ops.exceptions import OperatorError, UnknownGroupError
from core.ops.positions import OffsetReader, committed_offsets, resolve_topic
from core.ops.protocol import GroupInfo, describe_groups
from core.settings import Settings, mask_url
from core.stack import resolve_urls
from sinks import postgres as postgres_sink
from sinks import postgres_markets as markets_sink
from sinks import redis as redis_sink
from sinks.liveness import (
    LeaseHolder,
    group_lease_name,
    lease_holders,
    member_lease_name,
    sink_lease_name,
)
from sinks.offsets import load_pg_offsets, load_redis_offsets
from sinks.redis_layout import offsets_key

#: Gaps (stable end - committed) up to this are read to count the records in them exactly.
EXACT_LAG_MAX = 1000

Kind = Literal["kafka", "sink"]
Liveness = Literal["alive", "lease-free static", "dynamic", "unknown"]


@dataclass(frozen=True, slots=True)
class SinkGroup:
    """A sink seen as a group: its consumer name, its topics, where its offsets live."""

    name: str
    consumer: str
    topics: tuple[str, ...]
    store: Literal["postgres", "redis"]


SINK_GROUPS: dict[str, SinkGroup] = {
    "sink:postgres": SinkGroup(
        "sink:postgres", postgres_sink.CONSUMER, postgres_sink.TOPICS, "postgres"
    ),
    "sink:markets": SinkGroup(
        "sink:markets", markets_sink.CONSUMER, markets_sink.TOPICS, "postgres"
    ),
    "sink:redis": SinkGroup("sink:redis", redis_sink.CONSUMER, redis_sink.TOPICS, "redis"),
}


@dataclass(frozen=True, slots=True)
class MemberView:
    member_id: str
    instance_id: str | None
    client_id: str
    host: str
    partitions: tuple[str, ...]  # "topic:partition"
    liveness: Liveness


@dataclass(frozen=True, slots=True)
class PartitionLag:
    topic: str  # physical
    partition: int
    owner: str | None  # the member (instance id or member id) it is assigned to
    committed: int | None
    log_end: int
    stable_end: int
    pending: int | None = None  # records still to read, counted (small gaps only)

    @property
    def lag(self) -> int | None:
        """Records still to read: counted when the gap is small, else the offset distance
        (an upper bound: transaction markers take offsets too)."""
        if self.committed is None:
            return None
        if self.pending is not None:
            return self.pending
        return max(0, self.stable_end - self.committed)


@dataclass(slots=True)
class GroupView:
    name: str
    kind: Kind
    state: str
    store: str
    members: list[MemberView] = field(default_factory=list)
    partitions: list[PartitionLag] = field(default_factory=list)
    holders: list[LeaseHolder] = field(default_factory=list)  # of the sink's or group's lease

    @property
    def total_lag(self) -> int:
        return sum(p.lag or 0 for p in self.partitions)


@dataclass(frozen=True, slots=True)
class Activity:
    """Why a group's offsets may not move now, and which static members could be removed."""

    blocking: tuple[str, ...]
    removable: tuple[str, ...]  # instance ids of lease-free static members
    removable_group: str | None  # the group they are members of

    @property
    def active(self) -> bool:
        return bool(self.blocking or self.removable)


def assess(view: GroupView) -> Activity:
    """Whether ``view``'s offsets may move (see the module docstring)."""
    leases = tuple(
        (
            f"{view.name} is running: session {h.pid} ({h.application_name or '?'}, "
            f"{h.client_addr or 'local'}) holds its lease"
        )
        if h.mode == "ShareLock"
        else f"another operator command holds {view.name}'s lease (session {h.pid})"
        for h in view.holders
    )
    if view.kind == "sink":
        return Activity(leases, (), None)
    blocking: list[str] = list(leases)
    removable: list[str] = []
    for m in view.members:
        who = f"member {m.instance_id or m.member_id} of {view.name} on {m.host}"
        if m.liveness == "alive":
            blocking.append(f"{who} is alive: it holds its liveness lease")
        elif m.liveness == "dynamic":
            blocking.append(
                f"{who} is a dynamic member: stop it; a killed one leaves after "
                "session.timeout.ms on Apache Kafka (never on the embedded broker: "
                "restart the broker with every client stopped, docs/broker.md)"
            )
        elif m.instance_id is not None:  # lease-free or unknown: a stopped static member?
            removable.append(m.instance_id)
    return Activity(tuple(blocking), tuple(removable), view.name if removable else None)


@contextlib.asynccontextmanager
async def store_errors(store: str, url: str) -> AsyncIterator[None]:
    """Postgres and Redis errors as OperatorError, naming the store (password masked)."""
    try:
        yield
    except asyncpg.UndefinedTableError as e:
        raise OperatorError(f"{store} at {mask_url(url)}: {e}; run `scoreline db migrate`") from e
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, RedisError) as e:
        raise OperatorError(f"{store} at {mask_url(url)}: {type(e).__name__}: {e}") from e


async def _pg_holders(settings: Settings, names: Sequence[str]) -> dict[str, list[LeaseHolder]]:
    url = resolve_urls(settings).database_url
    async with store_errors("postgres", url):
        conn = await asyncpg.connect(url)
        try:
            return {name: await lease_holders(conn, name) for name in names}
        finally:
            await conn.close()


async def _kafka_liveness(
    settings: Settings, info: GroupInfo
) -> tuple[dict[str, Liveness], list[LeaseHolder]]:
    """Each member's liveness, and who holds the group's own lease (no Postgres: unknown)."""
    static = [m for m in info.members if m.instance_id]
    verdicts: dict[str, Liveness] = {m.member_id: "dynamic" for m in info.members}
    names = {m.member_id: member_lease_name(info.group_id, str(m.instance_id)) for m in static}
    group_lease = group_lease_name(info.group_id)
    try:
        holders = await _pg_holders(settings, [*names.values(), group_lease])
    except OperatorError:
        return verdicts | {member: "unknown" for member in names}, []
    verdicts |= {
        member: ("alive" if holders[name] else "lease-free static")
        for member, name in names.items()
    }
    return verdicts, holders[group_lease]


async def describe_kafka_group(
    settings: Settings,
    admin: AIOKafkaAdminClient,
    reader: OffsetReader,
    group_id: str,
) -> GroupView:
    (info,) = await describe_groups(admin, [group_id])
    committed = await committed_offsets(admin, group_id)
    liveness, holders = await _kafka_liveness(settings, info)
    owners: dict[TopicPartition, str] = {}
    members = []
    for m in info.members:
        for topic, partition in m.assignment:
            owners[TopicPartition(topic, partition)] = m.instance_id or m.member_id
        members.append(
            MemberView(
                m.member_id,
                m.instance_id,
                m.client_id,
                m.host,
                tuple(f"{t}:{p}" for t, p in m.assignment),
                liveness[m.member_id],
            )
        )
    tps = sorted(set(committed) | set(owners))
    view = GroupView(
        name=group_id,
        kind="kafka",
        state=info.state,
        store="kafka",
        members=members,
        partitions=await _lags(reader, tps, owners, committed),
        holders=holders,
    )
    return view


async def _lags(
    reader: OffsetReader,
    tps: Sequence[TopicPartition],
    owners: dict[TopicPartition, str],
    committed: dict[TopicPartition, int],
) -> list[PartitionLag]:
    marks = await reader.watermarks(tps)
    lags = []
    for tp in tps:
        mark, position = marks[tp], committed.get(tp)
        pending = None
        if position is not None and 0 < mark.stable_end - position <= EXACT_LAG_MAX:
            pending = await reader.pending(tp, position, mark.stable_end)
        lags.append(
            PartitionLag(
                tp.topic,
                tp.partition,
                owners.get(tp),
                position,
                mark.log_end,
                mark.stable_end,
                pending,
            )
        )
    return lags


async def sink_stored_offsets(
    settings: Settings, group: SinkGroup, tps: Sequence[TopicPartition]
) -> dict[TopicPartition, int]:
    urls = resolve_urls(settings)
    if group.store == "postgres":
        async with store_errors("postgres", urls.database_url):
            conn = await asyncpg.connect(urls.database_url)
            try:
                return await load_pg_offsets(conn, group.consumer, tps)
            finally:
                await conn.close()
    async with store_errors("redis", urls.redis_url):
        client = aioredis.Redis.from_url(urls.redis_url)
        try:
            key = offsets_key(settings.redis_prefix, group.consumer)
            return await load_redis_offsets(client, key, tps)
        finally:
            await client.aclose()


def sink_store(settings: Settings, group: SinkGroup) -> str:
    if group.store == "postgres":
        return f"postgres sink_offsets (consumer {group.consumer})"
    return f"redis hash {offsets_key(settings.redis_prefix, group.consumer)}"


async def sink_partitions(
    reader: OffsetReader, settings: Settings, group: SinkGroup
) -> list[TopicPartition]:
    tps: list[TopicPartition] = []
    for name in group.topics:
        tps += await reader.partitions(resolve_topic(name, settings.topic_prefix))
    return tps


async def describe_sink_group(
    settings: Settings, reader: OffsetReader, group: SinkGroup
) -> GroupView:
    tps = await sink_partitions(reader, settings, group)
    stored = await sink_stored_offsets(settings, group, tps)
    lease = _sink_lease(settings, group)
    holders = (await _pg_holders(settings, [lease]))[lease]
    members = [
        MemberView(
            member_id=f"postgres session {h.pid}",
            instance_id=None,
            client_id=h.application_name,
            host=h.client_addr or "local",
            partitions=(),
            liveness="alive",
        )
        for h in holders
        if h.mode == "ShareLock"
    ]
    return GroupView(
        name=group.name,
        kind="sink",
        state="running" if members else ("stopped" if stored else "never ran"),
        store=sink_store(settings, group),
        members=members,
        partitions=await _lags(reader, tps, {}, stored),
        holders=holders,
    )


def _sink_lease(settings: Settings, group: SinkGroup) -> str:
    return sink_lease_name(group.consumer, settings.topic_prefix)


def sink_group(name: str) -> SinkGroup | None:
    return SINK_GROUPS.get(name)


async def describe_group(settings: Settings, name: str) -> GroupView:
    """One group, Kafka or sink; UnknownGroupError when it is neither."""
    async with OffsetReader(settings) as reader:
        group = sink_group(name)
        if group is not None:
            return await describe_sink_group(settings, reader, group)
        admin = kafka.admin_client(settings)
        await admin.start()
        try:
            known = {g[0] for g in await admin.list_consumer_groups()}
            if name not in known:
                raise UnknownGroupError(
                    f"no consumer group {name!r} on the broker, and not a sink "
                    f"({', '.join(SINK_GROUPS)}); `scoreline groups list` shows them"
                )
            return await describe_kafka_group(settings, admin, reader, name)
        finally:
            await admin.close()


async def list_group_views(settings: Settings, *, every_prefix: bool = False) -> list[GroupView]:
    """Every Kafka group of this topic prefix (or every one), then the sinks."""
    views: list[GroupView] = []
    async with OffsetReader(settings) as reader:
        admin = kafka.admin_client(settings)
        await admin.start()
        try:
            names = sorted(str(g[0]) for g in await admin.list_consumer_groups())
            prefix = settings.topic_prefix
            for name in names:
                if every_prefix or not prefix or name.startswith(prefix):
                    views.append(await describe_kafka_group(settings, admin, reader, name))
        finally:
            await admin.close()
        for group in SINK_GROUPS.values():
            try:
                views.append(await describe_sink_group(settings, reader, group))
            except OperatorError as e:  # its topics do not exist (yet) under this prefix
                views.append(GroupView(group.name, "sink", f"unavailable: {e}", group.store))
    return views
