"""The reprocess application: history re-scored with another rule version, beside the live one.

``scoreline reprocess --rules-version V`` runs this as an application of its own, named
``<prefix>scoreline-reprocess-predictions-<tournament>-v<V>``: it reads
``fixtures.matches`` and ``entries.predictions`` from the beginning, scores the
tournament's matches with rule version V through the worker's own pure state machine
(:mod:`streams.scoring`: the same entry index, supersession, late entries, corrections),
and keeps its own tables ("new tables"): the totals per (board, member) under V
(``board_totals_by_version``) and its match states (``reprocess_match_states``), written
in one Postgres transaction per batch together with the offsets it consumed
(``sink_offsets``, under its name). A crash or a second run resumes at those offsets: the
match states come back from Postgres and the entry index is read again up to the stored
entries offset (as the worker rebuilds its own), so nothing is applied twice.

It writes no topic and no live table: until a promotion, nothing live changes. It stops
once caught up (every position at least the end the topic had when it started and the
offset the live worker committed), or keeps following with ``follow``. One run of a
version at a time: it holds a Postgres advisory lock for its life.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from core.exceptions import SchemaDecodeError, ScorelineError
from core.kafka import admin_client, consumer
from core.logging import get_logger
from core.settings import Settings
from schemas.catalog import ENTRIES_PREDICTIONS, FIXTURES_MATCHES, spec, topic
from schemas.codec import AvroCodec
from schemas.fast_decode import RecordDecoder
from schemas.records import Game, MatchUpdated, PredictionPlaced, ScoreAwarded
from sinks.liveness import exclusive_lease
from sinks.offsets import load_pg_offsets, store_pg_offsets
from streams.rules.predictions import PredictionRules
from streams.scoring import MatchState, Output, entries_covered, on_entry, on_match_update
from streams.state import PartitionState, committed_offset, read_partition

log = get_logger("streams.reprocess")

#: Records taken from Kafka, and committed to Postgres, at a time.
MAX_BATCH = 20_000
#: Line totals per (board, member): (points, exact-score count).
Lines = dict[tuple[str, str], tuple[Decimal, int]]


class ReprocessRunningError(ScorelineError):
    """Another run of the same version holds its lock."""


@dataclass(frozen=True, slots=True)
class ReprocessJob:
    """What a run scores: one tournament of the predictions game under one rule version."""

    tournament_id: str
    rules: PredictionRules
    game: Game = Game.PREDICTIONS

    @property
    def ruleset_id(self) -> str:
        return self.rules.ruleset_id

    @property
    def version(self) -> int:
        return self.rules.version

    def consumer(self, prefix: str) -> str:
        """The run's name: its offsets in ``sink_offsets``, its lock, its logs."""
        return f"{prefix}scoreline-reprocess-{self.game.value}-{self.tournament_id}-v{self.version}"


def lease_name(consumer_name: str) -> str:
    """The advisory lock a run holds (and ``--retire`` takes) for ``consumer_name``."""
    return f"reprocess:{consumer_name}"


def fold(outputs: Iterable[Output], into: Lines) -> None:
    """Add the awards among ``outputs`` to ``into``, per board of each award."""
    for output in outputs:
        if not isinstance(output, ScoreAwarded):
            continue
        for board_id in dict.fromkeys(output.board_ids):
            key = (board_id, output.member_id)
            total, exact = into.get(key, (Decimal("0.00"), 0))
            into[key] = (total + output.points_delta, exact + output.exact_delta)


@dataclass(frozen=True, slots=True)
class Progress:
    """Where a run stands: offsets read since it started, of ``total`` to catch up."""

    read: int
    total: int
    caught_up: bool
    elapsed_s: float
    matches_scored: int


_REGISTER = """
    insert into reprocess_runs (ruleset_id, rule_version, game, tournament_id, params, consumer)
    values ($1, $2, $3, $4, $5::jsonb, $6)
    on conflict (ruleset_id, rule_version) do nothing
"""
_RUN_PARAMS = (
    "select params::text, consumer from reprocess_runs where ruleset_id = $1 and rule_version = $2"
)
_ADD_TOTALS = """
    insert into board_totals_by_version as t
        (ruleset_id, rule_version, board_id, member_id, total, exact_count)
    select $1, $2, x.board_id, x.member_id, x.total, x.exact_count
    from unnest($3::text[], $4::text[], $5::numeric[], $6::integer[])
        as x(board_id, member_id, total, exact_count)
    order by x.board_id, x.member_id
    on conflict (ruleset_id, rule_version, board_id, member_id) do update
        set total = t.total + excluded.total, exact_count = t.exact_count + excluded.exact_count
"""
_SAVE_STATES = """
    insert into reprocess_match_states (ruleset_id, rule_version, match_id, partition, state)
    select $1, $2, x.match_id, x.partition, x.state
    from unnest($3::text[], $4::integer[], $5::jsonb[]) as x(match_id, partition, state)
    order by x.match_id
    on conflict (ruleset_id, rule_version, match_id) do update set state = excluded.state
"""
_LOAD_STATES = """
    select match_id, partition, state::text from reprocess_match_states
    where ruleset_id = $1 and rule_version = $2
"""
_CAUGHT_UP = """
    update reprocess_runs set caught_up_at = coalesce(caught_up_at, now())
    where ruleset_id = $1 and rule_version = $2
"""


async def register_run(conn: Any, job: ReprocessJob, prefix: str) -> PredictionRules:
    """Record the run (once per version); the rules it was first registered with."""
    params = json.dumps(job.rules.to_params(), sort_keys=True)
    await conn.execute(
        _REGISTER,
        job.ruleset_id,
        job.version,
        job.game.value,
        job.tournament_id,
        params,
        job.consumer(prefix),
    )
    return await registered_rules(conn, job.ruleset_id, job.version) or job.rules


async def registered_rules(conn: Any, ruleset_id: str, version: int) -> PredictionRules | None:
    """The rules a run of ``version`` was registered with, None when there is no run."""
    row = await conn.fetchrow(_RUN_PARAMS, ruleset_id, version)
    if row is None:
        return None
    return PredictionRules.from_params(ruleset_id, version, json.loads(row["params"]))


@dataclass(slots=True)
class _Batch:
    lines: Lines = field(default_factory=dict)
    states: dict[str, tuple[int, MatchState]] = field(default_factory=dict)


class Reprocessor:
    """Runs one :class:`ReprocessJob` over every partition of the two input topics."""

    def __init__(self, settings: Settings, pool: Any, job: ReprocessJob) -> None:
        self.settings = settings
        self.pool = pool
        self.job = job
        self.name = job.consumer(settings.topic_prefix)
        self.codec = AvroCodec.from_settings(settings)
        self.decode = RecordDecoder(self.codec, ["MatchUpdated", "PredictionPlaced"])
        prefix = settings.topic_prefix
        self.matches_topic = topic(FIXTURES_MATCHES, prefix)
        self.entries_topic = topic(ENTRIES_PREDICTIONS, prefix)
        count = spec(FIXTURES_MATCHES).partitions
        self.matches = [TopicPartition(self.matches_topic, p) for p in range(count)]
        self.entries = [TopicPartition(self.entries_topic, p) for p in range(count)]
        self.partitions = {p: PartitionState(p) for p in range(count)}

    async def run(
        self,
        stop: asyncio.Event,
        *,
        follow: bool = False,
        progress: Callable[[Progress], None] | None = None,
    ) -> Progress:
        """Score until caught up (with ``follow``: until ``stop``); where it stands then."""
        async with (
            self.pool.acquire() as lock_conn,
            exclusive_lease(lock_conn, lease_name(self.name)) as held,
        ):
            if not held:
                raise ReprocessRunningError(f"{self.name} is already running")
            reader = consumer(self.settings, max_partition_fetch_bytes=8 * 1024 * 1024)
            await reader.start()
            try:
                return await self._run(reader, stop, follow, progress)
            finally:
                await reader.stop()
                self.codec.close()

    async def _run(
        self,
        reader: AIOKafkaConsumer,
        stop: asyncio.Event,
        follow: bool,
        report: Callable[[Progress], None] | None,
    ) -> Progress:
        tps = [*self.matches, *self.entries]
        stored = await self._restore(reader)
        targets = await self._targets(reader, tps)
        reader.assign(tps)
        for tp in tps:
            if tp in stored:
                reader.seek(tp, stored[tp])
            else:
                await reader.seek_to_beginning(tp)
        positions = {tp: await reader.position(tp) for tp in tps}
        start = dict(positions)
        total = sum(max(0, targets[tp] - start[tp]) for tp in tps)
        started = time.monotonic()
        idle = 0.02
        marked = False

        def where() -> Progress:
            read = sum(positions[tp] - start[tp] for tp in tps)
            done = all(positions[tp] >= targets[tp] for tp in tps)
            scored = sum(
                1 for p in self.partitions.values() for m in p.matches.values() if m.scored
            )
            return Progress(min(read, total), total, done, time.monotonic() - started, scored)

        while True:
            now = where()
            if now.caught_up and not marked:
                marked = True
                async with self.pool.acquire() as conn:
                    await conn.execute(_CAUGHT_UP, self.job.ruleset_id, self.job.version)
                log.info("reprocess.caught_up", consumer=self.name, read=now.read)
            if report is not None:
                report(now)
            if stop.is_set() or (now.caught_up and not follow):
                return now
            batch = await reader.getmany(timeout_ms=200, max_records=MAX_BATCH)
            work = _Batch()
            for tp, records in batch.items():
                for record in records:
                    self._process(tp, record.offset, record.value, work)
            moved: dict[TopicPartition, int] = {}
            for tp in tps:
                position = await reader.position(tp)
                if position != positions[tp]:
                    moved[tp] = position
            if moved:
                await self._commit(work, moved)
                positions.update(moved)
                idle = 0.02
            else:  # the embedded broker answers an empty fetch at once: back off, not spin
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), idle)
                idle = min(idle * 2, 0.5)

    async def _restore(self, reader: AIOKafkaConsumer) -> dict[TopicPartition, int]:
        """Match states and offsets from Postgres; each entry index read up to its offset."""
        async with self.pool.acquire() as conn:
            stored = await load_pg_offsets(conn, self.name, [*self.matches, *self.entries])
            rows = await conn.fetch(_LOAD_STATES, self.job.ruleset_id, self.job.version)
        for row in rows:
            match = MatchState.from_json(json.loads(row["state"]))
            self.partitions[row["partition"]].matches[match.match_id] = match
        entries = 0
        for tp in self.entries:
            state = self.partitions[tp.partition]
            until = max(stored.get(tp, 0), entries_covered(state.matches.values()))
            async for offset, _key, value in read_partition(reader, tp, until):
                try:
                    entry = self.decode(value or b"")
                except SchemaDecodeError:
                    continue
                if isinstance(entry, PredictionPlaced):
                    state.index.add(entry, offset)
                    entries += 1
            state.index.next_offset = max(state.index.next_offset, until)
        log.info(
            "reprocess.restored",
            consumer=self.name,
            matches=len(rows),
            entries=entries,
            resumed=bool(stored),
        )
        return stored

    async def _targets(
        self, reader: AIOKafkaConsumer, tps: list[TopicPartition]
    ) -> dict[TopicPartition, int]:
        """Per partition: the end now (read_committed) or the live worker's offset, the larger."""
        from streams.app import app_id  # here, not at the top: it imports faust

        ends = await reader.end_offsets(tps)
        admin = admin_client(self.settings)
        await admin.start()
        try:
            live_group = app_id(self.settings)
            live = {tp: await committed_offset(admin, live_group, tp) for tp in tps}
        finally:
            await admin.close()
        return {tp: max(ends[tp], live[tp]) for tp in tps}

    def _process(self, tp: TopicPartition, offset: int, value: bytes | None, work: _Batch) -> None:
        try:
            record = self.decode(value or b"")
        except SchemaDecodeError as e:  # the live worker dead-letters it; here it is skipped
            log.warning(
                "reprocess.undecodable",
                topic=tp.topic,
                partition=tp.partition,
                offset=offset,
                error=str(e),
            )
            return
        state = self.partitions[tp.partition]
        now = datetime.now(UTC)
        if isinstance(record, MatchUpdated) and tp.topic == self.matches_topic:
            if record.tournament_id != self.job.tournament_id:
                return
            before = state.matches.get(record.match_id)
            after, outputs = on_match_update(before, record, state.index, self.job.rules, now)
        elif isinstance(record, PredictionPlaced) and tp.topic == self.entries_topic:
            before = state.matches.get(record.match_id)
            entered, outputs = on_entry(before, state.index, record, offset, now)
            if entered is None:
                return
            after = entered
        else:
            return
        if after != before:
            state.matches[after.match_id] = after
            work.states[after.match_id] = (tp.partition, after)
        fold(outputs, work.lines)

    async def _commit(self, work: _Batch, positions: dict[TopicPartition, int]) -> None:
        """The batch's totals, match states and offsets: one Postgres transaction."""
        ruleset_id, version = self.job.ruleset_id, self.job.version
        async with self.pool.acquire() as conn, conn.transaction():
            if work.lines:
                keys = sorted(work.lines)
                await conn.execute(
                    _ADD_TOTALS,
                    ruleset_id,
                    version,
                    [board for board, _ in keys],
                    [member for _, member in keys],
                    [work.lines[k][0] for k in keys],
                    [work.lines[k][1] for k in keys],
                )
            if work.states:
                ids = sorted(work.states)
                await conn.execute(
                    _SAVE_STATES,
                    ruleset_id,
                    version,
                    ids,
                    [work.states[i][0] for i in ids],
                    [json.dumps(work.states[i][1].to_json(), sort_keys=True) for i in ids],
                )
            await store_pg_offsets(conn, self.name, positions)
        log.debug(
            "reprocess.committed",
            consumer=self.name,
            lines=len(work.lines),
            matches=len(work.states),
            partitions=len(positions),
        )


_COUNT_VERSION = """
    select
        (select count(*) from board_totals_by_version
         where ruleset_id = $1 and rule_version = $2) as lines,
        (select count(*) from reprocess_match_states
         where ruleset_id = $1 and rule_version = $2) as matches,
        exists(select 1 from reprocess_runs where ruleset_id = $1 and rule_version = $2) as run,
        exists(select 1 from rule_promotions where ruleset_id = $1 and state = 'pending'
               and $2 in (rule_version, previous_version)) as pending
"""
_VERSIONS = """
    with versions as (
        select rule_version from board_totals_by_version where ruleset_id = $1
        union select rule_version from reprocess_runs where ruleset_id = $1
        union select rule_version from rule_promotions where ruleset_id = $1
    )
    select v.rule_version,
           (select count(*) from board_totals_by_version t
            where t.ruleset_id = $1 and t.rule_version = v.rule_version) as lines,
           r.consumer, r.params::text as params, r.caught_up_at,
           p.state as promotion, p.promoted_at, p.previous_version
    from versions v
    left join reprocess_runs r on r.ruleset_id = $1 and r.rule_version = v.rule_version
    left join rule_promotions p on p.ruleset_id = $1 and p.rule_version = v.rule_version
    order by v.rule_version
"""


async def count_version(conn: Any, ruleset_id: str, version: int) -> tuple[int, int, bool, bool]:
    """A version's (lines, match states, has a run, is in a pending promotion)."""
    row = await conn.fetchrow(_COUNT_VERSION, ruleset_id, version)
    return int(row["lines"]), int(row["matches"]), bool(row["run"]), bool(row["pending"])


async def drop_version(conn: Any, ruleset_id: str, version: int, consumer_name: str) -> None:
    """Delete a version's totals, match states, run and offsets (call in a transaction)."""
    for table in ("board_totals_by_version", "reprocess_match_states", "reprocess_runs"):
        await conn.execute(
            f"delete from {table} where ruleset_id = $1 and rule_version = $2",  # noqa: S608
            ruleset_id,
            version,
        )
    await conn.execute("delete from sink_offsets where consumer = $1", consumer_name)


async def versions(conn: Any, ruleset_id: str) -> list[dict[str, Any]]:
    """Every version of a rule set known here: lines kept, run, promotion."""
    return [dict(row) for row in await conn.fetch(_VERSIONS, ruleset_id)]
