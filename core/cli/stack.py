"""``scoreline stack up|down|status``."""

from __future__ import annotations

import typer

from core.cli.output import console, table
from core.exceptions import StackError
from core.settings import get_settings
from core.stack import ServiceStatus, Stack

app = typer.Typer(help="Start, check and stop the embedded stack (broker, Postgres, Redis).")


def show(statuses: list[ServiceStatus]) -> None:
    table(
        "Scoreline stack",
        ["service", "where", "origin", "state", "pid", "detail"],
        (
            (s.name, s.url, s.origin, "running" if s.running else "DOWN", s.pid, s.detail)
            for s in statuses
        ),
    )


@app.command()
def up() -> None:
    """Use the configured services, else the machine's own, else start embedded ones."""
    statuses = Stack(get_settings()).up()
    show(statuses)
    down = [s.name for s in statuses if not s.running]
    if down:
        raise StackError(f"not running after `stack up`: {', '.join(down)}")
    console.print("Stop what this started with: [bold]scoreline stack down[/] (make stack-down)")


@app.command()
def status() -> None:
    """Show each service, where it answers and who started it. Exit 1 if one is down."""
    statuses = Stack(get_settings()).status()
    show(statuses)
    if any(not s.running for s in statuses):
        raise typer.Exit(1)


@app.command()
def down() -> None:
    """Stop only what `stack up` (or the demo) started; the machine's services stay up."""
    stopped = Stack(get_settings()).down()
    console.print("stopped: " + (", ".join(stopped) if stopped else "nothing of ours was running"))
