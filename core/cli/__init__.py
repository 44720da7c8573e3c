"""``scoreline``: one command line for every role and every operator task."""

from __future__ import annotations

import sys

import typer
from aiokafka.errors import KafkaConnectionError

from core.cli import db, dlq, groups, offsets, rebuild, reprocess, roles, stack, tap, topics
from core.cli.output import fail
from core.exceptions import ScorelineError
from core.kafka import apply_broker_workarounds
from core.logging import configure_logging
from core.settings import get_settings
from core.stack import resolve_urls

app = typer.Typer(
    name="scoreline",
    help="Scoreline: Kafka stream processing for sports games.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(stack.app, name="stack")
app.add_typer(topics.app, name="topics")
app.add_typer(db.app, name="db")
app.add_typer(rebuild.app, name="rebuild")
app.add_typer(dlq.app, name="dlq")
app.add_typer(groups.app, name="groups")
app.add_typer(offsets.app, name="offsets")
roles.register(app)
app.command("tap")(tap.tap_command)
app.command("reprocess")(reprocess.reprocess_command)


def main() -> None:
    settings = get_settings()
    configure_logging(settings.log_level, settings.log_format)
    apply_broker_workarounds(settings)
    try:
        app()
    except ScorelineError as e:
        fail(str(e))
        sys.exit(1)
    except KafkaConnectionError as e:
        where = resolve_urls(settings).kafka_bootstrap_servers
        fail(
            f"Kafka at {where} is unreachable ({e}). Start the embedded stack with "
            "`scoreline stack up`, or fix KAFKA_BOOTSTRAP_SERVERS"
        )
        sys.exit(1)
