"""The read-only FastAPI. The lifespan owns the asyncpg pool and the Redis client."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from typing import cast

import asyncpg
import redis.asyncio as aioredis
from fastapi import FastAPI, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.boards import RedisCircuit
from api.deps import PoolDep, RedisDep, get_pool, get_redis
from api.errors import install_error_handlers
from api.routes import boards_router, matches_router
from api.routes.markets import router as markets_router
from api.routes.members import router as members_router
from api.routes.page import router as page_router
from core.logging import get_logger
from core.settings import Settings, get_settings
from core.stack import resolve_urls

__all__ = ["PoolDep", "RedisDep", "create_app", "get_pool", "get_redis"]

log = get_logger("api")

REQUESTS = Counter(
    "scoreline_api_requests_total",
    "HTTP requests answered, by route and status.",
    ["route", "status"],
)
LATENCY = Histogram(
    "scoreline_api_request_duration_seconds",
    "Time to answer an HTTP request, by route.",
    ["route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)


class MetricsMiddleware:
    """Counts requests by route template (never the raw path: bounded labels) and status."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        started = time.perf_counter()
        try:
            await self.app(scope, receive, send_with_status)
        finally:
            route = str(getattr(scope.get("route"), "path", "unmatched"))
            REQUESTS.labels(route, str(status)).inc()
            LATENCY.labels(route).observe(time.perf_counter() - started)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    urls = resolve_urls(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.pool = await asyncpg.create_pool(
            urls.database_url, min_size=1, max_size=10, timeout=settings.connect_timeout_s
        )
        # A read API fails over to Postgres rather than waiting: no backoff, one retry
        # (a pooled connection gone stale), and a bound on every reply.
        app.state.redis = aioredis.Redis.from_url(
            urls.redis_url,
            socket_connect_timeout=settings.connect_timeout_s,
            socket_timeout=settings.connect_timeout_s,
            retry=Retry(NoBackoff(), retries=1),
        )
        log.info("api.started", operation="lifespan")
        try:
            yield
        finally:
            await app.state.redis.aclose()
            await app.state.pool.close()

    app = FastAPI(title="Scoreline", version="0.1.0", lifespan=lifespan)
    app.state.settings = settings
    app.state.redis_circuit = RedisCircuit()
    app.add_middleware(MetricsMiddleware)
    install_error_handlers(app)
    app.include_router(boards_router)
    app.include_router(matches_router)
    app.include_router(markets_router)
    app.include_router(members_router)
    app.include_router(page_router)

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
