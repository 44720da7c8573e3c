"""What the pollers publish as-is: fetched payloads (``raw.*``) and dead letters (``dlq.*``).

Raw topics hold every 200 response byte for byte (a 304 brings nothing new and publishes
nothing). Feeds and keys of the football provider:

- ``/event/{id}`` to ``raw.football.events``, key ``{id}``;
- ``/sport/football/events/live`` to ``raw.football.events``, key ``live:football``;
- ``/unique-tournament/{t}/season/{s}/rounds`` to ``raw.football.rounds``, key
  ``rounds:{t}:{s}``;
- ``/unique-tournament/{t}/season/{s}/events/round/{r}`` to ``raw.football.rounds``, key
  ``round:{t}:{s}:{r}``.

Headers (UTF-8): ``provider``, ``url``, ``fetched_at`` (ISO-8601 UTC), ``content_sha256``
(hex, of the bytes as fetched), ``poll_execution_id``, and ``etag`` when the provider sent
one.

A dead letter keeps the original key and the original bytes (for one bad event of a list,
its exact bytes within the response). Its headers are :class:`DeadLetter`'s, where
``source_topic``/``source_partition``/``source_offset`` locate the raw record of the fetch it
came from, plus ``source_url``, ``provider`` and ``poll_execution_id``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from core.exceptions import ScorelineError
from producers.http import Fetched
from schemas.records import DeadLetter

Headers = list[tuple[str, bytes]]


@dataclass(frozen=True, slots=True)
class RawPosition:
    """Where a raw record landed."""

    topic: str
    partition: int
    offset: int


def content_sha256(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def raw_headers(fetched: Fetched, *, provider: str, execution_id: str) -> Headers:
    """The provenance headers of a raw record."""
    if fetched.body is None:
        raise ValueError(f"{fetched.url} answered {fetched.status}: there is no body to publish")
    headers: Headers = [
        ("provider", provider.encode()),
        ("url", fetched.url.encode()),
        ("fetched_at", fetched.fetched_at.astimezone(UTC).isoformat().encode()),
        ("content_sha256", content_sha256(fetched.body).encode()),
        ("poll_execution_id", execution_id.encode()),
    ]
    if fetched.etag:
        headers.append(("etag", fetched.etag.encode()))
    return headers


async def publish_raw(
    producer: Any,
    fetched: Fetched,
    *,
    topic: str,
    key: str,
    provider: str,
    execution_id: str,
) -> RawPosition:
    """Publish a 200's body, byte for byte, to the physical ``topic``; wait for the ack."""
    headers = raw_headers(fetched, provider=provider, execution_id=execution_id)
    metadata = await producer.send_and_wait(
        topic, value=fetched.body, key=key.encode(), headers=headers
    )
    return RawPosition(topic, int(metadata.partition), int(metadata.offset))


def dead_letter_headers(
    error: ScorelineError,
    *,
    source: RawPosition,
    url: str,
    provider: str,
    execution_id: str,
    failed_at: datetime,
    attempts: int = 1,
) -> Headers:
    """:class:`DeadLetter` headers and the poller's provenance."""
    letter = DeadLetter(
        error_class=f"{type(error).__module__}.{type(error).__qualname__}",
        error_message=str(error),
        source_topic=source.topic,
        source_partition=source.partition,
        source_offset=source.offset,
        attempts=attempts,
        failed_at=failed_at,
    )
    return [
        *letter.to_headers(),
        ("source_url", url.encode()),
        ("provider", provider.encode()),
        ("poll_execution_id", execution_id.encode()),
    ]


async def publish_dead_letter(
    producer: Any, *, topic: str, key: bytes, value: bytes, headers: Headers
) -> None:
    """Publish the original key and bytes to the physical dead-letter ``topic``."""
    await producer.send_and_wait(topic, value=value, key=key, headers=headers)
