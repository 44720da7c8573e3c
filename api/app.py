"""The read-only FastAPI. The lifespan owns the asyncpg pool and the Redis client."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from typing import Annotated, cast

import asyncpg
import redis.asyncio as aioredis
from fastapi import Depends, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from core.logging import get_logger
from core.settings import Settings, get_settings
from core.stack import resolve_urls

log = get_logger("api")


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    urls = resolve_urls(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.pool = await asyncpg.create_pool(
            urls.database_url, min_size=1, max_size=10, timeout=settings.connect_timeout_s
        )
        app.state.redis = aioredis.Redis.from_url(
            urls.redis_url, socket_connect_timeout=settings.connect_timeout_s
        )
        log.info("api.started", operation="lifespan")
        try:
            yield
        finally:
            await app.state.redis.aclose()
            await app.state.pool.close()

    app = FastAPI(title="Scoreline", version="0.1.0", lifespan=lifespan)

    @app.get("/health")
    async def health() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @app.get("/ready")
    async def ready(pool: PoolDep, redis: RedisDep) -> JSONResponse:
        """Readiness: Postgres and Redis both answer."""
        checks: dict[str, str] = {}
        try:
            async with pool.acquire(timeout=2) as conn:
                await conn.fetchval("select 1")
            checks["postgres"] = "ok"
        except (OSError, TimeoutError, asyncpg.PostgresError) as e:
            checks["postgres"] = f"down: {type(e).__name__}"
        try:
            await cast(Awaitable[bool], redis.ping())
            checks["redis"] = "ok"
        except (OSError, TimeoutError, aioredis.RedisError) as e:
            checks["redis"] = f"down: {type(e).__name__}"
        ok = all(value == "ok" for value in checks.values())
        return JSONResponse(
            {"status": "ok" if ok else "degraded", "checks": checks}, 200 if ok else 503
        )

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return app


def get_pool(request: Request) -> asyncpg.Pool:
    pool: asyncpg.Pool = request.app.state.pool
    return pool


def get_redis(request: Request) -> aioredis.Redis:
    client: aioredis.Redis = request.app.state.redis
    return client


PoolDep = Annotated[asyncpg.Pool, Depends(get_pool)]
RedisDep = Annotated[aioredis.Redis, Depends(get_redis)]
