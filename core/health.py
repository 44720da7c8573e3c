"""Health of the three services every role depends on."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from core.exceptions import ServiceUnreachableError
from core.settings import Settings, mask_url
from core.stack import resolve_urls
from core.stack.broker import kafka_answers_async
from core.stack.postgres import check_postgres
from core.stack.redis import check_redis


@dataclass(frozen=True, slots=True)
class Check:
    service: str
    url: str  # masked
    ok: bool
    detail: str
    latency_ms: float


async def _timed(service: str, url: str, probe: object) -> Check:
    started = time.perf_counter()
    try:
        await probe  # type: ignore[misc]
        ok, detail = True, "ok"
    except ServiceUnreachableError as e:
        ok, detail = False, e.reason
    return Check(service, mask_url(url), ok, detail, (time.perf_counter() - started) * 1000)


async def _kafka(bootstrap: str, timeout: float) -> None:
    if not await kafka_answers_async(bootstrap, timeout):
        raise ServiceUnreachableError("Kafka", bootstrap, "no answer to a metadata request")


async def check_all(settings: Settings) -> list[Check]:
    """Check Kafka, Postgres and Redis concurrently."""
    urls = resolve_urls(settings)
    timeout = settings.connect_timeout_s
    return list(
        await asyncio.gather(
            _timed(
                "kafka", urls.kafka_bootstrap_servers, _kafka(urls.kafka_bootstrap_servers, timeout)
            ),
            _timed("postgres", urls.database_url, check_postgres(urls.database_url, timeout)),
            _timed("redis", urls.redis_url, check_redis(urls.redis_url, timeout)),
        )
    )
