"""The replay provider: a simulated season served over HTTP in a SofaScore-like shape.

Pollers are tested against it over real HTTP (DESIGN.md: mocks only for the outside
world, and the outside world is this). Every JSON body carries a strong ``ETag`` (the
sha256 of the body) and ``Cache-Control: max-age``; ``If-None-Match`` with a current tag
answers 304. :class:`Faults` injects HTTP 500s and malformed payloads. The contract is in
docs/providers.md.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from types import TracebackType
from typing import Any, Self

import httpx
import uvicorn
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp

from core.logging import get_logger
from producers.clock import Clock, SimClock
from producers.market_season import MarketSeason
from producers.season import MatchPlan, Season, default_season, event_at

__all__ = [
    "MAX_AGE",
    "Faults",
    "Malformation",
    "ReplayServer",
    "create_replay_app",
    "run_replay_provider",
]

API = "/api/v1"
#: ``Cache-Control: max-age`` (seconds) per feed.
MAX_AGE: Mapping[str, int] = {"rounds": 60, "round": 15, "event": 5, "live": 5}


class Malformation(StrEnum):
    """How a malformed event is broken."""

    SCORE_AS_STRING = "score_as_string"  # "homeScore": "2" instead of an object
    MISSING_STATUS = "missing_status"  # no "status" key
    NOT_JSON = "not_json"  # the whole body is cut in half: not JSON at all


@dataclass
class Faults:
    """Faults to inject (tests): 500s at ``error_rate``, malformed events, failing bursts.

    Whether the n-th API request fails is a function of ``(seed, n)``, so a run with the
    same requests in the same order fails the same ones. ``/health`` is never faulted.
    """

    error_rate: float = 0.0
    seed: int = 0
    malformed: Mapping[int, Malformation] = field(default_factory=dict)
    requests: int = field(default=0, init=False)
    errors_served: int = field(default=0, init=False)
    _fail_next: int = field(default=0, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    @classmethod
    def malformed_events(
        cls, event_ids: Iterable[int], kind: Malformation = Malformation.SCORE_AS_STRING
    ) -> Faults:
        return cls(malformed=dict.fromkeys(event_ids, kind))

    def fail_next(self, n: int) -> None:
        """Answer the next ``n`` API requests with 500, whatever the rate."""
        with self._lock:
            self._fail_next = n

    def should_fail(self) -> bool:
        """Count one API request; True when it must be answered with a 500."""
        with self._lock:
            self.requests += 1
            fail = self._fail_next > 0 or _fraction(self.seed, self.requests) < self.error_rate
            self._fail_next = max(0, self._fail_next - 1)
            self.errors_served += int(fail)
            return fail


def _fraction(seed: int, n: int) -> float:
    digest = hashlib.sha256(f"{seed}:{n}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _malform(event: dict[str, Any], kind: Malformation | None) -> dict[str, Any]:
    if kind is Malformation.SCORE_AS_STRING:
        return {**event, "homeScore": str(event["homeScore"].get("current", ""))}
    if kind is Malformation.MISSING_STATUS:
        return {k: v for k, v in event.items() if k != "status"}
    return event


def _body(document: Mapping[str, Any], broken: bool = False) -> bytes:
    data = json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()
    return data[: len(data) // 2] if broken else data


def _etag_matches(header: str | None, etag: str) -> bool:
    """RFC 9110 ``If-None-Match``: ``*`` or a list of tags, compared weakly."""
    if header is None:
        return False
    if header.strip() == "*":
        return True
    return any(tag.strip().removeprefix("W/") == etag for tag in header.split(","))


def _error(code: int, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=code)


def create_replay_app(
    season: Season,
    clock: Clock,
    *,
    faults: Faults | None = None,
    markets: MarketSeason | None = None,
) -> FastAPI:
    """The provider's HTTP API over ``season`` (and ``markets``), at the time ``clock`` says."""
    app = FastAPI(title="Scoreline replay provider", docs_url=None, redoc_url=None)
    log = get_logger("replay", tournament_id=season.tournament_id, season_id=season.season_id)
    injected = faults or Faults()

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> Response:
        return _error(exc.status_code, str(exc.detail))

    @app.middleware("http")
    async def faults_and_logging(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        started = time.perf_counter()
        path = request.url.path
        if path.startswith(API) and injected.should_fail():
            response: Response = _error(500, "injected fault")
            log.warning("replay.fault", method=request.method, path=path, status=500)
            return response
        response = await call_next(request)
        log.debug(
            "replay.request",
            method=request.method,
            path=path,
            status=response.status_code,
            ms=round((time.perf_counter() - started) * 1000, 2),
        )
        return response

    def respond(
        request: Request, events: Iterable[MatchPlan], shape: str, **extra: Any
    ) -> Response:
        now = clock.now()
        rendered = [(plan.id, event_at(plan, now)) for plan in events]
        kinds = [injected.malformed.get(event_id) for event_id, _ in rendered]
        items = [_malform(event, kind) for (_, event), kind in zip(rendered, kinds, strict=True)]
        document: dict[str, Any] = {"event": items[0]} if shape == "event" else {"events": items}
        body = _body({**document, **extra}, broken=Malformation.NOT_JSON in kinds)
        return cached(request, body, MAX_AGE[shape])

    def cached(request: Request, body: bytes, max_age: int) -> Response:
        etag = f'"{hashlib.sha256(body).hexdigest()}"'
        headers = {"ETag": etag, "Cache-Control": f"max-age={max_age}"}
        if _etag_matches(request.headers.get("if-none-match"), etag):
            return Response(status_code=304, headers=headers)
        return Response(body, media_type="application/json", headers=headers)

    def check_season(tournament_id: str, season_id: str) -> None:
        if (tournament_id, season_id) != (season.tournament_id, season.season_id):
            raise HTTPException(404, f"no season {season_id} of tournament {tournament_id}")

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(API + "/unique-tournament/{tournament_id}/season/{season_id}/rounds")
    async def rounds(tournament_id: str, season_id: str, request: Request) -> Response:
        check_season(tournament_id, season_id)
        document = {
            "currentRound": {"round": season.current_round(clock.now())},
            "rounds": [{"round": r} for r in season.rounds],
        }
        return cached(request, _body(document), MAX_AGE["rounds"])

    @app.get(API + "/unique-tournament/{tournament_id}/season/{season_id}/events/round/{round_}")
    async def round_events(
        tournament_id: str, season_id: str, round_: str, request: Request
    ) -> Response:
        check_season(tournament_id, season_id)
        if not round_.isdigit() or int(round_) not in season.rounds:
            raise HTTPException(404, f"no round {round_}")
        return respond(request, season.round_matches(int(round_)), "round")

    @app.get(API + "/event/{event_id}")
    async def event(event_id: str, request: Request) -> Response:
        plan = season.match(int(event_id)) if event_id.isdigit() else None
        if plan is None:
            raise HTTPException(404, f"no event {event_id}")
        return respond(request, [plan], "event")

    @app.get(API + "/sport/football/events/live")
    async def live(request: Request) -> Response:
        return respond(request, season.live(clock.now()), "live")

    if markets is not None:
        from producers.market_feed import mount_market_feeds  # it imports this module

        mount_market_feeds(app, markets, clock, faults=injected)
    return app


class ReplayServer:
    """Serve an ASGI app with uvicorn on 127.0.0.1 in a background thread.

    ``with ReplayServer(app) as server:`` (or ``async with``) starts it on a free port,
    waits until ``/health`` answers (``startup_timeout``), and stops it on exit.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        startup_timeout: float = 10.0,
        shutdown_timeout: float = 10.0,
    ) -> None:
        self._app = app
        self._host = host
        self._port = port
        self._startup_timeout = startup_timeout
        self._shutdown_timeout = shutdown_timeout
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("the replay server is not running")
        return f"http://{self._host}:{self._port}"

    def start(self) -> Self:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self._host, self._port))
        self._port = sock.getsockname()[1]
        config = uvicorn.Config(
            self._app,
            log_config=None,
            access_log=False,
            lifespan="off",
            ws="none",
            timeout_graceful_shutdown=int(self._shutdown_timeout),
        )
        self._server = server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._run, args=(server, sock), name=f"replay-{self._port}", daemon=True
        )
        self._thread.start()
        try:
            self._wait_until_ready()
        except BaseException:
            self.stop()
            raise
        get_logger("replay").info("replay.started", base_url=self.base_url)
        return self

    def _run(self, server: uvicorn.Server, sock: socket.socket) -> None:
        try:
            server.run(sockets=[sock])
        except BaseException as e:  # surfaced by start(); a thread must not die silently
            self._error = e
        finally:
            sock.close()

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + self._startup_timeout
        last = "not started"
        with httpx.Client(timeout=1.0) as client:
            while time.monotonic() < deadline:
                if self._error is not None or not (self._thread and self._thread.is_alive()):
                    raise RuntimeError(f"replay server died on start: {self._error!r}")
                try:
                    if client.get(f"{self.base_url}/health").status_code == 200:
                        return
                except httpx.TransportError as e:
                    last = repr(e)
                time.sleep(0.02)
        raise TimeoutError(f"replay server not answering within {self._startup_timeout}s: {last}")

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        server.should_exit = True
        thread.join(self._shutdown_timeout)
        if thread.is_alive():
            server.force_exit = True
            thread.join(self._shutdown_timeout)
        self._server = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        return await asyncio.to_thread(self.start)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await asyncio.to_thread(self.stop)


def run_replay_provider(
    seed: int,
    speed: float,
    port: int,
    *,
    host: str = "127.0.0.1",
    sim_start: datetime | None = None,
    first_kickoff: datetime | None = None,
    season: Season | None = None,
    faults: Faults | None = None,
    markets: MarketSeason | None = None,
) -> None:
    """Serve a season until interrupted (``scoreline provider``); blocks.

    Sim time starts at ``sim_start`` (default: now) and runs ``speed`` times faster than
    real time. The season is ``season``, or :func:`default_season` of ``seed`` with its
    first kick-off at ``first_kickoff`` (default: five sim-minutes after ``sim_start``).
    A simulator that must publish guesses for the same season generates it with the same
    seed and ``first_kickoff``.
    """
    start = sim_start or datetime.now(UTC)
    if season is None:
        kickoff = first_kickoff or start + timedelta(minutes=5)
        season = default_season(seed, first_kickoff=kickoff)
    app = create_replay_app(season, SimClock(start, speed), faults=faults, markets=markets)
    config = uvicorn.Config(
        app, host=host, port=port, log_config=None, access_log=False, lifespan="off", ws="none"
    )
    get_logger("replay").info(
        "replay.serving", url=f"http://{host}:{port}", seed=seed, speed=speed, sim_start=str(start)
    )
    uvicorn.Server(config).run()
