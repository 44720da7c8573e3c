"""``scoreline provider`` and ``scoreline simulate``: the outside world, for demos and tests."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import typer

from core.cli.output import console
from core.settings import get_settings
from core.stack import resolve_urls

FIRST_KICKOFF_HELP = "First kick-off (ISO 8601, UTC); the provider and the simulator must agree."


def provider(
    seed: int = typer.Option(1, help="Season seed (the simulator must use the same)."),
    speed: float = typer.Option(60.0, help="Sim-seconds per real second."),
    port: int = typer.Option(8765, help="Port on 127.0.0.1."),
    first_kickoff: datetime = typer.Option(None, help=FIRST_KICKOFF_HELP),
    sim_start: datetime = typer.Option(None, help="Sim time at start (default: now)."),
) -> None:
    """Serve a simulated football season over HTTP, shaped like a live-score API."""
    from producers.replay import run_replay_provider

    run_replay_provider(
        seed, speed, port, first_kickoff=_utc(first_kickoff), sim_start=_utc(sim_start)
    )


def simulate(
    seed: int = typer.Option(1, help="Season seed (the provider's)."),
    first_kickoff: datetime = typer.Option(..., help=FIRST_KICKOFF_HELP),
    members: int = typer.Option(500, help="Members guessing."),
    leagues: int = typer.Option(10, help="Leagues (about a quarter private)."),
    rounds: int = typer.Option(1, help="Rounds to guess on, from the first."),
) -> None:
    """Publish members' guesses and the rule set, and register the leagues, as the app would."""
    from producers.season import default_season
    from producers.simulator import generate_entries, publish_simulation, register_leagues

    settings = get_settings()
    season = default_season(seed, first_kickoff=_utc(first_kickoff) or datetime.now(UTC))
    entries = generate_entries(
        season, members=members, leagues=leagues, seed=seed, rounds=range(1, rounds + 1)
    )
    asyncio.run(register_leagues(resolve_urls(settings).database_url, entries.leagues))
    published = asyncio.run(publish_simulation(settings, entries))
    console.print(
        f"{published} guesses published for {members} members in {len(entries.leagues)} leagues"
    )


def _utc(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
