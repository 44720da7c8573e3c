"""Where a sink left off: the next offset per partition, kept next to the data it covers.

Postgres: the ``sink_offsets`` table, written in the same transaction as the rows.
Redis: the hash ``offsets_key(prefix, consumer)`` with fields ``topic:partition``, written
by the same Lua call as the board updates (``sinks/redis_layout.py``).

Topics are stored by their physical name (with the topic prefix): two prefixes are two
different topics.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from typing import Any

from aiokafka import TopicPartition

#: The next offset to read, per partition.
Positions = Mapping[TopicPartition, int]

_LOAD_SQL = """
    select topic, partition, next_offset
    from sink_offsets
    where consumer = $1 and topic = any($2::text[])
"""

_STORE_SQL = """
    insert into sink_offsets as s (consumer, topic, partition, next_offset, updated_at)
    select $1, x.topic, x.partition, x.next_offset, now()
    from unnest($2::text[], $3::integer[], $4::bigint[]) as x(topic, partition, next_offset)
    on conflict (consumer, topic, partition) do update
        set next_offset = excluded.next_offset, updated_at = excluded.updated_at
"""


async def load_pg_offsets(
    conn: Any, consumer: str, partitions: Collection[TopicPartition]
) -> dict[TopicPartition, int]:
    """The stored next offset of each of ``partitions`` that has one."""
    topics = sorted({tp.topic for tp in partitions})
    rows = await conn.fetch(_LOAD_SQL, consumer, topics)
    stored = {TopicPartition(r["topic"], r["partition"]): int(r["next_offset"]) for r in rows}
    return {tp: offset for tp, offset in stored.items() if tp in partitions}


async def store_pg_offsets(conn: Any, consumer: str, positions: Positions) -> None:
    """Upsert ``positions`` for ``consumer``; call inside the transaction that wrote the rows."""
    if not positions:
        return
    ordered = sorted(positions.items())
    await conn.execute(
        _STORE_SQL,
        consumer,
        [tp.topic for tp, _ in ordered],
        [tp.partition for tp, _ in ordered],
        [offset for _, offset in ordered],
    )


def redis_field(tp: TopicPartition) -> str:
    """The offsets-hash field of a partition: ``topic:partition``."""
    return f"{tp.topic}:{tp.partition}"


def parse_redis_field(field: str | bytes) -> TopicPartition:
    """The partition a ``topic:partition`` field names (topics never contain ``:``)."""
    text = field.decode() if isinstance(field, bytes) else field
    topic, _, partition = text.rpartition(":")
    return TopicPartition(topic, int(partition))


def redis_offset_args(positions: Positions) -> list[str]:
    """``field, offset, field, offset, ...`` for an ``HSET`` of ``positions``."""
    args: list[str] = []
    for tp, offset in sorted(positions.items()):
        args.extend((redis_field(tp), str(offset)))
    return args


def decode_redis_offsets(
    raw: Mapping[Any, Any], partitions: Collection[TopicPartition]
) -> dict[TopicPartition, int]:
    """The positions of ``partitions`` in an ``HGETALL`` answer of an offsets hash."""
    stored = {parse_redis_field(field): int(value) for field, value in raw.items()}
    return {tp: offset for tp, offset in stored.items() if tp in partitions}


def positions_after(offsets: Iterable[tuple[TopicPartition, int]]) -> dict[TopicPartition, int]:
    """The next offset per partition after the given consumed ``(partition, offset)`` pairs."""
    positions: dict[TopicPartition, int] = {}
    for tp, offset in offsets:
        if offset + 1 > positions.get(tp, -1):
            positions[tp] = offset + 1
    return positions


async def load_redis_offsets(
    client: Any, key: str, partitions: Collection[TopicPartition]
) -> dict[TopicPartition, int]:
    """The positions of ``partitions`` stored in the offsets hash ``key`` (operator tools)."""
    raw = await client.hgetall(key)
    return decode_redis_offsets(raw, partitions)


async def store_redis_offsets(client: Any, key: str, positions: Positions) -> None:
    """Set ``positions`` in the offsets hash ``key``: an operator rewind, sink stopped."""
    args = redis_offset_args(positions)
    if args:
        await client.hset(key, mapping=dict(zip(args[::2], args[1::2], strict=True)))
