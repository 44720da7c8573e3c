"""``scoreline offsets reset``: kafka-consumer-groups --reset-offsets, for groups and sinks."""

from __future__ import annotations

import asyncio
import json

import typer

from core.cli.output import console, table
from core.ops.offsets import plan_rows, reset_spec
from core.ops.reset import DEFAULT_GRACE_S, ResetOutcome, reset_offsets
from core.settings import get_settings

app = typer.Typer(
    help="Move consumer offsets of a Kafka group or a sink (dry run unless --execute).",
    no_args_is_help=True,
)

FORMATS = ("table", "json")


def _check_format(value: str) -> str:
    if value not in FORMATS:
        raise typer.BadParameter(f"expected one of {', '.join(FORMATS)}")
    return value


def outcome_json(outcome: ResetOutcome) -> dict[str, object]:
    return {
        "group": outcome.group,
        "store": outcome.store,
        "mode": outcome.spec.describe(),
        "executed": outcome.executed,
        "static_members": list(outcome.static_members),
        "member_group": outcome.member_group,
        "partitions": [
            {
                "topic": p.topic,
                "partition": p.partition,
                "current": p.current,
                "new": p.new,
                "earliest": p.earliest,
                "end": p.end,
                "clamped": p.clamped,
            }
            for p in outcome.plan
        ],
    }


@app.command()
def reset(
    group: str = typer.Option(
        ...,
        "--group",
        help="Kafka group id (`scoreline groups list`) or a sink: sink:postgres, "
        "sink:markets, sink:redis.",
        show_default=False,
    ),
    topics: list[str] = typer.Option(
        None,
        "--topic",
        help="Catalog topic, optionally with partitions: scores or scores:0,2. Repeatable. "
        "Default: every topic the group has offsets for (a sink: every topic it reads).",
        show_default=False,
    ),
    to_earliest: bool = typer.Option(False, "--to-earliest", help="The first offset."),
    to_latest: bool = typer.Option(
        False, "--to-latest", help="The end (last stable offset): skip everything unread."
    ),
    to_datetime: str = typer.Option(
        None,
        "--to-datetime",
        help="The first record at or after this ISO 8601 moment with a zone "
        "(2026-05-01T12:00:00Z); the end when there is none.",
        show_default=False,
    ),
    by_duration: str = typer.Option(
        None,
        "--by-duration",
        help="Like --to-datetime, that long before now: ISO 8601 PnDTnHnMnS (PT30M, P1DT2H).",
        show_default=False,
    ),
    shift_by: int = typer.Option(
        None,
        "--shift-by",
        help="Move each partition N offsets (negative: back) from its current offset.",
        show_default=False,
    ),
    to_offset: int = typer.Option(
        None, "--to-offset", help="This offset on every partition.", show_default=False
    ),
    execute: bool = typer.Option(
        False, "--execute", help="Apply the plan. Without it nothing changes (dry run)."
    ),
    remove_static_members: bool = typer.Option(
        False,
        "--remove-static-members",
        help="Remove the group's static members that hold no liveness lease (KIP-345, "
        "LeaveGroup by group.instance.id) before resetting; only with --execute. A stopped "
        "static member stays in its group (for ever on the embedded broker). If one rejoins "
        "within --grace-seconds it is alive and nothing is reset.",
    ),
    grace_seconds: float = typer.Option(
        DEFAULT_GRACE_S,
        "--grace-seconds",
        min=0.0,
        help="How long to watch for a removed static member rejoining.",
    ),
    output: str = typer.Option(
        "table", "--format", callback=_check_format, help="table, or json for scripts."
    ),
) -> None:
    """Plan, and with --execute apply, new offsets for a group's partitions.

    Each new offset is clamped between the earliest offset and the end (the last stable \
offset, what read_committed consumers reach). Refuses, with exit code 1 and nothing \
changed, while the group has live members or the sink is running.
    """
    spec = reset_spec(
        to_earliest=to_earliest,
        to_latest=to_latest,
        to_datetime=to_datetime,
        by_duration=by_duration,
        shift_by=shift_by,
        to_offset=to_offset,
    )
    outcome = asyncio.run(
        reset_offsets(
            get_settings(),
            group,
            topics or (),
            spec,
            execute=execute,
            remove_static_members=remove_static_members,
            grace_s=grace_seconds,
        )
    )
    if output == "json":
        typer.echo(json.dumps(outcome_json(outcome), indent=2))
        return
    title = f"Offsets of {outcome.group}, {spec.describe()}"
    table(
        title + ("" if outcome.executed else " (dry run)"),
        ["topic", "partition", "current", "new", "note"],
        plan_rows(outcome.plan),
    )
    moved = sum(p.changes for p in outcome.plan)
    if outcome.plan and all(p.current is None for p in outcome.plan):
        console.print(
            f"note: {outcome.group} had no offsets for these partitions (a new group, or a "
            "typo in --group?)"
        )
    if outcome.static_members:
        verb = "removed" if outcome.executed else "would remove"
        console.print(
            f"{verb} static member(s) {', '.join(outcome.static_members)} of {outcome.member_group}"
        )
    if outcome.executed:
        console.print(f"applied: {moved} of {len(outcome.plan)} partition(s) moved")
    else:
        console.print(f"dry run: nothing changed ({moved} partition(s) would move); add --execute")
