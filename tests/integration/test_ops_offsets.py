"""``scoreline offsets reset`` and ``scoreline groups`` against a real broker, Postgres, Redis.

A reset refuses while the group has a live member and changes nothing; a dry run changes
nothing; ``--execute`` moves the offsets of a Kafka group, and the offsets the sinks keep in
Postgres and Redis, and a rewound sink re-applies nothing twice. A static member that
stopped stays in its group (for ever on the embedded broker): ``--remove-static-members``
removes it, unless it rejoins (it was alive) or holds its liveness lease.

The helpers at the top (run the CLI as a process or in-process) are shared by
test_ops_tap.py and test_rewind_e2e.py.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, TopicPartition
from typer.testing import CliRunner, Result

from core import kafka
from core.cli import app as cli_app
from core.logging import configure_logging
from core.settings import Settings, get_settings
from core.topics import apply_catalog
from schemas.catalog import ENTRIES_PREDICTIONS, LEADERBOARD_UPDATES, SCORES, spec, topic
from sinks.liveness import group_lease_name, holding_lease, member_lease_name
from sinks.postgres import run_postgres_sink
from sinks.redis import run_redis_sink
from streams.state import committed_offset
from tests.conftest import Services
from tests.integration.test_postgres_sink import a_score, produce, running
from tests.integration.test_redis_sink import an_update, board
from tests.integration.test_redis_sink import caught_up as redis_caught_up
from tests.processes import Role, role_env, scoreline
from tests.support import eventually, unique

PARTITIONS = spec(ENTRIES_PREDICTIONS).partitions
PER_PARTITION = 10


# -- the CLI, as a process and in-process (shared with the other ops tests) --------------


def cli_env(settings: Settings) -> dict[str, str]:
    env = role_env(settings)
    keys = ("KAFKA_", "DATABASE_URL", "REDIS_URL", "SCORELINE_")
    return {k: v for k, v in env.items() if k.startswith(keys)}


async def invoke(settings: Settings, *args: str) -> Result:
    """The CLI in this process (faster than a process; exit codes of typer, not of main)."""
    configure_logging()  # as main() does: logs to stderr, stdout has only the output

    def run() -> Result:
        get_settings.cache_clear()
        try:
            return CliRunner().invoke(cli_app, list(args), env=cli_env(settings))
        finally:
            get_settings.cache_clear()

    return await asyncio.to_thread(run)


# -- helpers ----------------------------------------------------------------------------


@pytest.fixture
async def topics(settings: Settings) -> None:
    """Every catalog topic under this test's prefix."""
    await apply_catalog(settings)


def entries_tps(settings: Settings) -> list[TopicPartition]:
    name = topic(ENTRIES_PREDICTIONS, settings.topic_prefix)
    return [TopicPartition(name, p) for p in range(PARTITIONS)]


async def fill_days(settings: Settings, first: datetime) -> None:
    """PER_PARTITION records on every partition, the i-th stamped ``first + i days``."""
    out = kafka.producer(settings)
    await out.start()
    try:
        for tp in entries_tps(settings):
            for i in range(PER_PARTITION):
                stamp = first + timedelta(days=i)
                await out.send_and_wait(
                    tp.topic,
                    value=f"entry {i}".encode(),
                    key=f"k{i}".encode(),
                    partition=tp.partition,
                    timestamp_ms=int(stamp.timestamp() * 1000),
                )
    finally:
        await out.stop()


async def commit(settings: Settings, group: str, offsets: dict[TopicPartition, int]) -> None:
    """Commit offsets for a group as a consumer without membership does."""
    committer = kafka.consumer(settings, group_id=group)
    await committer.start()
    try:
        committer.assign(list(offsets))
        await committer.commit(offsets)
    finally:
        await committer.stop()


async def committed(settings: Settings, group: str) -> dict[int, int]:
    admin = kafka.admin_client(settings)
    await admin.start()
    try:
        return {
            tp.partition: await committed_offset(admin, group, tp) for tp in entries_tps(settings)
        }
    finally:
        await admin.close()


async def member(settings: Settings, group: str, instance: str | None = None) -> AIOKafkaConsumer:
    """A member of ``group`` subscribed to entries.predictions, once it has partitions."""
    options: dict[str, Any] = {"group_id": group, "heartbeat_interval_ms": 1000}
    if instance is not None:
        options["group_instance_id"] = instance
    name = topic(ENTRIES_PREDICTIONS, settings.topic_prefix)
    consumer = kafka.consumer(settings, name, **options)
    await consumer.start()
    await eventually(lambda: consumer.assignment(), timeout=30, what="the member's partitions")
    return consumer


async def describe(settings: Settings, group: str) -> dict[str, Any]:
    result = await invoke(settings, "groups", "describe", group, "--format", "json")
    assert result.exit_code == 0, result.output
    described: dict[str, Any] = json.loads(result.stdout)
    return described


def reset_args(group: str, *args: str) -> tuple[str, ...]:
    return ("offsets", "reset", "--group", group, *args)


# -- Kafka groups -------------------------------------------------------------------------


async def test_a_reset_refuses_while_a_member_is_active_and_changes_nothing(
    settings: Settings, topics: None
) -> None:
    group = settings.topic_prefix + unique("ops-")
    await fill_days(settings, datetime.now(UTC) - timedelta(days=12))
    await commit(settings, group, dict.fromkeys(entries_tps(settings), 6))
    live = await member(settings, group)
    try:
        described = await describe(settings, group)
        assert described["active"] is True
        assert [m["liveness"] for m in described["members"]] == ["dynamic"]
        for extra in ((), ("--remove-static-members",)):
            args = ("--topic", ENTRIES_PREDICTIONS, "--to-earliest", "--execute", *extra)
            refused = await scoreline(settings, *reset_args(group, *args))
            assert refused.code == 1, refused
            assert "is active, nothing changed" in refused.err
            assert "dynamic member" in refused.err
        dry = await scoreline(settings, *reset_args(group, "--to-earliest"))
        assert dry.code == 1, "an active group is refused even in a dry run (as Kafka's tool)"
        assert await committed(settings, group) == dict.fromkeys(range(PARTITIONS), 6)
    finally:
        await live.stop()


async def test_a_dry_run_changes_nothing_and_execute_moves_the_offsets(
    settings: Settings, topics: None
) -> None:
    group = settings.topic_prefix + unique("ops-")
    first = datetime.now(UTC) - timedelta(days=12)  # the i-th record: first + i days
    await fill_days(settings, first)
    await commit(settings, group, dict.fromkeys(entries_tps(settings), 8))
    everywhere = ("--topic", ENTRIES_PREDICTIONS)

    async def reset(*args: str) -> dict[str, Any]:
        result = await invoke(settings, *reset_args(group, *everywhere, *args, "--format", "json"))
        assert result.exit_code == 0, result.output
        outcome: dict[str, Any] = json.loads(result.stdout)
        return outcome

    dry = await reset("--to-earliest")
    assert dry["executed"] is False
    assert [(p["current"], p["new"]) for p in dry["partitions"]] == [(8, 0)] * PARTITIONS
    assert await committed(settings, group) == dict.fromkeys(range(PARTITIONS), 8)

    applied = await scoreline(
        settings, *reset_args(group, *everywhere, "--to-earliest", "--execute")
    )
    assert applied.code == 0, applied
    assert "applied: 4 of 4 partition(s) moved" in applied.out
    assert await committed(settings, group) == dict.fromkeys(range(PARTITIONS), 0)

    async def moved_to(*args: str) -> dict[int, int]:
        outcome = await reset(*args, "--execute")
        assert outcome["executed"] is True
        now = await committed(settings, group)
        assert now == {p["partition"]: p["new"] for p in outcome["partitions"]}
        return now

    at_day_3 = (first + timedelta(days=3)).isoformat()
    assert await moved_to("--to-datetime", at_day_3) == dict.fromkeys(range(PARTITIONS), 3)
    assert await moved_to("--shift-by", "4") == dict.fromkeys(range(PARTITIONS), 7)
    # now - 7.5 days = first + 4.5 days: the first record at or after it is the 6th.
    assert await moved_to("--by-duration", "P7DT12H") == dict.fromkeys(range(PARTITIONS), 5)
    clamped = await reset("--to-offset", "100", "--execute")
    assert [(p["new"], p["clamped"]) for p in clamped["partitions"]] == [(10, True)] * PARTITIONS
    assert await moved_to("--shift-by", "-1000") == dict.fromkeys(range(PARTITIONS), 0)

    one = await invoke(
        settings,
        *reset_args(group, "--topic", f"{ENTRIES_PREDICTIONS}:1", "--to-latest", "--execute"),
    )
    assert one.exit_code == 0, one.output
    assert await committed(settings, group) == {0: 0, 1: 10, 2: 0, 3: 0}

    # No --topic: every partition the group has offsets for.
    every = await invoke(settings, *reset_args(group, "--to-latest", "--format", "json"))
    assert len(json.loads(every.stdout)["partitions"]) == PARTITIONS


async def test_a_stopped_static_member_is_removed_only_when_asked(
    settings: Settings, topics: None
) -> None:
    group = settings.topic_prefix + unique("ops-")
    await fill_days(settings, datetime.now(UTC) - timedelta(days=12))
    await commit(settings, group, dict.fromkeys(entries_tps(settings), 5))
    stopped = await member(settings, group, instance="ops-static-0")
    await stopped.stop()  # a static member sends no LeaveGroup: it stays listed

    described = await describe(settings, group)
    assert [(m["instance_id"], m["liveness"]) for m in described["members"]] == [
        ("ops-static-0", "lease-free static")
    ]
    assert described["removable_static_members"] == ["ops-static-0"]

    args = ("--topic", ENTRIES_PREDICTIONS, "--to-earliest")
    refused = await scoreline(settings, *reset_args(group, *args, "--execute"))
    assert refused.code == 1, refused
    assert "static member(s) ops-static-0" in refused.err
    assert "--remove-static-members" in refused.err

    dry = await invoke(
        settings, *reset_args(group, *args, "--remove-static-members", "--format", "json")
    )
    assert dry.exit_code == 0, dry.output
    assert json.loads(dry.stdout)["static_members"] == ["ops-static-0"]
    assert await committed(settings, group) == dict.fromkeys(range(PARTITIONS), 5)
    assert len((await describe(settings, group))["members"]) == 1, "a dry run removes no one"

    removed = await scoreline(
        settings,
        *reset_args(group, *args, "--execute", "--remove-static-members", "--grace-seconds", "2"),
    )
    assert removed.code == 0, removed
    assert "removed static member(s) ops-static-0" in removed.out
    assert await committed(settings, group) == dict.fromkeys(range(PARTITIONS), 0)
    assert (await describe(settings, group))["members"] == []


async def test_a_live_static_member_rejoins_and_nothing_is_reset(
    settings: Settings, topics: None
) -> None:
    group = settings.topic_prefix + unique("ops-")
    await fill_days(settings, datetime.now(UTC) - timedelta(days=12))
    await commit(settings, group, dict.fromkeys(entries_tps(settings), 5))
    live = await member(settings, group, instance="ops-static-1")
    try:
        args = ("--to-earliest", "--execute", "--remove-static-members", "--grace-seconds", "10")
        refused = await scoreline(
            settings, *reset_args(group, "--topic", ENTRIES_PREDICTIONS, *args)
        )
        assert refused.code == 1, refused
        assert "joined group" in refused.err and "it is alive" in refused.err
        assert await committed(settings, group) == dict.fromkeys(range(PARTITIONS), 5)
        await eventually(lambda: live.assignment(), timeout=30, what="the member back")
    finally:
        await live.stop()


async def test_a_static_member_holding_its_lease_is_not_removed(
    settings: Settings, topics: None, database_url: str
) -> None:
    group = settings.topic_prefix + unique("ops-")
    await fill_days(settings, datetime.now(UTC) - timedelta(days=12))
    await commit(settings, group, dict.fromkeys(entries_tps(settings), 5))
    live = await member(settings, group, instance="ops-static-2")
    stop = asyncio.Event()
    try:
        async with holding_lease(database_url, member_lease_name(group, "ops-static-2"), stop):
            before = await describe(settings, group)
            assert [m["liveness"] for m in before["members"]] == ["alive"]
            args = ("--to-earliest", "--execute", "--remove-static-members")
            refused = await scoreline(
                settings, *reset_args(group, "--topic", ENTRIES_PREDICTIONS, *args)
            )
            assert refused.code == 1, refused
            assert "holds its liveness lease" in refused.err
            after = await describe(settings, group)
            assert after["members"] == before["members"], "the live member was not touched"
        assert await committed(settings, group) == dict.fromkeys(range(PARTITIONS), 5)
    finally:
        stop.set()
        await live.stop()


async def test_a_process_holding_the_group_lease_blocks_a_reset(
    settings: Settings, topics: None, database_url: str
) -> None:
    """A group committed without membership (the boards stage) is active while leased."""
    group = settings.topic_prefix + unique("ops-")
    await fill_days(settings, datetime.now(UTC) - timedelta(days=12))
    await commit(settings, group, dict.fromkeys(entries_tps(settings), 5))
    args = ("--topic", ENTRIES_PREDICTIONS, "--to-earliest", "--execute")
    stop = asyncio.Event()
    async with holding_lease(database_url, group_lease_name(group), stop):
        described = await describe(settings, group)
        assert described["members"] == [] and described["active"] is True
        assert [h["mode"] for h in described["lease_holders"]] == ["ShareLock"]
        refused = await scoreline(settings, *reset_args(group, *args))
        assert refused.code == 1, refused
        assert "is running" in refused.err and "holds its lease" in refused.err
        assert await committed(settings, group) == dict.fromkeys(range(PARTITIONS), 5)
    stop.set()
    applied = await invoke(settings, *reset_args(group, *args))
    assert applied.exit_code == 0, applied.output
    assert await committed(settings, group) == dict.fromkeys(range(PARTITIONS), 0)


# -- the sinks' offsets -------------------------------------------------------------------


async def board_totals(database_url: str) -> list[tuple[str, str, Decimal]]:
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch("select board_id, member_id, total from board_totals order by 1, 2")
        return [(r["board_id"], r["member_id"], r["total"]) for r in rows]
    finally:
        await conn.close()


async def stored(settings: Settings, group: str) -> dict[tuple[str, int], int | None]:
    described = await describe(settings, group)
    return {(p["topic"], p["partition"]): p["committed"] for p in described["partitions"]}


async def test_sink_offsets_move_and_a_rewound_sink_applies_nothing_twice(
    settings: Settings, topics: None, database_url: str, services: Services, redis_prefix: str
) -> None:
    board_id = unique("league:")
    scores = [a_score(f"m{i % 5}", ["tournament:17", board_id], "2.50") for i in range(40)]
    sent_scores = await produce(settings, SCORES, [(s.member_id.encode(), s) for s in scores])
    updates = [an_update(board_id, f"m{i}", f"{i}.00", 1) for i in range(12)]
    sent_updates = await produce(
        settings, LEADERBOARD_UPDATES, [(u.board_id.encode(), u) for u in updates]
    )
    redis = aioredis.Redis.from_url(services.redis, decode_responses=True)
    scores_topic = topic(SCORES, settings.topic_prefix)

    async def caught_up(group: str, logical: str, total: int) -> None:
        name = topic(logical, settings.topic_prefix)

        async def done() -> bool:
            positions = await stored(settings, group)
            return sum(v or 0 for (t, _), v in positions.items() if t == name) >= total

        await eventually(done, timeout=60, interval=0.5, what=f"{group} caught up on {logical}")

    try:
        async with running(run_postgres_sink, settings), running(run_redis_sink, settings):
            await caught_up("sink:postgres", SCORES, sent_scores)
            await redis_caught_up(redis, redis_prefix, sent_updates)
            totals = await board_totals(database_url)
            lines = await board(redis, redis_prefix, board_id)
            assert (await describe(settings, "sink:postgres"))["state"] == "running"
            before = await stored(settings, "sink:postgres")
            refused = await scoreline(
                settings, *reset_args("sink:postgres", "--to-earliest", "--execute")
            )
            assert refused.code == 1, refused
            assert "sink:postgres is running, nothing changed" in refused.err
            refused_redis = await invoke(
                settings, *reset_args("sink:redis", "--to-earliest", "--execute")
            )
            assert refused_redis.exit_code == 1
            assert "is running" in str(refused_redis.exception)
            assert await stored(settings, "sink:postgres") == before

        assert totals == [
            (b, f"m{i}", Decimal("20.00"))
            for b in sorted(("tournament:17", board_id))
            for i in range(5)
        ]
        assert lines == [(f"m{i}", Decimal(f"{i}.00"), 0) for i in reversed(range(12))]
        described = await describe(settings, "sink:postgres")
        assert described["state"] == "stopped" and described["active"] is False

        dry = await invoke(
            settings,
            *reset_args("sink:postgres", "--topic", SCORES, "--to-earliest", "--format", "json"),
        )
        assert dry.exit_code == 0, dry.output
        plan = json.loads(dry.stdout)["partitions"]
        assert sum(p["current"] or 0 for p in plan) == sent_scores
        assert all(p["new"] == 0 for p in plan)
        assert await stored(settings, "sink:postgres") == before, "a dry run changes nothing"

        for group in ("sink:postgres", "sink:redis"):
            done = await scoreline(settings, *reset_args(group, "--to-earliest", "--execute"))
            assert done.code == 0, done
        rewound = await stored(settings, "sink:postgres")
        assert all(v == 0 for (t, _), v in rewound.items() if t == scores_topic)
        assert (await describe(settings, "sink:postgres"))["lag"] >= sent_scores
        assert sum((await stored(settings, "sink:redis")).values()) == 0  # type: ignore[arg-type]

        # Read everything again: the same rows, the same totals, nothing applied twice.
        async with running(run_postgres_sink, settings), running(run_redis_sink, settings):
            await caught_up("sink:postgres", SCORES, sent_scores)
            await redis_caught_up(redis, redis_prefix, sent_updates)
        assert await board_totals(database_url) == totals
        assert await board(redis, redis_prefix, board_id) == lines
    finally:
        await redis.aclose()


async def test_a_killed_sink_loses_its_lease(
    settings: Settings, topics: None, roles: dict[str, Role]
) -> None:
    sinks = roles["sinks"]
    sinks.start()

    async def running_now() -> bool:
        return bool((await describe(settings, "sink:postgres"))["state"] == "running")

    async def stopped_now() -> bool:
        return not await running_now()

    await eventually(running_now, timeout=60, interval=0.5, what="the sink holds its lease")
    sinks.kill()  # SIGKILL: no clean-up in the process, the lease goes with its connection
    await eventually(stopped_now, timeout=30, interval=0.5, what="the lease released")
    freed = await invoke(settings, *reset_args("sink:postgres", "--to-earliest", "--execute"))
    assert freed.exit_code == 0, freed.output
