"""Service plumbing for the harness: testcontainers when Docker is there, clean-up helpers."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import asyncpg
import redis.asyncio as aioredis


def docker_requested() -> bool:
    """SCORELINE_TEST_DOCKER=1 asks for testcontainers; it must then have an engine."""
    return os.environ.get("SCORELINE_TEST_DOCKER") == "1"


@contextlib.contextmanager
def start_containers() -> Iterator[tuple[str, str, str]]:
    """Kafka, Postgres and Redis in containers: (bootstrap, postgres server URL, redis URL)."""
    from testcontainers.kafka import KafkaContainer
    from testcontainers.postgres import PostgresContainer
    from testcontainers.redis import RedisContainer

    with (
        KafkaContainer("confluentinc/cp-kafka:7.6.1").with_kraft() as kafka,
        PostgresContainer("postgres:16", username="postgres", dbname="postgres") as postgres,
        RedisContainer("redis:7") as redis,
    ):
        host = postgres.get_container_host_ip()
        pg_port = postgres.get_exposed_port(5432)
        pg_url = f"postgresql://postgres:{postgres.password}@{host}:{pg_port}/postgres"
        redis_url = f"redis://{redis.get_container_host_ip()}:{redis.get_exposed_port(6379)}/0"
        yield kafka.get_bootstrap_server(), pg_url, redis_url


async def drop_database(server_url: str, name: str) -> None:
    conn = await asyncpg.connect(server_url)
    try:
        await conn.execute(f'drop database if exists "{name}" with (force)')
    finally:
        await conn.close()


async def delete_redis_prefix(redis_url: str, prefix: str) -> None:
    client = aioredis.Redis.from_url(redis_url)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}*", count=1000)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()
