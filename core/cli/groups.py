"""``scoreline groups list|describe``: consumer groups and sinks, their members and lag."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import typer

from core.cli.output import console, table
from core.ops.groups import GroupView, assess, describe_group, list_group_views
from core.settings import get_settings

app = typer.Typer(
    help="Consumer groups (Kafka groups and the sinks sink:postgres, sink:markets, "
    "sink:redis): members, committed offsets, end offsets and lag.",
    no_args_is_help=True,
)

FORMATS = ("table", "json")
FORMAT_HELP = "table (for people) or json (one JSON document, for jq)."


def _check_format(value: str) -> str:
    if value not in FORMATS:
        raise typer.BadParameter(f"expected one of {', '.join(FORMATS)}")
    return value


def _state(view: GroupView) -> str:
    activity = assess(view)
    if activity.blocking:
        return f"{view.state} (active)"
    if activity.removable:
        return f"{view.state} (static members without lease)"
    return view.state


def view_json(view: GroupView) -> dict[str, Any]:
    activity = assess(view)
    return {
        "group": view.name,
        "kind": view.kind,
        "state": view.state,
        "store": view.store,
        "active": activity.active,
        "blocking": list(activity.blocking),
        "removable_static_members": list(activity.removable),
        "lease_holders": [
            {"session": h.pid, "mode": h.mode, "application": h.application_name}
            for h in view.holders
        ],
        "members": [
            {
                "member_id": m.member_id,
                "instance_id": m.instance_id,
                "client_id": m.client_id,
                "host": m.host,
                "partitions": list(m.partitions),
                "liveness": m.liveness,
            }
            for m in view.members
        ],
        "partitions": [
            {
                "topic": p.topic,
                "partition": p.partition,
                "owner": p.owner,
                "committed": p.committed,
                "log_end": p.log_end,
                "stable_end": p.stable_end,
                "lag": p.lag,
            }
            for p in view.partitions
        ],
        "lag": view.total_lag,
    }


@app.command("list")
def list_(
    every: bool = typer.Option(
        False,
        "--all",
        help="Every Kafka group on the broker, not only those whose name starts with "
        "SCORELINE_TOPIC_PREFIX.",
    ),
    output: str = typer.Option("table", "--format", callback=_check_format, help=FORMAT_HELP),
) -> None:
    """List the Kafka consumer groups of this environment and the sinks, with their lag."""
    views = asyncio.run(list_group_views(get_settings(), every_prefix=every))
    if output == "json":
        typer.echo(json.dumps([view_json(v) for v in views], indent=2))
        return
    table(
        "Consumer groups",
        ["group", "kind", "state", "members", "partitions", "lag", "offsets stored in"],
        (
            (v.name, v.kind, _state(v), len(v.members), len(v.partitions), v.total_lag, v.store)
            for v in views
        ),
    )


@app.command()
def describe(
    group: str = typer.Argument(
        ...,
        help="A Kafka group id (as `groups list` shows it) or a sink: sink:postgres, "
        "sink:markets, sink:redis.",
        show_default=False,
    ),
    output: str = typer.Option("table", "--format", callback=_check_format, help=FORMAT_HELP),
) -> None:
    """Members (id, instance id, host, partitions) and, per partition, the committed \
offset, log end, stable end (LSO: what read_committed consumers reach) and lag."""
    view = asyncio.run(describe_group(get_settings(), group))
    if output == "json":
        typer.echo(json.dumps(view_json(view), indent=2))
        return
    console.print(f"[bold]{view.name}[/] ({view.kind}): {_state(view)}; offsets in {view.store}")
    members = view.members
    table(
        "Members",
        ["member id", "instance id", "client", "host", "partitions", "liveness"],
        (
            (
                m.member_id,
                m.instance_id or "-",
                m.client_id,
                m.host,
                len(m.partitions),
                m.liveness,
            )
            for m in members
        ),
    )
    table(
        "Partitions",
        ["topic", "partition", "member", "committed", "log end", "stable end", "lag"],
        (
            (
                p.topic,
                p.partition,
                p.owner or "-",
                "-" if p.committed is None else p.committed,
                p.log_end,
                p.stable_end,
                "-" if p.lag is None else p.lag,
            )
            for p in view.partitions
        ),
    )
    activity = assess(view)
    for reason in activity.blocking:
        console.print(f"active: {reason}")
    if activity.removable:
        console.print(
            f"static member(s) {', '.join(activity.removable)} of {activity.removable_group} "
            "hold no liveness lease: stopped, or running without one (a static member "
            "stays listed after it stops)"
        )
