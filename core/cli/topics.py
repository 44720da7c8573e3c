"""``scoreline topics apply|list``."""

from __future__ import annotations

import asyncio

import typer

from core.cli.output import console, table
from core.exceptions import TopicDriftError
from core.kafka import admin_client
from core.settings import get_settings
from core.topics import TopicReport, apply_topics
from schemas.catalog import CATALOG

app = typer.Typer(help="Create the catalog's topics and report drift.")


async def _apply(dry_run: bool, prefix: str) -> list[TopicReport]:
    admin = admin_client(get_settings())
    await admin.start()
    try:
        return await apply_topics(admin, prefix=prefix, dry_run=dry_run)
    finally:
        await admin.close()


@app.command()
def apply(
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Show what would change; change nothing."
    ),
    prefix: str = typer.Option(
        None, help="Prefix for every topic name (default: SCORELINE_TOPIC_PREFIX)."
    ),
) -> None:
    """Create every catalog topic that is missing (idempotent); exit 2 on drift."""
    settings = get_settings()
    reports = asyncio.run(_apply(dry_run, settings.topic_prefix if prefix is None else prefix))
    table(
        "Topics" + (" (dry run)" if dry_run else ""),
        ["topic", "action", "partitions (catalog)", "partitions (broker)", "detail"],
        (
            (r.topic, r.action, r.partitions_expected, r.partitions_actual, r.detail)
            for r in reports
        ),
    )
    drifted = [r.topic for r in reports if r.action == "drift"]
    if drifted:
        raise TopicDriftError(f"{len(drifted)} topic(s) drifted from the catalog: {drifted}")
    created = sum(r.action == "created" for r in reports)
    console.print(f"{created} created, {len(reports) - created} already as the catalog says")


@app.command("list")
def list_() -> None:
    """Show the catalog: every topic, its key, values, partitions and policy."""
    table(
        "Topic catalog",
        ["topic", "key", "values", "partitions", "cleanup", "retention ms"],
        (
            (
                s.name,
                s.key,
                ", ".join(s.value_schemas) or "bytes",
                s.partitions,
                s.cleanup_policy,
                s.retention_ms,
            )
            for s in CATALOG
        ),
    )
