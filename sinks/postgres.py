"""The Postgres sink: matches, prediction entries, rule sets, scores and board totals.

The records of a partition are written in one transaction together with that
partition's position in ``sink_offsets``; on start the runner seeks to those positions.
A batch is split into lanes by partition (``p % lanes``, 4 by default: one per partition
of ``scores``), each its own transaction on its own connection, committed in parallel: a
lane's rows and positions are atomic, which is all exactly-once needs, and the backends
share the work of one batch. With fewer lanes than partitions a batch that is mostly one
lane's partitions left a core idle while that lane's backend worked alone. Every
write is idempotent on its own too, so a crash at any point, a redelivery or an operator
rewind never applies anything twice:

- ``scores``: inserted ``on conflict (idempotency_key) do nothing``; only the rows that
  were actually inserted (``returning``) are added to ``board_totals``, per board of the
  award, in one aggregated upsert (``total = board_totals.total + excluded.total``).
- ``matches``: a row is replaced only by a higher ``(result_version, provider_version)``.
- ``prediction_entries`` and ``rule_sets``: insert, ``on conflict do nothing``.

Scores and entries arrive by the hundred thousand: they are copied (``COPY``, binary) into
session temp tables and applied set-based, in key order, not row by row. The cost that
remains is Postgres' own: about 12 us per board line upserted (two indexes on
``board_totals``) on the reference machine.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Collection, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from aiokafka import TopicPartition
from asyncpg.exceptions._base import DataError as ClientDataError

from core.exceptions import TransientError
from core.logging import get_logger
from core.settings import Settings
from core.stack import resolve_urls
from schemas.catalog import ENTRIES_PREDICTIONS, FIXTURES_MATCHES, RULES, SCORES
from schemas.records import MatchUpdated, PredictionPlaced, RuleSet, ScoreAwarded
from sinks.base import Batch, ConsumedRecord, RunnerConfig, run_sink, wait_or_stop
from sinks.exceptions import ConstraintViolationError, SinkUnavailableError
from sinks.offsets import load_pg_offsets, store_pg_offsets

CONSUMER = "sink.postgres"
TOPICS = (FIXTURES_MATCHES, ENTRIES_PREDICTIONS, RULES, SCORES)

log = get_logger(CONSUMER)

_TEMP_TABLES = """
    create temp table if not exists sink_scores_in (like scores) on commit delete rows;
    create temp table if not exists sink_entries_in (like prediction_entries)
        on commit delete rows;
"""

_SCORE_COLUMNS = (
    "idempotency_key",
    "member_id",
    "board_ids",
    "points_delta",
    "exact_delta",
    "reason",
    "source",
    "rule_version",
    "result_version",
    "awarded_at",
    "kafka_partition",
    "kafka_offset",
)
_COLUMNS = ", ".join(_SCORE_COLUMNS)
_APPLY_SCORES = f"""
    with inserted as (
        insert into scores ({_COLUMNS})
        select {_COLUMNS} from sink_scores_in order by idempotency_key
        on conflict (idempotency_key) do nothing
        returning member_id, board_ids, points_delta, exact_delta
    ), totals as (
        insert into board_totals as t (board_id, member_id, total, exact_count, updated_at)
        select b.board_id, i.member_id, sum(i.points_delta), sum(i.exact_delta), now()
        from inserted i cross join lateral unnest(i.board_ids) as b(board_id)
        group by b.board_id, i.member_id
        order by b.board_id, i.member_id
        on conflict (board_id, member_id) do update
            set total = t.total + excluded.total,
                exact_count = t.exact_count + excluded.exact_count,
                updated_at = excluded.updated_at
    )
    select count(*) from inserted  -- "totals" runs to completion all the same
"""  # noqa: S608 (constant column names, no input)

_ENTRY_COLUMNS = (
    "entry_id",
    "member_id",
    "match_id",
    "league_ids",
    "home_goals",
    "away_goals",
    "placed_at",
)
_APPLY_ENTRIES = """
    insert into prediction_entries select * from sink_entries_in order by entry_id
    on conflict (entry_id) do nothing
"""

_MATCH_COLUMNS = (
    "match_id",
    "tournament_id",
    "round",
    "home_team_id",
    "home_team_name",
    "away_team_id",
    "away_team_name",
    "status",
    "home_score",
    "away_score",
    "minute",
    "period",
    "kickoff_at",
    "provider",
    "provider_version",
    "result_version",
    "updated_at",
)
_UPSERT_MATCH = f"""
    insert into matches as m ({", ".join(_MATCH_COLUMNS)})
    values ({", ".join(f"${i}" for i in range(1, len(_MATCH_COLUMNS) + 1))})
    on conflict (match_id) do update set
        {", ".join(f"{c} = excluded.{c}" for c in _MATCH_COLUMNS[1:])}
    where (m.result_version, m.provider_version)
        < (excluded.result_version, excluded.provider_version)
"""  # noqa: S608 (constant column names, no input)

_INSERT_RULE_SET = """
    insert into rule_sets (ruleset_id, version, game, params, effective_from)
    values ($1, $2, $3, $4::jsonb, $5)
    on conflict (ruleset_id, version) do nothing
"""

#: The store refused the data: the batch holds a poison record.
_POISON = (
    asyncpg.IntegrityConstraintViolationError,
    asyncpg.exceptions.DataError,
    ClientDataError,
)
#: The store is unreachable, restarting or overloaded: retry.
_TRANSIENT = (
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.TransactionRollbackError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.InsufficientResourcesError,
    OSError,
    TimeoutError,
)


#: Per-session settings of the sinks' connections. ``work_mem``: the aggregation of a
#: 10,000-award batch into board lines spilled to disk at the default 4 MB.
SESSION_SETTINGS = {"work_mem": "64MB"}

#: Lanes of the predictions sink: one per partition of ``scores``.
LANES = 4


async def create_pool(
    database_url: str, *, max_size: int = LANES, temp_tables: str = _TEMP_TABLES
) -> Any:
    """An asyncpg pool whose connections have a sink's temp tables (``temp_tables`` DDL)."""

    async def init(conn: Any) -> None:
        await conn.execute(temp_tables)

    try:
        return await asyncpg.create_pool(
            database_url,
            min_size=1,
            max_size=max_size,
            init=init,
            server_settings=SESSION_SETTINGS,
        )
    except _TRANSIENT as e:
        raise SinkUnavailableError(f"postgres: {type(e).__name__}: {e}") from e


@asynccontextmanager
async def _translated() -> Any:
    """Driver errors as the sink's: transient ones retried, data ones poison."""
    try:
        yield
    except _POISON as e:
        raise ConstraintViolationError(
            f"postgres refused the batch: {type(e).__name__}: {e}"
        ) from e
    except _TRANSIENT as e:
        raise SinkUnavailableError(f"postgres: {type(e).__name__}: {e}") from e


async def write_lanes(lanes: Iterable[Awaitable[None]]) -> None:
    """Run a batch's lane writes (each its own transaction) together, to the end of each.

    When one fails, its error is raised: a transient one first, so the whole batch is
    retried, which every lane can take (each is idempotent).
    """
    outcomes = await asyncio.gather(*lanes, return_exceptions=True)
    errors = [o for o in outcomes if isinstance(o, BaseException)]
    if errors:
        raise next((e for e in errors if isinstance(e, TransientError)), errors[0])


class PostgresSink:
    """Writes the truth: records and their partitions' positions in one transaction."""

    name = CONSUMER
    topics = TOPICS
    #: Two runners (:func:`sinks.base.run_sink`), on the even and the odd partitions: one
    #: decodes and copies its batch while the other's is applied, so the Postgres work
    #: that finishes a big match last runs on both cores.
    partition_lanes = 2

    def __init__(self, pool: Any, *, lanes: int = LANES) -> None:
        self._pool = pool
        self._lanes = lanes
        self.applied_scores = 0  # scores inserted by this instance (not duplicates)

    async def committed(self, partitions: Collection[TopicPartition]) -> dict[TopicPartition, int]:
        async with _translated(), self._pool.acquire() as conn:
            return await load_pg_offsets(conn, self.name, partitions)

    async def write(self, batch: Batch) -> None:
        """One transaction per lane: the records of some partitions and their positions.

        Partition ``p`` goes to lane ``p % lanes``; lanes commit in parallel on their own
        connections. Keys never span partitions (scores are keyed by member), so lanes
        touch disjoint rows; should they not, the ordered upserts only make one wait.
        """
        records: list[list[ConsumedRecord]] = [[] for _ in range(self._lanes)]
        positions: list[dict[TopicPartition, int]] = [{} for _ in range(self._lanes)]
        for record in batch.records:
            records[record.partition % self._lanes].append(record)
        for tp, offset in batch.positions.items():
            positions[tp.partition % self._lanes][tp] = offset
        lanes = [i for i in range(self._lanes) if records[i] or positions[i]]
        await write_lanes(self._write_lane(records[i], positions[i]) for i in lanes)

    async def _write_lane(
        self, records: Sequence[ConsumedRecord], positions: dict[TopicPartition, int]
    ) -> None:
        matches: dict[str, MatchUpdated] = {}
        entries: dict[str, tuple[Any, ...]] = {}
        rule_sets: list[tuple[Any, ...]] = []
        scores: dict[str, tuple[Any, ...]] = {}
        boards: dict[tuple[str, ...], list[str]] = {}  # most awards share a few board lists
        for record in records:
            value = record.value
            if isinstance(value, ScoreAwarded):
                if value.idempotency_key not in scores:
                    board_ids = boards.get(value.board_ids)
                    if board_ids is None:  # a board named twice counts once
                        board_ids = boards[value.board_ids] = list(dict.fromkeys(value.board_ids))
                    scores[value.idempotency_key] = _score_row(value, record, board_ids)
            elif isinstance(value, PredictionPlaced):
                entries.setdefault(value.entry_id, _entry_row(value))
            elif isinstance(value, MatchUpdated):
                current = matches.get(value.match_id)
                if current is None or _match_version(value) > _match_version(current):
                    matches[value.match_id] = value
            elif isinstance(value, RuleSet):
                rule_sets.append(_rule_set_row(value))
        applied = 0
        async with _translated(), self._pool.acquire() as conn, conn.transaction():
            if matches:
                await conn.executemany(_UPSERT_MATCH, [_match_row(m) for m in matches.values()])
            if rule_sets:
                await conn.executemany(_INSERT_RULE_SET, rule_sets)
            if entries:
                await conn.copy_records_to_table(
                    "sink_entries_in", records=entries.values(), columns=_ENTRY_COLUMNS
                )
                await conn.execute(_APPLY_ENTRIES)
            if scores:
                await conn.copy_records_to_table(
                    "sink_scores_in", records=scores.values(), columns=_SCORE_COLUMNS
                )
                applied = int(await conn.fetchval(_APPLY_SCORES))
            await store_pg_offsets(conn, self.name, positions)
        self.applied_scores += applied
        if applied < len(scores):
            log.info(
                "sink.duplicates_skipped",
                operation="write",
                topic=SCORES,
                records=len(scores),
                applied=applied,
            )

    async def flush(self) -> None:
        """Nothing buffered: every ``write`` commits."""


def _score_row(
    value: ScoreAwarded, record: ConsumedRecord, board_ids: list[str]
) -> tuple[Any, ...]:
    return (
        value.idempotency_key,
        value.member_id,
        board_ids,
        value.points_delta,
        value.exact_delta,
        value.reason,
        value.source,
        value.rule_version,
        value.result_version,
        value.awarded_at,
        record.partition,
        record.offset,
    )


def _entry_row(value: PredictionPlaced) -> tuple[Any, ...]:
    return (
        value.entry_id,
        value.member_id,
        value.match_id,
        list(value.league_ids),
        value.home_goals,
        value.away_goals,
        value.placed_at,
    )


def _match_version(value: MatchUpdated) -> tuple[int, int]:
    return (value.result_version, value.provider_version)


def _match_row(value: MatchUpdated) -> tuple[Any, ...]:
    return tuple(getattr(value, column) for column in _MATCH_COLUMNS)


def _rule_set_row(value: RuleSet) -> tuple[Any, ...]:
    params = json.dumps(dict(sorted(value.params.items())))
    return (value.ruleset_id, value.version, value.game.value, params, value.effective_from)


async def connect(
    database_url: str,
    stop: asyncio.Event,
    *,
    max_size: int = LANES,
    temp_tables: str = _TEMP_TABLES,
) -> Any:
    """A sink's pool, retried with backoff while Postgres is unreachable; None if stopped."""
    delay = 0.2
    while True:
        try:
            return await create_pool(database_url, max_size=max_size, temp_tables=temp_tables)
        except TransientError as e:
            log.warning("sink.connect_retry", operation="connect", delay_s=delay, error=str(e))
            if await wait_or_stop(stop, delay):
                return None
            delay = min(delay * 2, 5.0)


async def run_postgres_sink(
    settings: Settings, stop: asyncio.Event, *, config: RunnerConfig | None = None
) -> None:
    """``scoreline sinks`` (Postgres half): run until ``stop`` is set."""
    pool = await connect(resolve_urls(settings).database_url, stop)
    if pool is None:
        return
    try:
        config = config or RunnerConfig(max_records=20_000)
        await run_sink(settings, PostgresSink(pool), stop, config=config)
    finally:
        await pool.close()
