"""Re-scoring with a new rule version: start a run, promote it, retire a version.

The run itself is :mod:`streams.reprocess`. This module holds what the operator decides:

- :func:`prepare_run`: a version's rules never change once a run used them, and a version
  is newer than every one already published on ``rules`` (the live worker takes the newest).
- :func:`plan_promotion` / :func:`promote`: once the run, the live worker and the Postgres
  sink are caught up with everything that concerns the tournament, ONE Kafka transaction
  publishes on ``scores`` one ScoreAwarded per (board, member) whose total differs
  (new - old, key ``rescore:{V}:{board}:{member}``), a ResultCorrected per member whose
  tournament total moved, and rule set V on ``rules`` twice: as its newest version, and as
  its promotion record (:mod:`streams.rulebook`). The live boards stage, sinks and API
  converge on the totals under V. The old totals are kept as a version of their own in
  ``board_totals_by_version`` (readable until ``--retire``); ``rule_promotions`` makes a
  second promotion a no-op.
- :func:`retire`: drops a version's rows once nobody needs them.
- :func:`format_rate` / :func:`format_eta`: what the progress bar shows (pure).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from aiokafka import TopicPartition
from aiokafka.errors import KafkaError

from core import kafka
from core.exceptions import SchemaDecodeError, TransientError
from core.ops.exceptions import OperatorError
from core.ops.positions import committed_offsets
from core.settings import Settings
from schemas.catalog import (
    ENTRIES_PREDICTIONS,
    FIXTURES_MATCHES,
    NOTIFICATIONS,
    RULES,
    SCORES,
    spec,
    topic,
)
from schemas.codec import AvroCodec
from schemas.records import (
    AvroRecord,
    Game,
    MatchUpdated,
    PredictionPlaced,
    ResultCorrected,
    RuleSet,
    ScoreAwarded,
)
from sinks.liveness import exclusive_lease
from sinks.offsets import load_pg_offsets
from sinks.postgres import CONSUMER as POSTGRES_SINK
from streams.exceptions import RuleSetError
from streams.reprocess import (
    ReprocessJob,
    count_version,
    drop_version,
    lease_name,
    register_run,
    registered_rules,
)
from streams.rulebook import (
    DEFAULT_VERSION,
    PROMOTED_HEADER,
    RuleBook,
    is_promotion,
    promotion_key,
    ruleset_id_for,
)
from streams.rules.boards import BoardLine, league_board_id, tournament_board_id
from streams.rules.predictions import PredictionRules
from streams.scoring import plain_rules

Boards = dict[str, dict[str, BoardLine]]

#: How long reading the records of a gap (between two offsets) may take.
GAP_TIMEOUT_S = 30.0
_IN_PLAY = ("inprogress", "halftime")


def rules_from(ruleset_id: str, version: int, params: Mapping[str, str]) -> PredictionRules:
    """Rules from ``--param``/``--rules-file`` values; OperatorError when they are invalid."""
    try:
        return PredictionRules.from_params(ruleset_id, version, params)
    except RuleSetError as e:
        raise OperatorError(str(e)) from e


def parse_params(pairs: Iterable[str], rules_file: str | None = None) -> dict[str, str] | None:
    """``NAME=DECIMAL`` pairs over a JSON file's object of params; None when neither is given."""
    params: dict[str, str] | None = None
    if rules_file is not None:
        try:
            with open(rules_file, encoding="utf-8") as f:
                raw = json.load(f)
        except (OSError, ValueError) as e:
            raise OperatorError(f"--rules-file {rules_file}: {e}") from e
        raw = raw.get("params", raw) if isinstance(raw, dict) else raw
        if not isinstance(raw, dict):
            raise OperatorError(f"--rules-file {rules_file}: expected a JSON object of params")
        params = {str(k): str(v) for k, v in raw.items()}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise OperatorError(f"--param {pair!r}: expected NAME=VALUE, e.g. exact_score=10")
        params = {**(params or {}), name.strip(): value.strip()}
    return params


# -- the pure part of a promotion --------------------------------------------------------


def rescore_key(version: int, board_id: str, member_id: str) -> str:
    """``rescore:{version}:{board}:{member}``: a line's promotion delta, applied once."""
    return f"rescore:{version}:{board_id}:{member_id}"


def rescore_deltas(
    old: Boards, new: Boards, *, ruleset_id: str, version: int, now: datetime
) -> list[ScoreAwarded]:
    """One award per (board, member) whose line differs: new - old, in board, member order."""
    zero = BoardLine("", Decimal("0.00"), 0)
    deltas = []
    for board_id in sorted(set(old) | set(new)):
        before, after = old.get(board_id, {}), new.get(board_id, {})
        for member_id in sorted(set(before) | set(after)):
            was, now_line = before.get(member_id, zero), after.get(member_id, zero)
            points = now_line.total - was.total
            exact = now_line.exact_count - was.exact_count
            if not points and not exact:
                continue
            deltas.append(
                ScoreAwarded(
                    member_id=member_id,
                    board_ids=(board_id,),
                    points_delta=points,
                    exact_delta=exact,
                    reason="rescore",
                    source=f"rescore:{ruleset_id}:v{version}",
                    rule_version=version,
                    result_version=0,
                    idempotency_key=rescore_key(version, board_id, member_id),
                    awarded_at=now,
                )
            )
    return deltas


def rescore_notices(
    deltas: Iterable[ScoreAwarded],
    board_id: str,
    *,
    ruleset_id: str,
    previous: int,
    now: datetime,
) -> list[ResultCorrected]:
    """A notification per member whose line on ``board_id`` (the tournament's) moved."""
    return [
        ResultCorrected(
            member_id=d.member_id,
            subject=f"rules:{ruleset_id}",
            old_result=f"rules v{previous}",
            new_result=f"rules v{d.rule_version}",
            delta=d.points_delta,
            version=d.rule_version,
            corrected_at=now,
        )
        for d in deltas
        if d.board_ids == (board_id,)
    ]


def format_rate(done: int, elapsed_s: float) -> str:
    """Records per second so far: ``12,345/s``; ``-`` before any time has passed."""
    if elapsed_s <= 0:
        return "-"
    return f"{done / elapsed_s:,.0f}/s"


def format_eta(done: int, total: int, elapsed_s: float) -> str:
    """Time left at the rate so far, ``H:MM:SS``; ``0:00:00`` when done, ``-:--:--`` unknown."""
    if done >= total:
        return "0:00:00"
    if done <= 0 or elapsed_s <= 0:
        return "-:--:--"
    left = round((total - done) * elapsed_s / done)
    return f"{left // 3600}:{left // 60 % 60:02d}:{left % 60:02d}"


# -- Kafka and Postgres ------------------------------------------------------------------


async def read_rulebook(settings: Settings) -> RuleBook:
    """The ``rules`` topic read to its end (read_committed), promotion records included."""
    book = RuleBook()
    codec = AvroCodec.from_settings(settings)
    reader = kafka.consumer(settings)
    await reader.start()
    try:
        tp = TopicPartition(topic(RULES, settings.topic_prefix), 0)
        reader.assign([tp])
        await reader.seek_to_beginning(tp)
        end = (await reader.end_offsets([tp]))[tp]
        deadline = time.monotonic() + GAP_TIMEOUT_S
        while await reader.position(tp) < end:
            if time.monotonic() > deadline:
                raise TransientError(f"{tp.topic} not read to its end in {GAP_TIMEOUT_S:.0f}s")
            for record in (await reader.getmany(tp, timeout_ms=500)).get(tp, []):
                try:
                    decoded = codec.decode(record.value or b"")
                except SchemaDecodeError:
                    continue
                if isinstance(decoded, RuleSet):
                    book.apply(decoded, promoted=is_promotion(record.headers))
    finally:
        await reader.stop()
        codec.close()
    return book


async def prepare_run(
    settings: Settings,
    pool: Any,
    tournament_id: str,
    version: int,
    params: Mapping[str, str] | None,
    game: str = Game.PREDICTIONS.value,
) -> ReprocessJob:
    """The job of a run, registered; OperatorError when the version cannot be used."""
    if game != Game.PREDICTIONS.value:
        raise OperatorError(f"--game {game}: only the predictions game can be reprocessed")
    ruleset_id = ruleset_id_for(tournament_id)
    async with pool.acquire() as conn:
        registered = await registered_rules(conn, ruleset_id, version)
    if params is None:
        if registered is None:
            raise OperatorError(
                f"{ruleset_id} v{version} was never reprocessed: give its rules with "
                "--param NAME=VALUE (repeatable) or --rules-file"
            )
        rules = registered
    else:
        rules = rules_from(ruleset_id, version, params)
        if registered is not None and registered != rules:
            raise OperatorError(
                f"{ruleset_id} v{version} was reprocessed with other rules "
                f"({registered.to_params()}); a version's rules never change: use a new "
                "version, or --retire this one first"
            )
    newest = (await read_rulebook(settings)).newest(ruleset_id)
    if newest is not None and (
        newest.version > version or (newest.version == version and plain_rules(newest) != rules)
    ):
        raise OperatorError(
            f"rules already has {ruleset_id} v{newest.version}: reprocess with a newer version"
        )
    job = ReprocessJob(tournament_id, rules)
    async with pool.acquire() as conn:
        await register_run(conn, job, settings.topic_prefix)
    return job


@dataclass(frozen=True, slots=True)
class PromotionPlan:
    """What ``--promote`` does (or did): the deltas, and why it cannot yet, if so."""

    job: ReprocessJob
    previous_version: int
    old: Boards
    deltas: list[ScoreAwarded]
    notices: list[ResultCorrected]
    blockers: list[str]
    promoted_at: datetime | None = None  # set when the version was promoted already
    inputs: dict[TopicPartition, int] = field(default_factory=dict)  # input ends, planned at
    matches: frozenset[str] = frozenset()  # the tournament's matches
    #: ``rules`` already has V as promoted: an earlier --promote committed its transaction
    #: but stopped before recording it; what is left is to record it.
    published_before: bool = False

    @property
    def points(self) -> Decimal:
        return sum((d.points_delta for d in self.deltas), Decimal("0.00"))


_PROMOTION = (
    "select state, previous_version, promoted_at from rule_promotions "
    "where ruleset_id = $1 and rule_version = $2"
)
_VERSION_LINES = (
    "select board_id, member_id, total, exact_count from board_totals_by_version "
    "where ruleset_id = $1 and rule_version = $2"
)
_LIVE_LINES = (
    "select board_id, member_id, total, exact_count from board_totals where board_id = any($1)"
)
_LEAGUES = "select league_id from leagues where tournament_id = $1"
_MATCHES = (
    "select match_id, state->>'status' as status from reprocess_match_states "
    "where ruleset_id = $1 and rule_version = $2"
)


def _boards(rows: Iterable[Any]) -> Boards:
    boards: Boards = {}
    for r in rows:
        line = BoardLine(r["member_id"], Decimal(r["total"]), r["exact_count"])
        boards.setdefault(r["board_id"], {})[r["member_id"]] = line
    return boards


def _tps(name: str, prefix: str) -> list[TopicPartition]:
    return [TopicPartition(topic(name, prefix), p) for p in range(spec(name).partitions)]


async def _relevant_in_gap(
    reader: Any,
    codec: AvroCodec,
    tp: TopicPartition,
    start: int,
    end: int,
    relevant: Callable[[AvroRecord], bool],
) -> int | None:
    """How many records in ``[start, end)`` of ``tp`` are ``relevant``; None if too slow."""
    if start >= end:
        return 0
    reader.assign([tp])
    reader.seek(tp, start)
    count = 0
    deadline = time.monotonic() + GAP_TIMEOUT_S
    while await reader.position(tp) < end:
        if time.monotonic() > deadline:
            return None
        for record in (await reader.getmany(tp, timeout_ms=200, max_records=10_000)).get(tp, []):
            if record.offset >= end:
                break
            try:
                decoded = codec.decode(record.value or b"")
            except SchemaDecodeError:
                continue
            count += relevant(decoded)
    return count


async def plan_promotion(
    settings: Settings, pool: Any, tournament_id: str, version: int
) -> PromotionPlan:
    """Check that the promotion may go ahead, and compute its deltas (changes nothing)."""
    from streams.app import app_id  # here, not at the top: it imports faust

    prefix = settings.topic_prefix
    ruleset_id = ruleset_id_for(tournament_id)
    async with pool.acquire() as conn:
        rules = await registered_rules(conn, ruleset_id, version)
        done = await conn.fetchrow(_PROMOTION, ruleset_id, version)
    if rules is None:
        raise OperatorError(
            f"{ruleset_id} v{version} was never reprocessed: run `scoreline reprocess "
            f"--tournament {tournament_id} --rules-version {version} --param ...` first"
        )
    job = ReprocessJob(tournament_id, rules)
    if done is not None and done["state"] == "done":
        return PromotionPlan(job, done["previous_version"], {}, [], [], [], done["promoted_at"])
    book = await read_rulebook(settings)
    newest, promoted = book.newest(ruleset_id), book.promoted(ruleset_id)
    blockers: list[str] = []
    retrying = promoted is not None and promoted.version == version  # crashed before 'done'
    if done is not None:
        previous = int(done["previous_version"])
    else:
        previous = newest.version if newest is not None else DEFAULT_VERSION
    if newest is not None and newest.version >= version and not retrying:
        blockers.append(
            f"rules already has {ruleset_id} v{newest.version}: only a newer version can be "
            "promoted"
        )
    inputs = [*_tps(FIXTURES_MATCHES, prefix), *_tps(ENTRIES_PREDICTIONS, prefix)]
    scores = _tps(SCORES, prefix)
    codec = AvroCodec.from_settings(settings)
    reader = kafka.consumer(settings)
    admin = kafka.admin_client(settings)
    await reader.start()
    await admin.start()
    try:
        # In this order: what the worker committed covers the input ends read before it,
        # and the scores ends read after it cover the worker's outputs.
        ends = await reader.end_offsets(inputs)
        live = await committed_offsets(admin, app_id(settings))
        scores_ends = await reader.end_offsets(scores)
        async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read"):
            run_at = await load_pg_offsets(conn, job.consumer(prefix), inputs)
            sink_at = await load_pg_offsets(conn, POSTGRES_SINK, scores)
            new = _boards(await conn.fetch(_VERSION_LINES, ruleset_id, version))
            leagues = await conn.fetch(_LEAGUES, tournament_id)
            board_ids = {tournament_board_id(tournament_id), *new}
            board_ids |= {league_board_id(r["league_id"]) for r in leagues}
            old = _boards(await conn.fetch(_LIVE_LINES, sorted(board_ids)))
            states = await conn.fetch(_MATCHES, ruleset_id, version)
        matches = frozenset(r["match_id"] for r in states)
        in_play = sorted(r["match_id"] for r in states if r["status"] in _IN_PLAY)
        if in_play:
            blockers.append(f"matches in play: {', '.join(in_play)}; promote between match days")

        def concerns_tournament(record: AvroRecord) -> bool:
            if isinstance(record, MatchUpdated):
                return record.tournament_id == tournament_id
            return isinstance(record, PredictionPlaced) and record.match_id in matches

        def on_boards(record: AvroRecord) -> bool:
            return isinstance(record, ScoreAwarded) and not board_ids.isdisjoint(record.board_ids)

        checks = (
            ("the reprocess run", inputs, run_at, ends, concerns_tournament),
            ("the live worker", inputs, live, ends, concerns_tournament),
            ("the Postgres sink", scores, sink_at, scores_ends, on_boards),
        )
        for who, tps, at, end, relevant in checks:
            behind = [
                await _relevant_in_gap(reader, codec, tp, at.get(tp, 0), end[tp], relevant)
                for tp in tps
            ]
            if any(n is None or n > 0 for n in behind):
                count = "many" if None in behind else str(sum(n or 0 for n in behind))
                blockers.append(f"{who} has {count} record(s) of this tournament to process")
    finally:
        await reader.stop()
        await admin.close()
        codec.close()
    now = datetime.now(UTC)
    deltas = rescore_deltas(old, new, ruleset_id=ruleset_id, version=version, now=now)
    board = tournament_board_id(tournament_id)
    notices = rescore_notices(deltas, board, ruleset_id=ruleset_id, previous=previous, now=now)
    return PromotionPlan(
        job, previous, old, deltas, notices, blockers, None, ends, matches, retrying
    )


@dataclass(frozen=True, slots=True)
class PromotionResult:
    """What ``promote`` published: nothing when the version was promoted already."""

    plan: PromotionPlan
    published: int
    snapshot: bool  # the old totals were kept as their own version


class PromotionRaceError(TransientError):
    """Records of the tournament arrived while the promotion was being published."""


_PENDING = """
    insert into rule_promotions
        (ruleset_id, rule_version, previous_version, state, lines, points_delta)
    values ($1, $2, $3, 'pending', $4, $5)
    on conflict (ruleset_id, rule_version) do update
        set lines = excluded.lines, points_delta = excluded.points_delta
        where rule_promotions.state = 'pending'
"""
_DONE = """
    insert into rule_promotions as p
        (ruleset_id, rule_version, previous_version, state, lines, points_delta, promoted_at)
    values ($1, $2, $3, 'done', $4, $5, now())
    on conflict (ruleset_id, rule_version) do update
        set state = 'done', promoted_at = now() where p.state = 'pending'
"""
_HAS_RUN = "select exists(select 1 from reprocess_runs where ruleset_id = $1 and rule_version = $2)"
_DROP_LINES = "delete from board_totals_by_version where ruleset_id = $1 and rule_version = $2"
_SNAPSHOT = """
    insert into board_totals_by_version
        (ruleset_id, rule_version, board_id, member_id, total, exact_count)
    select $1, $2, x.board_id, x.member_id, x.total, x.exact_count
    from unnest($3::text[], $4::text[], $5::numeric[], $6::integer[])
        as x(board_id, member_id, total, exact_count)
"""


async def promote(
    settings: Settings,
    pool: Any,
    plan: PromotionPlan,
    progress: Callable[[int, int], None] | None = None,
) -> PromotionResult:
    """Publish a plan in one Kafka transaction (see the module doc); OperatorError if blocked."""
    if plan.promoted_at is not None:
        return PromotionResult(plan, 0, snapshot=False)
    if plan.blockers:
        raise OperatorError("cannot promote yet: " + "; ".join(plan.blockers))
    job, prefix = plan.job, settings.topic_prefix
    snapshot = False
    if not plan.published_before:
        snapshot = await _before_kafka(pool, plan)
        await _transaction(settings, plan, prefix, progress)
    async with pool.acquire() as conn:
        await conn.execute(
            _DONE, job.ruleset_id, job.version, plan.previous_version, len(plan.deltas), plan.points
        )
    return PromotionResult(plan, 0 if plan.published_before else len(plan.deltas), snapshot)


async def _before_kafka(pool: Any, plan: PromotionPlan) -> bool:
    """The promotion as pending, and the live totals kept as the previous version.

    Not when a run of the previous version exists: its rows are that version's totals.
    Written again by a retry (the plan's totals are the newest). True when kept.
    """
    job, previous = plan.job, plan.previous_version
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            _PENDING, job.ruleset_id, job.version, previous, len(plan.deltas), plan.points
        )
        if await conn.fetchval(_HAS_RUN, job.ruleset_id, previous):
            return False
        await conn.execute(_DROP_LINES, job.ruleset_id, previous)
        boards = [(b, line) for b, board in sorted(plan.old.items()) for line in board.values()]
        await conn.execute(
            _SNAPSHOT,
            job.ruleset_id,
            previous,
            [b for b, _ in boards],
            [line.member_id for _, line in boards],
            [line.total for _, line in boards],
            [line.exact_count for _, line in boards],
        )
    return True


async def _transaction(
    settings: Settings,
    plan: PromotionPlan,
    prefix: str,
    progress: Callable[[int, int], None] | None,
) -> None:
    """Publish the plan in one Kafka transaction, aborted if the tournament moved meanwhile."""
    job = plan.job
    codec = AvroCodec.from_settings(settings)
    out = kafka.producer(
        settings, transactional_id=f"{prefix}scoreline-reprocess-promote.{job.ruleset_id}"
    )
    await out.start()  # fences an earlier promotion of this rule set still running
    try:
        async with out.transaction():
            await _publish(out, codec, plan, prefix, progress)
            arrived = await _arrived_since(settings, codec, plan)
            if arrived:
                raise PromotionRaceError(
                    f"{arrived} record(s) of this tournament arrived while promoting: nothing "
                    "was published; run --promote again"
                )
    except KafkaError as e:
        raise TransientError(
            f"the promotion's transaction failed ({type(e).__name__}: {e}); nothing was "
            "published: run --promote again"
        ) from e
    finally:
        await out.stop()
        codec.close()


async def _publish(
    out: Any,
    codec: AvroCodec,
    plan: PromotionPlan,
    prefix: str,
    progress: Callable[[int, int], None] | None,
) -> None:
    """The deltas, the notices and the rule set (twice) into the open transaction."""
    batches = kafka.BatchSender(out)
    scores, notifications = topic(SCORES, prefix), topic(NOTIFICATIONS, prefix)
    for n, award in enumerate(plan.deltas, start=1):
        await batches.add(scores, award.member_id.encode(), codec.encode(award, SCORES))
        if progress is not None and n % 1000 == 0:
            progress(n, len(plan.deltas))
    for notice in plan.notices:
        value = codec.encode(notice, NOTIFICATIONS)
        await batches.add(notifications, notice.member_id.encode(), value)
    await batches.flush()
    rules = plan.job.rules
    record = RuleSet(
        ruleset_id=rules.ruleset_id,
        game=Game.PREDICTIONS,
        version=rules.version,
        params=rules.to_params(),
        effective_from=datetime.now(UTC),
    )
    value = codec.encode(record, RULES)
    name = topic(RULES, prefix)
    sent = [
        await out.send(name, key=rules.ruleset_id.encode(), value=value),
        await out.send(
            name,
            key=promotion_key(rules.ruleset_id).encode(),
            value=value,
            headers=[(PROMOTED_HEADER, str(rules.version).encode())],
        ),
    ]
    await asyncio.gather(*batches.futures, *sent)
    if progress is not None:
        progress(len(plan.deltas), len(plan.deltas))


async def _arrived_since(settings: Settings, codec: AvroCodec, plan: PromotionPlan) -> int:
    """Records of the tournament on the inputs after the ends the plan was made at."""
    tournament = plan.job.tournament_id

    def concerns_tournament(record: AvroRecord) -> bool:
        if isinstance(record, MatchUpdated):
            return record.tournament_id == tournament
        return isinstance(record, PredictionPlaced) and record.match_id in plan.matches

    reader = kafka.consumer(settings)
    await reader.start()
    try:
        tps = sorted(plan.inputs)
        ends = await reader.end_offsets(tps)
        found = [
            await _relevant_in_gap(
                reader, codec, tp, plan.inputs[tp], ends[tp], concerns_tournament
            )
            for tp in tps
        ]
    finally:
        await reader.stop()
    return sum(1 if n is None else n for n in found)


@dataclass(frozen=True, slots=True)
class RetirePlan:
    """What ``--retire`` drops (or dropped) of one version, or why it cannot."""

    ruleset_id: str
    version: int
    lines: int
    matches: int
    run: bool
    blockers: list[str]
    executed: bool = False


async def retire(
    settings: Settings, pool: Any, tournament_id: str, version: int, *, execute: bool
) -> RetirePlan:
    """Drop a version's totals, match states, offsets and run (dry run unless ``execute``)."""
    ruleset_id = ruleset_id_for(tournament_id)
    consumer_name = ReprocessJob(tournament_id, PredictionRules(ruleset_id, version)).consumer(
        settings.topic_prefix
    )
    async with pool.acquire() as conn, exclusive_lease(conn, lease_name(consumer_name)) as free:
        lines, matches, run, pending = await count_version(conn, ruleset_id, version)
        blockers = []
        if not free:
            blockers.append(f"a run of v{version} is running ({consumer_name}): stop it first")
        if pending:
            blockers.append(f"a promotion involving v{version} is pending: run --promote again")
        if not (lines or matches or run):
            blockers.append(f"{ruleset_id} has no rows of v{version}")
        plan = RetirePlan(ruleset_id, version, lines, matches, run, blockers)
        if not execute:
            return plan
        if blockers:
            raise OperatorError(f"cannot retire {ruleset_id} v{version}: " + "; ".join(blockers))
        async with conn.transaction():
            await drop_version(conn, ruleset_id, version, consumer_name)
    return RetirePlan(ruleset_id, version, lines, matches, run, [], executed=True)
