"""``scoreline dlq list|show|replay``: dead letters, their reasons and origins, replayed once."""

from __future__ import annotations

import asyncio
import base64
import json
from datetime import datetime
from decimal import Decimal
from enum import Enum
from typing import Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

from core.cli.output import console, table
from core.ops.dlq import (
    WHERE_FIELDS,
    LetterStatus,
    Planned,
    Position,
    Where,
    load,
    parse_partition_offset,
    replay,
    text_or_base64,
)
from core.settings import get_settings
from schemas.catalog import spec
from schemas.codec import AvroCodec

app = typer.Typer(help="Dead letters: list them, show one, replay them to their source topic.")

TOPIC_HELP = "Dead-letter topic by its catalog name: dlq.streams, dlq.sinks or dlq.producers."
WHERE_HELP = (
    f"Filter as FIELD=VALUE, FIELD one of {', '.join(WHERE_FIELDS)}. error= the error class "
    "(with or without module); message= a substring of the reason; source= TOPIC, TOPIC/P or "
    "TOPIC/P/O of the origin; key= the original key; offset= P:O of the letter; replayed=yes|no; "
    "decodes=yes|no (whether the value decodes with this process's schemas). Repeat a "
    "field for OR; different fields are ANDed."
)
FORMAT_HELP = "table (for people) or jsonl (one JSON object per line, for jq)."


def _check_format(value: str) -> str:
    if value not in ("table", "jsonl"):
        raise typer.BadParameter("expected table or jsonl")
    return value


def _where(expressions: list[str] | None, prefix: str) -> Where:
    try:
        return Where.parse(expressions or (), prefix)
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="--where") from e


def _when(moment: datetime | None) -> str:
    return "" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "Z"


def _row(status: LetterStatus) -> dict[str, Any]:
    """A letter as one JSON object (``list --format jsonl``)."""
    letter, reason = status.letter, status.letter.reason
    return {
        "id": str(letter.id),
        "partition": letter.id.partition,
        "offset": letter.id.offset,
        "timestamp": letter.timestamp.isoformat(),
        "failed_at": reason.failed_at.isoformat() if reason else None,
        "error_class": reason.error_class if reason else None,
        "error_message": reason.error_message if reason else letter.problem,
        "source": str(letter.source) if letter.source else None,
        "attempts": status.attempts,
        "key": None if letter.key is None else text_or_base64(letter.key),
        "replayed": status.replayed is not None,
        "replayed_to": str(status.replayed.target) if status.replayed else None,
        "replayed_at": status.replayed.replayed_at.isoformat() if status.replayed else None,
        "replay_of": str(status.replay_of) if status.replay_of else None,
        "duplicate_of": str(status.duplicate_of) if status.duplicate_of else None,
        "decodes": status.decodes or None,
    }


def _replayed_cell(status: LetterStatus) -> str:
    cell = "no" if status.replayed is None else f"yes → {status.replayed.target}"
    if status.replay_of is not None:
        cell += f" (failed replay of {status.replay_of.partition}:{status.replay_of.offset})"
    if status.duplicate_of is not None:
        cell += f" (duplicate of {status.duplicate_of.partition}:{status.duplicate_of.offset})"
    return cell


def _codec() -> AvroCodec:
    return AvroCodec.from_settings(get_settings())


@app.command("list")
def list_(
    topic: str = typer.Option(..., "--topic", help=TOPIC_HELP),
    where: list[str] = typer.Option(None, "--where", help=WHERE_HELP),  # noqa: B008
    limit: int = typer.Option(None, "--limit", min=1, help="Show the first N matching letters."),
    fmt: str = typer.Option("table", "--format", callback=_check_format, help=FORMAT_HELP),
) -> None:
    """List dead letters: position, time, reason, origin, attempts, whether replayed."""
    settings = get_settings()
    chosen = _where(where, settings.topic_prefix)
    codec = _codec()
    try:
        statuses, _ = asyncio.run(load(settings, topic, codec=codec))
    finally:
        codec.close()
    selected = [s for s in statuses if chosen(s)][:limit]
    if fmt == "jsonl":
        for status in selected:
            typer.echo(json.dumps(_row(status), ensure_ascii=False))
        return
    table(
        f"Dead letters on {settings.topic_prefix}{topic}",
        ["letter", "failed at", "error", "message", "source", "attempts", "replayed"],
        (
            (
                f"{s.letter.id.partition}:{s.letter.id.offset}",
                _when(s.letter.timestamp),
                s.letter.reason.error_class if s.letter.reason else "(malformed headers)",
                (s.letter.reason.error_message if s.letter.reason else s.letter.problem)[:80],
                s.letter.source or "",
                s.attempts,
                _replayed_cell(s),
            )
            for s in selected
        ),
    )
    console.print(f"{len(selected)} of {len(statuses)} letter(s)")


@app.command()
def show(
    topic: str = typer.Option(..., "--topic", help=TOPIC_HELP),
    offset: str = typer.Option(..., "--offset", help="The letter as PARTITION:OFFSET."),
    fmt: str = typer.Option("table", "--format", callback=_check_format, help=FORMAT_HELP),
) -> None:
    """Show one letter whole: headers, key, and the payload decoded (else text or base64)."""
    settings = get_settings()
    try:
        partition, number = parse_partition_offset(offset)
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="--offset") from e
    codec = _codec()
    try:
        statuses, _ = asyncio.run(load(settings, topic, codec=codec))
        found = [
            s
            for s in statuses
            if (s.letter.id.partition, s.letter.id.offset) == (partition, number)
        ]
        if not found:
            raise typer.BadParameter(
                f"no letter at {partition}:{number} on {settings.topic_prefix}{topic}",
                param_hint="--offset",
            )
        status = found[0]
        payload = _payload(codec, status.letter.value)
    finally:
        codec.close()
    body = {
        **_row(status),
        "headers": {name: text_or_base64(value) for name, value in status.letter.headers},
        "payload": payload,
    }
    if fmt == "jsonl":
        typer.echo(json.dumps(body, ensure_ascii=False, default=_jsonable))
        return
    table(
        f"Letter {status.letter.id}",
        ["field", "value"],
        [(k, v) for k, v in body.items() if k not in ("headers", "payload")],
    )
    table("Headers", ["header", "value"], body["headers"].items())
    console.print("Payload:", style="bold")
    console.print_json(json.dumps(payload, ensure_ascii=False, default=_jsonable))


def _payload(codec: AvroCodec, value: bytes | None) -> dict[str, Any]:
    """The value decoded when it decodes with this process's schemas, else as text/base64."""
    if value is None:
        return {"kind": "none"}
    try:
        record = codec.decode(value)
    except Exception as e:  # any failure: show the bytes and why
        undecoded: dict[str, Any] = {"kind": "undecoded", "error": f"{type(e).__name__}: {e}"}
        text = text_or_base64(value)
        if not text.startswith("base64:"):
            undecoded["text"] = text
        undecoded["base64"] = base64.b64encode(value).decode()
        return undecoded
    return {"kind": "avro", "schema": record.schema_name, "value": record.to_avro()}


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, bytes):
        return text_or_base64(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


REPLAY_HELP = (
    "Re-publish letters to their source topic and partition, each at most once. Dry run by "
    "default: a table of what would be replayed, where to, and what is skipped (already "
    "replayed, no origin, a poller's letter). With --execute, each letter goes back with "
    "its original key and bytes and a scoreline-replay-of header, and is recorded on "
    "dlq.replayed in the same Kafka transaction: running it again replays nothing twice."
)


@app.command("replay", help=REPLAY_HELP)
def replay_(
    topic: str = typer.Option(..., "--topic", help=TOPIC_HELP),
    where: list[str] = typer.Option(None, "--where", help=WHERE_HELP),  # noqa: B008
    execute: bool = typer.Option(
        False, "--execute", help="Re-publish the letters; without it, only show the plan."
    ),
    fmt: str = typer.Option("table", "--format", callback=_check_format, help=FORMAT_HELP),
) -> None:
    """Re-publish letters to their origin, each at most once (see REPLAY_HELP)."""
    settings = get_settings()
    chosen = _where(where, settings.topic_prefix)
    codec = _codec()
    try:
        if execute and fmt == "table":
            columns = (BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
            with Progress(*columns, console=console) as bar:
                task = bar.add_task("letters", total=None)

                def progress(done: int, total: int) -> None:
                    bar.update(task, completed=done, total=total)

                run = asyncio.run(
                    replay(settings, topic, chosen, execute=True, codec=codec, progress=progress)
                )
        else:
            run = asyncio.run(replay(settings, topic, chosen, execute=execute, codec=codec))
    finally:
        codec.close()
    targets = {r.letter: r.target for r in run.replayed}
    if fmt == "jsonl":
        for item in run.planned:
            typer.echo(json.dumps(_plan_row(item, targets, run.executed), ensure_ascii=False))
        return
    title = "Replay" if run.executed else "Replay (dry run: nothing is published)"
    table(
        f"{title} of {settings.topic_prefix}{topic}",
        ["letter", "source", "action", "to", "decodes here", "reason"],
        (
            (
                f"{p.status.letter.id.partition}:{p.status.letter.id.offset}",
                p.status.letter.source or "",
                _action(p, run.executed),
                _to(p, targets) or "",
                p.status.decodes or ("no" if p.status.decode_error else ""),
                p.reason,
            )
            for p in run.planned
        ),
    )
    would = sum(p.target is not None for p in run.planned)
    for name in sorted({p.target[0] for p in run.planned if p.target is not None}):
        if "compact" in spec(name.removeprefix(settings.topic_prefix)).cleanup_policy:
            console.print(
                f"note: {name} is compacted: a replayed copy becomes the newest record of "
                "its key there; replay what is still the latest state (docs/operations.md)"
            )
    if run.executed:
        console.print(f"{len(run.replayed)} replayed, {len(run.planned) - would} skipped")
    else:
        console.print(
            f"{would} would be replayed, {len(run.planned) - would} skipped; "
            "run again with --execute to replay"
        )


def _to(item: Planned, targets: dict[Position, Position]) -> str | None:
    """Where a letter went (topic/partition/offset), or would go (topic/partition)."""
    done = targets.get(item.status.letter.id)
    if done is not None:
        return str(done)
    return None if item.target is None else f"{item.target[0]}/{item.target[1]}"


def _action(item: Planned, executed: bool) -> str:
    if item.target is None:
        return "skip"
    return "replayed" if executed else "would replay"


def _plan_row(item: Planned, targets: dict[Position, Position], executed: bool) -> dict[str, Any]:
    return {
        "id": str(item.status.letter.id),
        "source": str(item.status.letter.source) if item.status.letter.source else None,
        "action": _action(item, executed),
        "to": _to(item, targets),
        "decodes": item.status.decodes or None,
        "decode_error": item.status.decode_error or None,
        "reason": item.reason or None,
    }
