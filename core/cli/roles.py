"""The runtime roles (``api``, ``worker``, ``sinks``, ``producers``), ``health`` and ``demo``."""

from __future__ import annotations

import asyncio
import gc
import signal
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import typer

from core.cli.output import table
from core.health import check_all
from core.logging import get_logger
from core.settings import Settings, get_settings
from core.stack import resolve_urls

if TYPE_CHECKING:
    from producers.markets import MarketPoller

log = get_logger("cli")

#: Collector thresholds of the stream and sink roles (CPython's default: 700, 10, 10).
#: These processes hold large, long-lived heaps (a match's entry index, the boards'
#: standings) and allocate a few objects per record; with the default, collections of
#: the older generations walk those heaps again and again. Measured: indexing and
#: ordering 200,000 guesses 2.9 s -> 1.9 s, about what it takes with the collector off.
GC_THRESHOLDS = (100_000, 50, 100)


def tune_gc() -> None:
    """Collect garbage less often in a role process (see GC_THRESHOLDS)."""
    gc.set_threshold(*GC_THRESHOLDS)


def health() -> None:
    """Check Kafka, Postgres and Redis; exit 1 if any is down."""
    checks = asyncio.run(check_all(get_settings()))
    table(
        "Health",
        ["service", "where", "state", "latency ms", "detail"],
        (
            (c.service, c.url, "ok" if c.ok else "DOWN", f"{c.latency_ms:.0f}", c.detail)
            for c in checks
        ),
    )
    if not all(c.ok for c in checks):
        raise typer.Exit(1)


def api(
    host: str = typer.Option(None, help="Bind address (default: API_HOST)."),
    port: int = typer.Option(None, help="Port (default: API_PORT)."),
) -> None:
    """Serve the read-only HTTP API."""
    import uvicorn

    from api.app import create_app

    settings = get_settings()
    uvicorn.run(
        create_app(settings),
        host=host or settings.api_host,
        port=port or settings.api_port,
        log_config=None,
    )


def worker() -> None:
    """Run the stream worker: the Faust app (exactly-once) and its agents."""
    from faust.worker import Worker
    from prometheus_client import start_http_server

    from streams.app import create_app

    settings = get_settings()
    tune_gc()
    start_http_server(settings.metrics_port, addr="0.0.0.0")  # noqa: S104 - container port
    app = create_app(settings)
    log.info("role.started", role="worker", app_id=app.conf.id)
    Worker(
        app, loglevel=settings.log_level.lower(), quiet=True, redirect_stdouts=False
    ).execute_from_commandline()


def boards() -> None:
    """Run the boards stage: ``scores`` in, absolute totals out on ``leaderboard.updates``."""
    from prometheus_client import start_http_server

    settings = get_settings()
    start_http_server(settings.metrics_port, addr="0.0.0.0")  # noqa: S104 - container port
    asyncio.run(_run_until_signalled("boards", _boards(settings)))


async def _boards(settings: Settings) -> Callable[[asyncio.Event], Awaitable[None]]:
    from sinks.liveness import group_lease_name, holding_lease
    from streams.boards import BoardsProcessor

    processor = BoardsProcessor(settings)

    async def run(stop: asyncio.Event) -> None:
        # The lease tells `scoreline offsets reset` the stage is running: it assigns its
        # partitions, so its group has no members Kafka could report (docs/operations.md).
        lease = group_lease_name(processor.group_id)
        async with holding_lease(resolve_urls(settings).database_url, lease, stop) as held:
            if held:
                await processor.run(stop)

    return run


SINKS = ("postgres", "markets", "redis")


def sinks(
    only: list[str] = typer.Option(
        [],
        "--only",
        help="Run only these sinks (repeatable: postgres, markets, redis); default all. "
        "Each sink keeps its own offsets, so they can run as separate processes.",
    ),
) -> None:
    """Run the Postgres sinks (the truth: predictions, markets) and the Redis sink (boards)."""
    from prometheus_client import start_http_server

    unknown = sorted(set(only) - set(SINKS))
    if unknown:
        raise typer.BadParameter(f"unknown sink {', '.join(unknown)}; known: {', '.join(SINKS)}")
    settings = get_settings()
    start_http_server(settings.metrics_port, addr="0.0.0.0")  # noqa: S104 - container port
    asyncio.run(_run_until_signalled("sinks", _sinks(settings, set(only or SINKS))))


async def _sinks(
    settings: Settings, chosen: set[str]
) -> Callable[[asyncio.Event], Awaitable[None]]:
    async def run(stop: asyncio.Event) -> None:
        from sinks.postgres import run_postgres_sink
        from sinks.postgres_markets import run_markets_sink
        from sinks.redis import run_redis_sink

        runs = {
            "postgres": run_postgres_sink,
            "markets": run_markets_sink,
            "redis": run_redis_sink,
        }
        await asyncio.gather(*(runs[name](settings, stop) for name in SINKS if name in chosen))

    return run


def producers(
    markets: bool = typer.Option(
        False, "--markets", help="Also run the market poller (MARKETS_PROVIDER_URL)."
    ),
) -> None:
    """Run the football poller against PROVIDER_URL (the replay provider by default)."""
    from prometheus_client import start_http_server

    settings = get_settings()
    start_http_server(settings.metrics_port, addr="0.0.0.0")  # noqa: S104 - container port
    asyncio.run(_run_until_signalled("producers", _poll(settings, markets=markets)))


async def _poll(
    settings: Settings, *, markets: bool = False
) -> Callable[[asyncio.Event], Awaitable[None]]:
    async def run(stop: asyncio.Event) -> None:
        import asyncpg
        import httpx

        from core.kafka import producer
        from producers.football import FootballPoller
        from schemas.codec import AvroCodec

        pool = await asyncpg.create_pool(
            resolve_urls(settings).database_url, min_size=1, max_size=4
        )
        out = producer(settings)
        await out.start()
        codec = AvroCodec.from_settings(settings)
        try:
            async with httpx.AsyncClient(base_url=settings.provider_url, timeout=10) as client:
                poller = FootballPoller(
                    client,
                    out,
                    codec,
                    pool,
                    tournament_id=settings.tournament_id,
                    season_id=settings.season_id,
                    prefix=settings.topic_prefix,
                    base_url=settings.provider_url,
                    live_interval_s=settings.live_interval_s,
                    round_interval_s=settings.round_interval_s,
                )
                runs = [poller.run(stop)]
                if markets:
                    runs.append(_market_poller(settings, client, out, codec, pool).run(stop))
                await asyncio.gather(*runs)
        finally:
            await out.stop()
            await pool.close()
            codec.close()

    return run


def _market_poller(
    settings: Settings, client: Any, out: Any, codec: Any, pool: Any
) -> MarketPoller:
    """The market poller of ``scoreline producers --markets`` (docs/providers.md)."""
    from producers.markets import MarketPoller

    return MarketPoller(
        client,
        out,
        codec,
        pool,
        base_url=settings.markets_provider_url or settings.provider_url,
        prefix=settings.topic_prefix,
        markets_interval_s=settings.markets_interval_s,
        prices_interval_s=settings.market_prices_interval_s,
        resolutions_interval_s=settings.market_resolutions_interval_s,
    )


async def _run_until_signalled(
    role: str, make: Awaitable[Callable[[asyncio.Event], Awaitable[None]]]
) -> None:
    """Run a role until SIGTERM or SIGINT sets its stop event."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    tune_gc()
    log.info("role.started", role=role)
    await (await make)(stop)
    log.info("role.stopped", role=role)


def register(app: typer.Typer) -> None:
    from core.cli.demo import demo
    from core.cli.game import provider, simulate

    for command in (health, demo, api, worker, boards, sinks, producers, provider, simulate):
        app.command()(command)
