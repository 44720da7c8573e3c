"""``scoreline rebuild redis``: the leaderboard projection, rebuilt from Postgres."""

from __future__ import annotations

import asyncio

import asyncpg
import redis.asyncio as aioredis
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

from core.cli.output import console
from core.settings import get_settings
from core.stack import resolve_urls

app = typer.Typer(help="Rebuild projections from Postgres, the truth.")


@app.command("redis")
def redis_(
    board: str = typer.Option(None, help="Only this board (default: every board)."),
) -> None:
    """Rebuild the Redis sorted sets from Postgres; readers never see a half-built board."""
    from sinks.rebuild import rebuild_redis

    settings = get_settings()
    urls = resolve_urls(settings)

    async def run() -> int:
        pool = await asyncpg.create_pool(urls.database_url, min_size=1, max_size=2)
        client = aioredis.Redis.from_url(urls.redis_url)
        columns = (BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
        try:
            with Progress(*columns, console=console) as bar:
                task = bar.add_task("lines", total=None)

                def progress(done: int, total: int) -> None:
                    bar.update(task, completed=done, total=total)

                return await rebuild_redis(pool, client, settings.redis_prefix, board, progress)
        finally:
            await client.aclose()
            await pool.close()

    lines = asyncio.run(run())
    console.print(f"{lines} lines written to Redis ({board or 'every board'})")
