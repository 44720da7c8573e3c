"""``scoreline reprocess``: re-score with a new rule version, promote it, retire a version."""

from __future__ import annotations

import asyncio
import json
import signal
from collections import defaultdict
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeVar

import asyncpg
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, Task, TextColumn
from rich.text import Text

from core.cli.output import console, table
from core.ops.exceptions import OperatorError
from core.ops.reprocess import (
    PromotionPlan,
    format_eta,
    format_rate,
    parse_params,
    plan_promotion,
    prepare_run,
    promote,
    retire,
)
from core.settings import Settings, get_settings
from core.stack import resolve_urls
from streams.reprocess import Progress as RunProgress
from streams.reprocess import Reprocessor, count_version, versions
from streams.rulebook import ruleset_id_for
from streams.rules.predictions import DEFAULT_POINTS

T = TypeVar("T")

HELP = "\n\n".join(
    (
        "Re-score a tournament's history with a new rule version, beside the live worker.",
        "Without a mode option, runs the reprocess: a stream application of its own "
        "(<prefix>scoreline-reprocess-predictions-<tournament>-v<V>) reads fixtures.matches "
        "and entries.predictions from the beginning, scores with rule version V (the params "
        "of --param or --rules-file) and keeps the totals per board and member under V in "
        "Postgres, with its offsets in the same transaction: stopped or killed, it resumes "
        "where it committed. It stops when caught up (--follow: keeps going until Ctrl-C). "
        "Nothing live changes.",
        "--promote (a dry run unless --execute) refuses until the run, the live worker and "
        "the Postgres sink have processed everything of the tournament; then one Kafka "
        "transaction publishes on scores the delta new - old of every board line that "
        "changes, and rule set V on rules. A second --promote does nothing.",
        "--retire (a dry run unless --execute) drops the totals kept for a version: a run's, "
        "or the old live totals a promotion kept. --status lists the versions kept.",
    )
)


class RateEtaColumn(ProgressColumn):
    """Records per second and the time left, at the rate so far."""

    def render(self, task: Task) -> Text:
        done, total = int(task.completed), int(task.total or 0)
        elapsed = task.elapsed or 0.0
        return Text(f"{format_rate(done, elapsed)}  ETA {format_eta(done, total, elapsed)}")


def _with_pool(settings: Settings, work: Callable[[Any], Awaitable[T]]) -> T:
    async def run() -> T:
        database_url = resolve_urls(settings).database_url
        pool = await asyncpg.create_pool(database_url, min_size=1, max_size=3)
        try:
            return await work(pool)
        finally:
            await pool.close()

    return asyncio.run(run())


def reprocess_command(
    rules_version: int = typer.Option(
        None, "--rules-version", min=0, help="The rule version V to score with (or act on)."
    ),
    game: str = typer.Option("predictions", "--game", help="The game: predictions."),
    tournament: str = typer.Option(
        None, "--tournament", help="Tournament id (default: SCORELINE_TOURNAMENT_ID)."
    ),
    param: list[str] = typer.Option(  # noqa: B008
        None,
        "--param",
        help="A rule param of V as NAME=DECIMAL (exact_score, exact_bonus, goal_difference, "
        "outcome; the rest take the defaults); repeatable. Needed on a version's first run.",
    ),
    rules_file: str = typer.Option(
        None, "--rules-file", help='A JSON object of params ({"exact_score": "10"}) instead.'
    ),
    follow: bool = typer.Option(False, "--follow", help="Keep following after catching up."),
    promote_: bool = typer.Option(
        False, "--promote", help="Switch the live boards to V: deltas on scores, V on rules."
    ),
    retire_: bool = typer.Option(
        False, "--retire", help="Drop the totals and state kept for V (a run or an old version)."
    ),
    status: bool = typer.Option(False, "--status", help="List the versions kept and their state."),
    execute: bool = typer.Option(
        False, "--execute", help="Apply --promote or --retire; without it, only show the plan."
    ),
) -> None:
    settings = get_settings()
    tournament_id = tournament or settings.tournament_id
    modes = [name for name, on in (("--promote", promote_), ("--retire", retire_)) if on]
    if status:
        modes.append("--status")
    if len(modes) > 1:
        raise typer.BadParameter(f"choose one of {', '.join(modes)}")
    if execute and not (promote_ or retire_):
        raise typer.BadParameter("--execute applies --promote or --retire", param_hint="--execute")
    if (param or rules_file) and modes:
        raise typer.BadParameter("--param and --rules-file are for a run", param_hint="--param")
    if status:
        _status(settings, tournament_id)
        return
    if rules_version is None:
        raise typer.BadParameter("required", param_hint="--rules-version")
    if promote_:
        _promote(settings, tournament_id, rules_version, execute)
    elif retire_:
        _retire(settings, tournament_id, rules_version, execute)
    else:
        params = parse_params(param or (), rules_file)
        _run(settings, game, tournament_id, rules_version, params, follow)


def _run(
    settings: Settings,
    game: str,
    tournament_id: str,
    version: int,
    params: dict[str, str] | None,
    follow: bool,
) -> None:
    async def work(pool: Any) -> tuple[RunProgress, str, tuple[int, int, bool, bool]]:
        job = await prepare_run(settings, pool, tournament_id, version, params, game)
        name = job.consumer(settings.topic_prefix)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        columns = (TextColumn("records"), BarColumn(), MofNCompleteColumn(), RateEtaColumn())
        with Progress(*columns, console=console) as bar:
            task = bar.add_task("records", total=None)

            def report(progress: RunProgress) -> None:
                bar.update(task, completed=progress.read, total=progress.total)

            reached = await Reprocessor(settings, pool, job).run(
                stop, follow=follow, progress=report
            )
        async with pool.acquire() as conn:
            counts = await count_version(conn, job.ruleset_id, job.version)
        return reached, name, counts

    reached, name, (lines, _, _, _) = _with_pool(settings, work)
    ruleset_id = ruleset_id_for(tournament_id)
    table(
        f"Reprocess of {ruleset_id} v{version}",
        ["application", "records read", "matches scored", "board lines", "caught up"],
        [(name, reached.read, reached.matches_scored, lines, "yes" if reached.caught_up else "no")],
    )
    if reached.caught_up:
        console.print(
            f"next: scoreline reprocess --tournament {tournament_id} --rules-version {version} "
            "--promote (a dry run first)"
        )
    else:
        console.print("stopped before catching up: run the same command again to resume")


def _promote(settings: Settings, tournament_id: str, version: int, execute: bool) -> None:
    plan = _with_pool(settings, lambda pool: plan_promotion(settings, pool, tournament_id, version))
    ruleset_id = plan.job.ruleset_id
    if plan.promoted_at is not None:
        console.print(
            f"{ruleset_id} v{version} was promoted at {_when(plan.promoted_at)}: nothing to do"
        )
        return
    _promotion_table(plan, executed=False)
    if plan.blockers:
        raise OperatorError("cannot promote yet: " + "; ".join(plan.blockers))
    if not execute:
        console.print(
            f"{len(plan.deltas)} delta(s) and rule set v{version} would be published; "
            "run again with --execute to promote"
        )
        return
    columns = (TextColumn("deltas"), BarColumn(), MofNCompleteColumn(), RateEtaColumn())
    with Progress(*columns, console=console) as bar:
        task = bar.add_task("deltas", total=len(plan.deltas))

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        result = _with_pool(settings, lambda pool: promote(settings, pool, plan, progress))
    kept = f"; the old totals are kept as v{plan.previous_version}" if result.snapshot else ""
    console.print(
        f"promoted {ruleset_id} v{version}: {result.published} delta(s) on scores, "
        f"{len(plan.notices)} notification(s), rule set v{version} on rules{kept}"
    )


def _promotion_table(plan: PromotionPlan, executed: bool) -> None:
    per_board: defaultdict[str, list[Any]] = defaultdict(lambda: [0, Decimal("0.00"), 0])
    for delta in plan.deltas:
        row = per_board[delta.board_ids[0]]
        row[0] += 1
        row[1] += delta.points_delta
        row[2] += delta.exact_delta
    title = "Promotion" if executed else "Promotion (dry run: nothing is published)"
    job = plan.job
    table(
        f"{title} of {job.ruleset_id} v{job.version} (live: v{plan.previous_version})",
        ["board", "lines changed", "points delta", "exact delta"],
        [(board, *row) for board, row in sorted(per_board.items())],
    )
    console.print(f"{len(plan.deltas)} line(s) change, {plan.points} points in all")


def _retire(settings: Settings, tournament_id: str, version: int, execute: bool) -> None:
    plan = _with_pool(
        settings, lambda pool: retire(settings, pool, tournament_id, version, execute=execute)
    )
    title = "Retired" if plan.executed else "Retire (dry run: nothing is dropped)"
    table(
        f"{title} {plan.ruleset_id} v{version}",
        ["board lines", "match states", "run"],
        [(plan.lines, plan.matches, "yes" if plan.run else "no")],
    )
    if plan.blockers:
        raise OperatorError("cannot retire: " + "; ".join(plan.blockers))
    if not plan.executed:
        console.print("run again with --execute to drop these rows")


def _status(settings: Settings, tournament_id: str) -> None:
    ruleset_id = ruleset_id_for(tournament_id)

    async def work(pool: Any) -> list[dict[str, Any]]:
        async with pool.acquire() as conn:
            return await versions(conn, ruleset_id)

    rows = _with_pool(settings, work)
    table(
        f"Versions of {ruleset_id} kept here",
        ["version", "board lines", "run", "params", "caught up", "promotion"],
        (
            (
                r["rule_version"],
                r["lines"],
                r["consumer"] or "",
                _changed_params(r["params"]),
                _when(r["caught_up_at"]),
                f"{r['promotion']} {_when(r['promoted_at'])}".strip() if r["promotion"] else "",
            )
            for r in rows
        ),
    )


def _changed_params(params: str | None) -> str:
    """The params that differ from the defaults (``exact_score=10.00``), or ``defaults``."""
    if params is None:
        return ""
    values = json.loads(params)
    changed = [f"{k}={v}" for k, v in values.items() if Decimal(v) != DEFAULT_POINTS.get(k)]
    return " ".join(changed) or "defaults"


def _when(moment: datetime | None) -> str:
    return "" if moment is None else f"{moment.astimezone(UTC):%Y-%m-%d %H:%M:%S}Z"


reprocess_command.__doc__ = HELP
