"""``scoreline tap TOPIC``: read any catalog topic as JSON lines (for jq) or a table."""

from __future__ import annotations

import asyncio
from typing import Any

import typer

from core.cli.output import errors, table
from core.ops.exceptions import InvalidResetError
from core.ops.offsets import parse_datetime
from core.ops.tap import TABLE_COLUMNS, Start, TapOptions, table_row, tap, to_jsonl
from schemas.catalog import CATALOG

FORMATS = ("jsonl", "table")


def _check_format(value: str) -> str:
    if value not in FORMATS:
        raise typer.BadParameter(f"expected one of {', '.join(FORMATS)}")
    return value


def tap_command(
    topic: str = typer.Argument(
        ...,
        help="The topic by its catalog name (`scoreline topics list`), e.g. fixtures.matches; "
        "the prefix SCORELINE_TOPIC_PREFIX is added.",
        show_default=False,
    ),
    from_beginning: bool = typer.Option(
        False, "--from-beginning", help="Start at the first record of every partition."
    ),
    from_datetime: str = typer.Option(
        None,
        "--from-datetime",
        help="Start at the first record at or after this ISO 8601 moment with its zone, "
        "e.g. 2026-05-01T12:00:00Z (record timestamps).",
        show_default=False,
    ),
    key: str = typer.Option(
        None, "--key", help="Only records whose key is exactly this (UTF-8).", show_default=False
    ),
    limit: int = typer.Option(
        None,
        "--limit",
        min=1,
        help="Stop after this many records (after the --key filter).",
        show_default=False,
    ),
    output: str = typer.Option(
        "jsonl",
        "--format",
        callback=_check_format,
        help="jsonl: one JSON object per record on stdout (topic, partition, offset, "
        "timestamp ISO UTC, key, headers, value_format, value; Avro decoded with Decimals as "
        "strings; raw payloads as text or base64). table: a table per batch, for people.",
    ),
    follow: bool = typer.Option(
        None,
        "--follow/--no-follow",
        help="Keep reading new records until --limit or Ctrl-C. Default: follow when "
        "starting at the end (no --from-*), else stop at the end the topic had when the "
        "tap started.",
        show_default=False,
    ),
) -> None:
    """Print the records of a topic, read_committed, decoded: Avro values (either wire \
format), raw payloads (text or base64, value_format says which), JSON internal topics.

    Without --from-beginning or --from-datetime it starts at the end and waits for new \
records. Only records go to stdout (pipe them to jq); the count goes to stderr.
    """
    if from_beginning and from_datetime is not None:
        raise typer.BadParameter("give --from-beginning or --from-datetime, not both")
    if topic not in {s.name for s in CATALOG}:
        raise typer.BadParameter(
            f"{topic!r} is not in the catalog; one of: {', '.join(s.name for s in CATALOG)}",
            param_hint="TOPIC",
        )
    from core.settings import get_settings

    at = None
    if from_datetime is not None:
        try:
            at = parse_datetime(from_datetime)
        except InvalidResetError as e:
            raise typer.BadParameter(str(e), param_hint="--from-datetime") from e
    start: Start = "beginning" if from_beginning else ("datetime" if at is not None else "end")
    options = TapOptions(
        topic=topic,
        start=start,
        at=at,
        key=key,
        limit=limit,
        follow=(start == "end") if follow is None else follow,
    )
    rows: list[tuple[str, ...]] = []
    count = 0

    def flush() -> None:
        if rows:
            table(topic, TABLE_COLUMNS, rows)
            rows.clear()

    def emit(line: dict[str, Any]) -> None:
        nonlocal count
        count += 1
        if output == "jsonl":
            typer.echo(to_jsonl(line))
            return
        rows.append(table_row(line))

    try:
        asyncio.run(tap(get_settings(), options, emit, flush))
    except KeyboardInterrupt:  # Ctrl-C ends a follow: a normal end
        pass
    finally:
        flush()
    errors.print(f"{count} record(s) from {topic}")
