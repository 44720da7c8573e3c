"""``scoreline db migrate|current``."""

from __future__ import annotations

import asyncio

import typer

from core.cli.output import console
from core.settings import get_settings, mask_url
from core.stack import resolve_urls
from core.stack.postgres import check_postgres
from sinks.db import current_revision, head_revision, migrate

app = typer.Typer(help="Postgres schema migrations (Alembic).")


@app.command("migrate")
def migrate_() -> None:
    """Upgrade the database to the newest migration. Idempotent."""
    settings = get_settings()
    url = resolve_urls(settings).database_url
    asyncio.run(check_postgres(url, settings.connect_timeout_s))
    before = current_revision(url)
    migrate(url)
    after = current_revision(url)
    change = "already at head" if before == after else f"{before or 'empty'} -> {after}"
    console.print(f"database {mask_url(url)}: {change}")


@app.command()
def current() -> None:
    """Show the database's migration and the newest one."""
    url = resolve_urls(get_settings()).database_url
    console.print(f"current: {current_revision(url)}  head: {head_revision(url)}")
