"""Dead letters of the sinks: the original key and bytes on ``dlq.sinks``, the reason in headers.

A dead letter is sent (and acknowledged by the broker, acks=all) *before* the offset of its
record is committed with the sink's data, so a record is never lost. A crash between the
two sends the same dead letter again on restart: the DLQ is at-least-once, and its headers
(``source_topic``, ``source_partition``, ``source_offset``) identify duplicates.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiokafka.errors import KafkaError
from prometheus_client import Counter

from core.exceptions import SinkUnavailableError
from core.logging import get_logger
from schemas.catalog import DLQ_SINKS, topic
from schemas.records import DeadLetter

#: Extra header naming the sink consumer that gave up on the record.
CONSUMER_HEADER = "consumer"

log = get_logger("sink.dlq")

DEAD_LETTERS = Counter(
    "scoreline_sink_dead_letters", "Records sent to dlq.sinks", ["sink", "topic"]
)


class DeadLetterPublisher:
    """Sends records a sink cannot process to ``dlq.sinks`` (under the topic prefix)."""

    def __init__(self, producer: Any, *, consumer: str, topic_prefix: str = "") -> None:
        self._producer = producer
        self._consumer = consumer
        self.topic = topic(DLQ_SINKS, topic_prefix)

    async def publish(
        self,
        *,
        key: bytes | None,
        value: bytes | None,
        error: BaseException,
        source_topic: str,
        source_partition: int,
        source_offset: int,
        attempts: int = 1,
        logical_topic: str = "",
    ) -> None:
        """Send one dead letter and wait for the broker to acknowledge it."""
        letter = DeadLetter(
            error_class=type(error).__name__,
            error_message=str(error)[:4000],
            source_topic=source_topic,
            source_partition=source_partition,
            source_offset=source_offset,
            attempts=attempts,
            failed_at=datetime.now(UTC),
        )
        headers = [*letter.to_headers(), (CONSUMER_HEADER, self._consumer.encode())]
        try:
            await self._producer.send_and_wait(self.topic, value=value, key=key, headers=headers)
        except KafkaError as e:
            raise SinkUnavailableError(f"dead-letter topic {self.topic}: {e}") from e
        DEAD_LETTERS.labels(sink=self._consumer, topic=logical_topic or source_topic).inc()
        log.warning(
            "sink.dead_letter",
            operation="dead_letter",
            consumer=self._consumer,
            topic=source_topic,
            partition=source_partition,
            offset=source_offset,
            error_class=letter.error_class,
            error=letter.error_message,
            attempts=attempts,
        )
