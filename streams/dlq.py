"""Dead letters of the stream processors: the original bytes to ``dlq.streams``, the reason
in headers, sent through the caller's (transactional) producer so they commit with it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaProducer

from core.logging import get_logger
from schemas.catalog import DLQ_STREAMS, topic
from schemas.records import DeadLetter

log = get_logger("streams.dlq")


async def dead_letter(
    producer: AIOKafkaProducer,
    prefix: str,
    tp: Any,
    offset: int,
    key: bytes | None,
    value: bytes | None,
    error: Exception,
) -> None:
    """Send one record that cannot be processed to ``dlq.streams`` with its origin."""
    letter = DeadLetter(
        error_class=type(error).__name__,
        error_message=str(error)[:1000],
        source_topic=tp.topic,
        source_partition=tp.partition,
        source_offset=offset,
        attempts=1,
        failed_at=datetime.now(UTC),
    )
    await producer.send(
        topic(DLQ_STREAMS, prefix), key=key, value=value, headers=letter.to_headers()
    )
    log.warning(
        "streams.dead_letter",
        topic=tp.topic,
        partition=tp.partition,
        offset=offset,
        error=letter.error_class,
    )
