"""The markets Postgres sink: markets, bets, rejections, settlements, the credits ledger.

A sink of its own (consumer ``sink.postgres-markets``, its own rows in ``sink_offsets``
and its own lease), run by ``scoreline sinks`` next to the predictions sink, rather than
more topics on :class:`sinks.postgres.PostgresSink`, because:

- its rows span partitions: ``settlements`` is keyed by bet, ``entries.bets``,
  ``entries.rejected`` and ``credits.ledger`` by member, and the three update the same
  ``bets`` rows. The predictions sink commits partitions in parallel lanes, which is safe
  only because its keys never span partitions; here a batch is split by *table* instead:
  two lanes (``credits.ledger``; the rest) that share no table, each one transaction
  that takes its advisory lock (:data:`LEDGER_LOCK`, :data:`WRITE_LOCK`) before it reads
  or writes a shared row, so two instances running different partitions serialize
  instead of missing each other's uncommitted rows;
- an operator can rewind, reset or replay the credit games without touching the
  predictions pipeline, and a poison record here never holds up the scores.

Every write is idempotent by key, applied set-based from ``COPY`` into session temp
tables, and committed with its lane's positions (``sink_offsets``) in one transaction:

- ``markets``: updates and resolutions keep their own highest version (``version``,
  ``resolution_version``), so an update never erases a resolution and a re-resolution
  (a higher version) replaces the one before it;
- ``bets``: insert, ``on conflict do nothing`` (the first read stands); a row takes the
  rejection and the latest settlement already stored, so arrival order across topics does
  not matter;
- ``entry_rejections``: insert, ``on conflict do nothing``; a bet's rejection sets its
  status ``rejected`` (``entry_topic`` = ``entries.bets``);
- ``settlements``: insert ``(bet_id, version)`` ``on conflict do nothing``; the bet takes
  its highest version (status, payout, settled_at);
- ``credit_ledger``: insert ``on conflict (idempotency_key) do nothing``, and only the
  rows actually inserted (``returning``) are added to ``credit_balances`` in the same
  statement, so a balance is always the sum of the member's ledger. The ``0 <= balance <=
  1,000,000`` check holds by construction (``streams.rules.markets``); a record that would
  break it is refused and dead-lettered.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator, Collection, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from aiokafka import TopicPartition
from prometheus_client import Counter

from core.logging import get_logger
from core.settings import Settings
from core.stack import resolve_urls
from schemas.catalog import (
    CREDITS_LEDGER,
    ENTRIES_BETS,
    ENTRIES_REJECTED,
    FIXTURES_MARKETS,
    SETTLEMENTS,
)
from schemas.records import (
    BetPlaced,
    BetSettled,
    EntryRejected,
    MarketResolved,
    MarketUpdated,
)
from schemas.records.outputs import LedgerEntryPosted  # not in schemas.records.__all__ (yet)
from sinks import postgres
from sinks.base import Batch, ConsumedRecord, RunnerConfig, run_sink
from sinks.exceptions import ConstraintViolationError, SinkUnavailableError
from sinks.offsets import load_pg_offsets, store_pg_offsets
from sinks.postgres import _POISON, _TRANSIENT

CONSUMER = "sink.postgres-markets"
TOPICS = (FIXTURES_MARKETS, ENTRIES_BETS, ENTRIES_REJECTED, SETTLEMENTS, CREDITS_LEDGER)


def _lock_id(name: str) -> int:
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


#: The transaction-level advisory lock every write of this sink holds (see the docstring):
#: of its markets, bets, rejections and settlements lane.
WRITE_LOCK = _lock_id(f"scoreline.writes:{CONSUMER}")
#: The same for its ledger lane (``credit_ledger``, ``credit_balances``).
LEDGER_LOCK = _lock_id(f"scoreline.writes:{CONSUMER}:ledger")

log = get_logger(CONSUMER)

LEDGER_APPLIED = Counter(
    "scoreline_sink_ledger_entries",
    "Credit ledger entries applied to balances (redeliveries excluded)",
    ["sink"],
)

_TEMP_TABLES = """
    create temp table if not exists sink_market_updates_in (
        market_id text, kind text, question text, slug text, match_id text, outcomes jsonb,
        active boolean, closed boolean, end_date timestamptz, version integer,
        updated_at timestamptz
    ) on commit delete rows;
    create temp table if not exists sink_market_resolutions_in (
        market_id text, kind text, match_id text, resolution_outcome text, void boolean,
        resolution_version integer, resolved_at timestamptz
    ) on commit delete rows;
    create temp table if not exists sink_bets_in (
        bet_id text, member_id text, kind text, stake numeric(18, 2), legs jsonb,
        placed_at timestamptz
    ) on commit delete rows;
    create temp table if not exists sink_rejections_in (
        entry_topic text, entry_id text, member_id text, reason text, detail text,
        rejected_at timestamptz
    ) on commit delete rows;
    create temp table if not exists sink_settlements_in (
        bet_id text, version integer, member_id text, status text, stake numeric(18, 2),
        payout numeric(18, 2), previous_payout numeric(18, 2), settled_at timestamptz,
        idempotency_key text
    ) on commit delete rows;
    create temp table if not exists sink_ledger_in (
        idempotency_key text, member_id text, kind text, amount numeric(18, 2), bet_id text,
        version integer, posted_at timestamptz
    ) on commit delete rows;
"""

_UPDATE_COLUMNS = (
    "market_id",
    "kind",
    "question",
    "slug",
    "match_id",
    "outcomes",
    "active",
    "closed",
    "end_date",
    "version",
    "updated_at",
)
_APPLY_MARKET_UPDATES = f"""
    insert into markets as m ({", ".join(_UPDATE_COLUMNS)})
    select {", ".join(_UPDATE_COLUMNS)} from sink_market_updates_in order by market_id
    on conflict (market_id) do update set
        {", ".join(f"{c} = excluded.{c}" for c in _UPDATE_COLUMNS[1:])}
    where m.version is null or m.version < excluded.version
"""  # noqa: S608 (constant column names, no input)

_RESOLUTION_COLUMNS = (
    "market_id",
    "kind",
    "match_id",
    "resolution_outcome",
    "void",
    "resolution_version",
    "resolved_at",
)
_APPLY_MARKET_RESOLUTIONS = f"""
    insert into markets as m ({", ".join(_RESOLUTION_COLUMNS)})
    select {", ".join(_RESOLUTION_COLUMNS)} from sink_market_resolutions_in order by market_id
    on conflict (market_id) do update set
        {", ".join(f"{c} = excluded.{c}" for c in _RESOLUTION_COLUMNS[3:])}
    where m.resolution_version is null or m.resolution_version < excluded.resolution_version
"""  # noqa: S608 (constant column names, no input)

_BET_COLUMNS = ("bet_id", "member_id", "kind", "stake", "legs", "placed_at")
#: A bet read after its rejection or settlement takes them at once.
_APPLY_BETS = """
    insert into bets (bet_id, member_id, kind, stake, legs, placed_at, status, reject_reason,
                      reject_detail, payout, settlement_version, settled_at)
    select i.bet_id, i.member_id, i.kind, i.stake, i.legs, i.placed_at,
           coalesce(s.status, case when r.entry_id is null then 'open' else 'rejected' end),
           r.reason, r.detail, s.payout, s.version, s.settled_at
    from sink_bets_in i
    left join entry_rejections r on r.entry_topic = $1 and r.entry_id = i.bet_id
    left join lateral (
        select status, payout, version, settled_at from settlements
        where bet_id = i.bet_id order by version desc limit 1
    ) s on true
    order by i.bet_id
    on conflict (bet_id) do nothing
"""

_REJECTION_COLUMNS = ("entry_topic", "entry_id", "member_id", "reason", "detail", "rejected_at")
_APPLY_REJECTIONS = f"""
    insert into entry_rejections ({", ".join(_REJECTION_COLUMNS)})
    select {", ".join(_REJECTION_COLUMNS)} from sink_rejections_in order by entry_topic, entry_id
    on conflict (entry_topic, entry_id) do nothing
"""  # noqa: S608 (constant column names, no input)
_REJECT_BETS = """
    update bets b
    set status = case when b.status = 'open' then 'rejected' else b.status end,
        reject_reason = r.reason, reject_detail = r.detail
    from sink_rejections_in r
    where r.entry_topic = $1 and b.bet_id = r.entry_id and b.reject_reason is null
"""

_SETTLEMENT_COLUMNS = (
    "bet_id",
    "version",
    "member_id",
    "status",
    "stake",
    "payout",
    "previous_payout",
    "settled_at",
    "idempotency_key",
)
_APPLY_SETTLEMENTS = f"""
    insert into settlements ({", ".join(_SETTLEMENT_COLUMNS)})
    select {", ".join(_SETTLEMENT_COLUMNS)} from sink_settlements_in order by bet_id, version
    on conflict (bet_id, version) do nothing
"""  # noqa: S608 (constant column names, no input)
_SETTLE_BETS = """
    update bets b
    set status = l.status, payout = l.payout, settlement_version = l.version,
        settled_at = l.settled_at
    from (select distinct bet_id from sink_settlements_in) i
    cross join lateral (  -- per bet, its highest version, by the primary key (no scan)
        select s.bet_id, s.status, s.payout, s.version, s.settled_at from settlements s
        where s.bet_id = i.bet_id order by s.version desc limit 1
    ) l
    where b.bet_id = l.bet_id and (b.settlement_version is null or b.settlement_version < l.version)
"""

_LEDGER_COLUMNS = (
    "idempotency_key",
    "member_id",
    "kind",
    "amount",
    "bet_id",
    "version",
    "posted_at",
)
#: One statement: the ledger rows, and their sum added to the balances of their members.
#: An update, then an insert of the members not there yet: ``insert ... on conflict do
#: update`` would check the balance constraint against the *proposed* row (the batch's sum
#: alone, negative for a batch of stakes) before it finds the conflict.
_APPLY_LEDGER = f"""
    with inserted as (
        insert into credit_ledger ({", ".join(_LEDGER_COLUMNS)})
        select {", ".join(_LEDGER_COLUMNS)} from sink_ledger_in order by idempotency_key
        on conflict (idempotency_key) do nothing
        returning member_id, amount
    ), sums as (
        select member_id, sum(amount) as delta, count(*)::integer as n
        from inserted group by member_id
    ), updated as (
        update credit_balances b
        set balance = b.balance + s.delta, entries = b.entries + s.n, updated_at = now()
        from sums s where b.member_id = s.member_id
        returning b.member_id
    ), created as (
        insert into credit_balances (member_id, balance, entries, updated_at)
        select s.member_id, s.delta, s.n, now() from sums s
        where s.member_id not in (select member_id from updated)
        order by s.member_id
    )
    select count(*) from inserted  -- "updated" and "created" run to completion all the same
"""  # noqa: S608 (constant column names, no input)


@asynccontextmanager
async def _translated() -> AsyncIterator[None]:
    """Driver errors as the sink's: transient ones retried, data ones poison."""
    try:
        yield
    except asyncpg.UniqueViolationError as e:
        if e.constraint_name != "credit_balances_pkey":
            raise ConstraintViolationError(f"postgres refused the batch: {e}") from e
        # Another writer created the member's balance row meanwhile: nothing was committed,
        # and the next attempt takes the update path.
        raise SinkUnavailableError(f"postgres: concurrent balance insert: {e}") from e
    except _POISON as e:
        raise ConstraintViolationError(
            f"postgres refused the batch: {type(e).__name__}: {e}"
        ) from e
    except _TRANSIENT as e:
        raise SinkUnavailableError(f"postgres: {type(e).__name__}: {e}") from e


async def create_pool(database_url: str, *, max_size: int = 2) -> Any:
    """An asyncpg pool whose connections have this sink's temp tables."""
    return await postgres.create_pool(database_url, max_size=max_size, temp_tables=_TEMP_TABLES)


@dataclass
class _Rows:
    """One batch, deduplicated by key: the first read of a key stands, markets by version."""

    updates: dict[str, MarketUpdated] = field(default_factory=dict)
    resolutions: dict[str, MarketResolved] = field(default_factory=dict)
    bets: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    rejections: dict[tuple[str, str], tuple[Any, ...]] = field(default_factory=dict)
    settlements: dict[tuple[str, int], tuple[Any, ...]] = field(default_factory=dict)
    ledger: dict[str, tuple[Any, ...]] = field(default_factory=dict)

    @classmethod
    def of(cls, records: Iterable[ConsumedRecord]) -> _Rows:
        rows = cls()
        for record in records:
            value = record.value
            if isinstance(value, LedgerEntryPosted):
                rows.ledger.setdefault(value.idempotency_key, _ledger_row(value))
            elif isinstance(value, BetPlaced):
                rows.bets.setdefault(value.bet_id, _bet_row(value))
            elif isinstance(value, BetSettled):
                rows.settlements.setdefault((value.bet_id, value.version), _settlement_row(value))
            elif isinstance(value, EntryRejected):
                key = (value.entry_topic, value.entry_id)
                rows.rejections.setdefault(key, _rejection_row(value))
            elif isinstance(value, MarketUpdated):
                current = rows.updates.get(value.market_id)
                if current is None or value.version > current.version:
                    rows.updates[value.market_id] = value
            elif isinstance(value, MarketResolved):
                seen = rows.resolutions.get(value.market_id)
                if seen is None or value.version > seen.version:
                    rows.resolutions[value.market_id] = value
        return rows

    def __bool__(self) -> bool:
        parts = (self.updates, self.resolutions, self.bets, self.rejections, self.settlements)
        return any(parts) or bool(self.ledger)


class MarketsPostgresSink:
    """Writes the credit games' truth: records and their positions in one transaction.

    Two lanes, each its own transaction on its own connection, committed in parallel:
    ``credits.ledger`` (``credit_ledger``, ``credit_balances``) under :data:`LEDGER_LOCK`,
    and the other topics (markets, bets, rejections, settlements) under
    :data:`WRITE_LOCK`. No table is written by both, and each lane stores the positions
    of its own topics with its rows, so each is atomic on its own, which is all
    exactly-once needs. A market's resolution is about as much ledger work as settlement
    work: one lane alone kept a backend busy while the other core idled.
    """

    name = CONSUMER
    topics = TOPICS
    #: Read side by side too (:func:`sinks.base.run_sink`): a batch is mostly one topic,
    #: so lanes within a batch alone seldom had both kinds of work at once.
    lanes = (tuple(t for t in TOPICS if t != CREDITS_LEDGER), (CREDITS_LEDGER,))

    def __init__(self, pool: Any, *, topic_prefix: str = "") -> None:
        self._pool = pool
        self._ledger_topic = topic_prefix + CREDITS_LEDGER
        self._physical = {topic_prefix + name for name in TOPICS}
        self.applied_ledger = 0  # ledger entries inserted by this instance (not duplicates)

    async def committed(self, partitions: Collection[TopicPartition]) -> dict[TopicPartition, int]:
        async with _translated(), self._pool.acquire() as conn:
            return await load_pg_offsets(conn, self.name, partitions)

    async def write(self, batch: Batch) -> None:
        """The batch in two lanes (see the class): each its rows and positions, atomically."""
        unknown = {tp.topic for tp in batch.positions} - self._physical
        if unknown:  # a position in the wrong lane would not be atomic with its rows
            raise ValueError(f"positions of topics this sink does not read: {sorted(unknown)}")
        ledger = self._ledger_topic
        lanes = (
            (
                [r for r in batch.records if r.topic != CREDITS_LEDGER],
                {tp: o for tp, o in batch.positions.items() if tp.topic != ledger},
                WRITE_LOCK,
            ),
            (
                [r for r in batch.records if r.topic == CREDITS_LEDGER],
                {tp: o for tp, o in batch.positions.items() if tp.topic == ledger},
                LEDGER_LOCK,
            ),
        )
        await postgres.write_lanes(self._write_lane(*lane) for lane in lanes if lane[0] or lane[1])

    async def _write_lane(
        self, records: list[ConsumedRecord], positions: dict[TopicPartition, int], lock: int
    ) -> None:
        rows = _Rows.of(records)
        applied = 0
        async with _translated(), self._pool.acquire() as conn, conn.transaction():
            if rows:
                await self._copy(conn, rows)
                await conn.execute("select pg_advisory_xact_lock($1)", lock)
                applied = await self._apply(conn, rows)
            await store_pg_offsets(conn, self.name, positions)
        self.applied_ledger += applied
        LEDGER_APPLIED.labels(sink=self.name).inc(applied)
        if applied < len(rows.ledger):
            log.info(
                "sink.duplicates_skipped",
                operation="write",
                topic=CREDITS_LEDGER,
                records=len(rows.ledger),
                applied=applied,
            )

    async def flush(self) -> None:
        """Nothing buffered: every ``write`` commits."""

    @staticmethod
    async def _copy(conn: Any, rows: _Rows) -> None:
        copies: tuple[tuple[str, Collection[tuple[Any, ...]], tuple[str, ...]], ...] = (
            (
                "sink_market_updates_in",
                [_update_row(u) for u in rows.updates.values()],
                _UPDATE_COLUMNS,
            ),
            (
                "sink_market_resolutions_in",
                [_resolution_row(r) for r in rows.resolutions.values()],
                _RESOLUTION_COLUMNS,
            ),
            ("sink_bets_in", list(rows.bets.values()), _BET_COLUMNS),
            ("sink_rejections_in", list(rows.rejections.values()), _REJECTION_COLUMNS),
            ("sink_settlements_in", list(rows.settlements.values()), _SETTLEMENT_COLUMNS),
            ("sink_ledger_in", list(rows.ledger.values()), _LEDGER_COLUMNS),
        )
        for table, records, columns in copies:
            if records:
                await conn.copy_records_to_table(table, records=records, columns=columns)

    @staticmethod
    async def _apply(conn: Any, rows: _Rows) -> int:
        """Markets, then bets (so this batch's rejections and settlements find them)."""
        if rows.updates:
            await conn.execute(_APPLY_MARKET_UPDATES)
        if rows.resolutions:
            await conn.execute(_APPLY_MARKET_RESOLUTIONS)
        if rows.bets:
            await conn.execute(_APPLY_BETS, ENTRIES_BETS)
        if rows.rejections:
            await conn.execute(_APPLY_REJECTIONS)
            await conn.execute(_REJECT_BETS, ENTRIES_BETS)
        if rows.settlements:
            await conn.execute(_APPLY_SETTLEMENTS)
            await conn.execute(_SETTLE_BETS)
        if rows.ledger:
            return int(await conn.fetchval(_APPLY_LEDGER))
        return 0


def _decimal_text(value: Any) -> str | None:
    return None if value is None else str(value)


def _update_row(value: MarketUpdated) -> tuple[Any, ...]:
    outcomes = [
        {"name": o.name, "price": _decimal_text(o.price), "odds": _decimal_text(o.odds)}
        for o in value.outcomes
    ]
    return (
        value.market_id,
        value.kind.value,
        value.question,
        value.slug,
        value.match_id,
        json.dumps(outcomes),
        value.active,
        value.closed,
        value.end_date,
        value.version,
        value.updated_at,
    )


def _resolution_row(value: MarketResolved) -> tuple[Any, ...]:
    return (
        value.market_id,
        value.kind.value,
        value.match_id,
        value.outcome,
        value.void,
        value.version,
        value.resolved_at,
    )


def _bet_row(value: BetPlaced) -> tuple[Any, ...]:
    legs = [
        {
            "market_id": leg.market_id,
            "selection": leg.selection,
            "odds": _decimal_text(leg.odds),
            "price": _decimal_text(leg.price),
        }
        for leg in value.legs
    ]
    return (
        value.bet_id,
        value.member_id,
        value.kind.value,
        value.stake,
        json.dumps(legs),
        value.placed_at,
    )


def _rejection_row(value: EntryRejected) -> tuple[Any, ...]:
    return (
        value.entry_topic,
        value.entry_id,
        value.member_id,
        value.reason.value,
        value.detail,
        value.rejected_at,
    )


def _settlement_row(value: BetSettled) -> tuple[Any, ...]:
    return (
        value.bet_id,
        value.version,
        value.member_id,
        value.status.value,
        value.stake,
        value.payout,
        value.previous_payout,
        value.settled_at,
        value.idempotency_key,
    )


def _ledger_row(value: LedgerEntryPosted) -> tuple[Any, ...]:
    return (
        value.idempotency_key,
        value.member_id,
        value.kind,
        value.amount,
        value.bet_id,
        value.version,
        value.posted_at,
    )


async def run_markets_sink(
    settings: Settings, stop: asyncio.Event, *, config: RunnerConfig | None = None
) -> None:
    """``scoreline sinks`` (the credit games' Postgres half): run until ``stop`` is set."""
    url = resolve_urls(settings).database_url
    pool = await postgres.connect(url, stop, max_size=2, temp_tables=_TEMP_TABLES)
    if pool is None:
        return
    try:
        config = config or RunnerConfig(max_records=20_000)
        sink = MarketsPostgresSink(pool, topic_prefix=settings.topic_prefix)
        await run_sink(settings, sink, stop, config=config)
    finally:
        await pool.close()
