"""``scoreline demo``: the whole predictions game on the embedded stack, in the background.

Stack up, topics, migrations, a health check; then the replay provider plays a season
whose first round kicks off a few seconds from now (sim time runs ``--speed`` times
faster), the simulator publishes members' guesses for that round, and the worker, the
sinks, the poller and the API start as background processes tracked like the stack, so
``scoreline stack down`` stops every one of them.
"""

from __future__ import annotations

import asyncio
import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import typer
from pydantic import SecretStr

from core.cli.output import console, table
from core.cli.stack import show
from core.exceptions import StackError
from core.health import check_all
from core.settings import Settings, get_settings, mask_url
from core.stack import Stack, resolve_urls
from core.stack.process import start_detached, tail, wait_exit, wait_until
from core.topics import apply_catalog, drifted
from sinks.db import migrate

ROLES = ("provider", "worker", "boards", "sinks", "producers", "api")
PROVIDER_PORT = 8765


def demo(
    speed: float = typer.Option(120.0, help="Sim-seconds per real second."),
    members: int = typer.Option(2000, help="Members guessing."),
    leagues: int = typer.Option(20, help="Leagues."),
    seed: int = typer.Option(1, help="Season seed."),
) -> None:
    """Run a simulated round of the predictions game end to end; print where to watch it."""
    settings = get_settings()
    stack = Stack(settings)
    console.rule("1. stack")
    show(stack.up())
    console.rule("2. topics and migrations")
    console.print(f"{asyncio.run(_topics(settings))} catalog topics present")
    url = resolve_urls(settings).database_url
    migrate(url)
    console.print(f"{mask_url(url)} at the newest migration")
    console.rule("3. health")
    checks = asyncio.run(check_all(settings))
    table(
        "Health",
        ["service", "state", "detail"],
        ((c.service, "ok" if c.ok else "DOWN", c.detail) for c in checks),
    )
    if not all(c.ok for c in checks):
        raise StackError("a service is down: see the table above")

    console.rule("4. a simulated round")
    if all(stack.owned_pid(role) for role in ROLES):
        console.print("the demo is already running (stop it with [bold]make stack-down[/])")
    else:
        _start_round(stack, settings, speed=speed, members=members, leagues=leagues, seed=seed)
    show(stack.status())
    api = f"http://{settings.api_host}:{settings.api_port}"
    console.rule("watch it")
    console.print(
        f"League leaderboard (fills in as matches finish): [bold]{api}/boards/league:l001[/]\n"
        f"Tournament board: {api}/boards/tournament:17   a match: {api}/matches/1001\n"
        f"Live page: {api}/leaderboard/league:l001   API docs: {api}/docs\n"
        f"Logs: {settings.home}/logs/   Stop everything: [bold]make stack-down[/]"
    )


def _start_round(
    stack: Stack, settings: Settings, *, speed: float, members: int, leagues: int, seed: int
) -> None:
    sim_start = datetime.now(UTC).replace(microsecond=0)
    first_kickoff = sim_start + timedelta(minutes=15)
    logs = settings.home.resolve() / "logs"
    # Each demo round gets its own topics, database and Redis keys: match ids repeat
    # from one season to the next, and a second round must not read as corrections.
    run = f"demo{sim_start:%Y%m%d%H%M%S}"
    demo = _fresh_demo_settings(settings, run)
    console.print(f"this round: topics {run}.*, database {DEMO_DATABASE}, Redis {run}:*")
    env = {
        **os.environ,
        "SCORELINE_TOPIC_PREFIX": demo.topic_prefix,
        "SCORELINE_REDIS_PREFIX": demo.redis_prefix,
        "DATABASE_URL": resolve_urls(demo).database_url,
        "PROVIDER_URL": f"http://127.0.0.1:{PROVIDER_PORT}",
        "SCORELINE_LIVE_INTERVAL_S": "2",
        "SCORELINE_ROUND_INTERVAL_S": "3",
        "SCORELINE_LOG_FORMAT": "json",
    }
    scoreline = str(Path(sys.executable).parent / "scoreline")
    commands = {
        "provider": [
            "provider",
            f"--seed={seed}",
            f"--speed={speed}",
            f"--port={PROVIDER_PORT}",
            f"--sim-start={sim_start.isoformat()}",
            f"--first-kickoff={first_kickoff.isoformat()}",
        ],
        "worker": ["worker"],
        "boards": ["boards"],
        "sinks": ["sinks"],
        "producers": ["producers"],
        "api": ["api"],
    }
    for port, role in enumerate(ROLES, start=9101):
        if not stack.owned_pid(role):
            role_env = {**env, "SCORELINE_METRICS_PORT": str(port)}
            log = logs / f"{role}.log"
            pid = start_detached([scoreline, *commands[role]], log, env=role_env)
            stack.track(role, pid)
            console.print(f"started {role} (pid {pid}), log {log}")
        if role == "provider":  # first, and answering before the poller asks it anything:
            wait_until(  # else the poller's first fetches fail and its circuit opens
                lambda: _answers(f"http://127.0.0.1:{PROVIDER_PORT}/health"),
                timeout=30,
                what="the replay provider",
            )
    guesses = [
        scoreline,
        "simulate",
        f"--seed={seed}",
        f"--first-kickoff={first_kickoff.isoformat()}",
        f"--members={members}",
        f"--leagues={leagues}",
    ]
    pid = start_detached(guesses, logs / "simulate.log", env=env)
    if wait_exit(pid, timeout=300) != 0:
        raise StackError(
            f"the simulator failed; see {logs / 'simulate.log'}:\n{tail(logs / 'simulate.log')}"
        )
    console.print(
        f"guesses published ({members} members, {leagues} leagues); round kicks off "
        f"at sim {first_kickoff:%H:%M} UTC, sim time runs {speed:g}x"
    )
    api = f"http://127.0.0.1:{settings.api_port}/ready"
    wait_until(lambda: _answers(api), timeout=60, what="the API")


DEMO_DATABASE = "scoreline_demo"


def _fresh_demo_settings(settings: Settings, run: str) -> Settings:
    """Settings for a new round: its topic prefix, Redis prefix, and a fresh demo database."""
    server = resolve_urls(settings).database_url
    parts = urlsplit(server)
    database_url = urlunsplit((parts.scheme, parts.netloc, f"/{DEMO_DATABASE}", "", ""))
    asyncio.run(_recreate_database(server, DEMO_DATABASE))
    migrate(database_url)
    demo = settings.model_copy(
        update={
            "topic_prefix": f"{run}.",
            "redis_prefix": f"scoreline:{run}:",
            "database_url": SecretStr(database_url),
        }
    )
    asyncio.run(_topics(demo))
    return demo


async def _recreate_database(server_url: str, name: str) -> None:
    conn = await asyncpg.connect(server_url)
    try:
        await conn.execute(f'drop database if exists "{name}" with (force)')
        await conn.execute(f'create database "{name}"')
    finally:
        await conn.close()


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


async def _topics(settings: Settings) -> int:
    reports = await apply_catalog(settings)
    if drift := drifted(reports):
        raise StackError(f"topics drifted from the catalog: {drift}")
    return len(reports)
