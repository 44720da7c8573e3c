"""Orchestration of the embedded stack, with its state in ``.scoreline/stack.json``."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

from core.exceptions import ServiceUnreachableError, StackError
from core.logging import get_logger
from core.settings import Settings, mask_url
from core.stack.broker import EmbeddedBroker, kafka_answers_async
from core.stack.postgres import EmbeddedPostgres, check_postgres, ensure_database
from core.stack.process import pid_alive, port_open, stop_pid
from core.stack.redis import EmbeddedRedis, check_redis

log = get_logger("stack")

Origin = Literal["configured", "machine", "embedded"]
SERVICES = ("kafka", "postgres", "redis")


@dataclass(frozen=True, slots=True)
class ServiceUrls:
    """Where each service answers, after the environment and the embedded defaults."""

    kafka_bootstrap_servers: str
    database_url: str
    redis_url: str
    schema_registry_url: str | None


def resolve_urls(settings: Settings) -> ServiceUrls:
    """The configured URL of each service, else its embedded default."""
    return ServiceUrls(
        kafka_bootstrap_servers=settings.kafka_bootstrap_servers
        or f"127.0.0.1:{settings.kafka_port}",
        database_url=settings.database_url.get_secret_value()
        if settings.database_url
        else f"postgresql://postgres@127.0.0.1:{settings.postgres_port}/{settings.database_name}",
        redis_url=settings.redis_url.get_secret_value()
        if settings.redis_url
        else f"redis://127.0.0.1:{settings.redis_port}/0",
        schema_registry_url=settings.schema_registry_url.get_secret_value()
        if settings.schema_registry_url
        else None,
    )


@dataclass(slots=True)
class ServiceStatus:
    """One line of ``scoreline stack status``."""

    name: str
    url: str  # masked
    origin: Origin
    running: bool
    pid: int | None = None
    detail: str = ""


@dataclass(slots=True)
class _State:
    pids: dict[str, int] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> _State:
        if not path.exists():
            return cls()
        try:
            raw = json.loads(path.read_text())
            return cls(pids={str(k): int(v) for k, v in raw.get("pids", {}).items()})
        except (ValueError, TypeError, AttributeError) as e:
            raise StackError(f"{path} is not a stack state file ({e}); remove it") from e

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2, sort_keys=True))
        tmp.replace(path)


class Stack:
    """Bring the services up, report on them, and stop only what we started."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.urls = resolve_urls(settings)
        self.home = settings.home.resolve()
        self.broker = EmbeddedBroker(settings.kafka_port, self.home / "kafka" / "data")
        self.postgres = EmbeddedPostgres(settings.postgres_port, self.home / "postgres" / "data")
        self.redis = EmbeddedRedis(settings.redis_port, self.home / "redis" / "data")

    # -- state ----------------------------------------------------------------------
    def _state(self) -> _State:
        return _State.load(self.settings.stack_file)

    def track(self, name: str, pid: int) -> None:
        """Record a process we started, so ``down`` stops it."""
        state = self._state()
        state.pids[name] = pid
        state.save(self.settings.stack_file)

    def untrack(self, name: str) -> None:
        state = self._state()
        state.pids.pop(name, None)
        state.save(self.settings.stack_file)

    def owned_pid(self, name: str) -> int | None:
        pid = self._state().pids.get(name)
        return pid if pid_alive(pid) else None

    # -- up -------------------------------------------------------------------------
    def up(self) -> list[ServiceStatus]:
        """Check configured services first (fail fast), then find or start the others."""
        timeout = self.settings.connect_timeout_s
        if self.settings.database_url:
            asyncio.run(check_postgres(self.urls.database_url, timeout))
        if self.settings.redis_url:
            asyncio.run(check_redis(self.urls.redis_url, timeout))
        if self.settings.kafka_bootstrap_servers:
            self._check_kafka(self.urls.kafka_bootstrap_servers)
        if not self.settings.database_url:
            self._up_postgres()
        if not self.settings.redis_url:
            self._up_redis()
        if not self.settings.kafka_bootstrap_servers:
            self._up_kafka()
        return self.status()

    def _check_kafka(self, bootstrap: str) -> None:
        if not asyncio.run(kafka_answers_async(bootstrap, self.settings.connect_timeout_s)):
            raise ServiceUnreachableError(
                "Kafka",
                bootstrap,
                "no broker answered a metadata request",
                "Start it, fix KAFKA_BOOTSTRAP_SERVERS, or unset it to use the embedded broker",
            )

    def _start(self, name: str, start: int) -> None:
        self.track(name, start)
        log.info("stack.started", service=name, pid=start)

    def _up_postgres(self) -> None:
        pg = self.postgres
        if not self.owned_pid("postgres") and not port_open(pg.host, pg.port):
            self._start("postgres", pg.start(self.settings.startup_timeout_s))
        server = pg.url("postgres")
        asyncio.run(
            _retry_until_ready(lambda: check_postgres(server, 2.0), self.settings.startup_timeout_s)
        )
        asyncio.run(ensure_database(server, self.settings.database_name, 5.0))

    def _up_redis(self) -> None:
        rd = self.redis
        if not self.owned_pid("redis") and not port_open(rd.host, rd.port):
            self._start("redis", rd.start(self.settings.startup_timeout_s))
        asyncio.run(
            _retry_until_ready(lambda: check_redis(rd.url, 2.0), self.settings.startup_timeout_s)
        )

    def _up_kafka(self) -> None:
        br = self.broker
        if not self.owned_pid("kafka"):
            if port_open(br.host, br.port):
                # Something else holds the port: use it only if it speaks Kafka.
                self._check_kafka(br.bootstrap_servers)
                return
            self._start("kafka", br.start(self.settings.startup_timeout_s))

    # -- status -----------------------------------------------------------------------
    def status(self) -> list[ServiceStatus]:
        return [self._status_of(name) for name in SERVICES] + self._role_statuses()

    def _origin(self, name: str, running: bool) -> Origin:
        """configured by URL; embedded (ours, or ours to start); machine (answers, not ours)."""
        configured = {
            "kafka": self.settings.kafka_bootstrap_servers,
            "postgres": self.settings.database_url,
            "redis": self.settings.redis_url,
        }[name]
        if configured:
            return "configured"
        if self.owned_pid(name) or not running:
            return "embedded"
        return "machine"

    def _status_of(self, name: str) -> ServiceStatus:
        url = {
            "kafka": self.urls.kafka_bootstrap_servers,
            "postgres": self.urls.database_url,
            "redis": self.urls.redis_url,
        }[name]
        timeout = self.settings.connect_timeout_s
        running, detail = True, "answers"
        try:
            if name == "kafka":
                running = asyncio.run(kafka_answers_async(url, timeout))
                detail = "answers metadata" if running else "no answer"
            elif name == "postgres":
                asyncio.run(check_postgres(url, timeout))
            else:
                asyncio.run(check_redis(url, timeout))
        except ServiceUnreachableError as e:
            running, detail = False, e.reason
        return ServiceStatus(
            name, mask_url(url), self._origin(name, running), running, self.owned_pid(name), detail
        )

    def _role_statuses(self) -> list[ServiceStatus]:
        roles = {k: v for k, v in self._state().pids.items() if k not in SERVICES}
        return [
            ServiceStatus(name, "-", "embedded", pid_alive(pid), pid, "role process")
            for name, pid in sorted(roles.items())
        ]

    # -- down -------------------------------------------------------------------------
    def down(self) -> list[str]:
        """Stop what ``up`` (or the demo) started, roles first; return what was stopped."""
        state = self._state()
        order = [n for n in state.pids if n not in SERVICES] + ["kafka", "redis", "postgres"]
        stopped: list[str] = []
        for name in order:
            pid = state.pids.get(name)
            if pid is None:
                continue
            # Postgres: SIGINT is its "fast shutdown"; SIGTERM would wait for clients.
            sig = signal.SIGINT if name == "postgres" else signal.SIGTERM
            if not stop_pid(pid, timeout=15.0, sig=sig):
                raise StackError(f"could not stop {name} (pid {pid}); stop it by hand")
            state.pids.pop(name)
            state.save(self.settings.stack_file)
            stopped.append(f"{name} (pid {pid})")
            log.info("stack.stopped", service=name, pid=pid)
        return stopped


async def _retry_until_ready(check: Callable[[], Awaitable[None]], timeout: float) -> None:
    """Call an async check until it stops raising ServiceUnreachableError, or re-raise."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            await check()
            return
        except ServiceUnreachableError:
            if time.monotonic() >= deadline:
                raise
            await asyncio.sleep(0.2)
