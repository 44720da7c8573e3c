"""structlog, configured once. One event name plus key=value context, never print."""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

_configured = False


def configure_logging(level: str = "INFO", fmt: str = "console") -> None:
    """Configure structlog and the standard library logging once per process."""
    global _configured
    if _configured:
        return
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
        ),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    logging.basicConfig(level=level.upper(), stream=sys.stderr, format="%(name)s %(message)s")
    for chatty in ("httpx", "httpcore", "aiokafka", "asyncio"):  # their INFO is our noise
        logging.getLogger(chatty).setLevel(max(logging.WARNING, logging.getLogger().level))
    _configured = True


def get_logger(component: str, **context: Any) -> structlog.stdlib.BoundLogger:
    """A logger bound to a component (``stack``, ``sink.postgres``, ...) and extra context."""
    logger: structlog.stdlib.BoundLogger = structlog.get_logger(component=component, **context)
    return logger
