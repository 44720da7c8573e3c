"""``scoreline topics apply|list``."""

from __future__ import annotations

import asyncio

import typer

from core.cli.output import console, table
from core.exceptions import TopicDriftError
from core.settings import get_settings
from core.topics import apply_catalog, drifted
from schemas.catalog import CATALOG

app = typer.Typer(help="Create the catalog's topics and report drift.")


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
    reports = asyncio.run(apply_catalog(settings, prefix=prefix, dry_run=dry_run))
    table(
        "Topics" + (" (dry run)" if dry_run else ""),
        ["topic", "action", "partitions (catalog)", "partitions (broker)", "detail"],
        (
            (r.topic, r.action, r.partitions_expected, r.partitions_actual, r.detail)
            for r in reports
        ),
    )
    if drift := drifted(reports):
        raise TopicDriftError(f"{len(drift)} topic(s) drifted from the catalog: {drift}")
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
