"""The football poller against a real broker, real Postgres and a provider over real HTTP.

The provider is a tiny Starlette app served by uvicorn in a thread, speaking the provider
contract with strong ETags; each test scripts its answers. (It stands in for the project's
replay provider until the lead switches these tests to it.)
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from typing import Any

import asyncpg
import httpx
import pytest
import uvicorn
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from prometheus_client import REGISTRY
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from core.kafka import producer as kafka_producer
from core.settings import Settings
from core.stack.process import free_port
from core.topics import apply_topics
from producers.exceptions import CircuitOpenError, ProviderUnavailableError
from producers.football import FootballPoller
from producers.http import BreakerState, CircuitBreaker, RetryPolicy
from schemas.catalog import (
    DLQ_PRODUCERS,
    FIXTURES_MATCHES,
    RAW_FOOTBALL_EVENTS,
    RAW_FOOTBALL_ROUNDS,
    spec,
)
from schemas.codec import AvroCodec
from schemas.records import DeadLetter, MatchStatus, MatchUpdated
from tests.conftest import Services
from tests.support import eventually, unique, wait_for

KICKOFF = 1_790_000_000
SEASON_PATH = "/api/v1/unique-tournament/17/season/2026"
LIVE_PATH = "/api/v1/sport/football/events/live"
CODEC = AvroCodec()


def an_event(
    event_id: int, status: str = "notstarted", home: int = 0, away: int = 0, at: int = 0
) -> dict[str, Any]:
    code, kind = {
        "notstarted": (0, "notstarted"),
        "inprogress": (6, "inprogress"),
        "finished": (100, "finished"),
    }[status]
    score: Any = (lambda n: {}) if status == "notstarted" else (lambda n: {"current": n})
    return {
        "id": event_id,
        "tournament": {"id": 17, "name": "PL", "uniqueTournament": {"id": 17, "name": "PL"}},
        "season": {"id": 2026, "year": "26/27"},
        "roundInfo": {"round": 3},
        "homeTeam": {"id": event_id * 10, "name": f"Home {event_id}", "shortName": "HOM"},
        "awayTeam": {"id": event_id * 10 + 1, "name": f"Away {event_id}", "shortName": "AWA"},
        "status": {"code": code, "type": kind, "description": kind},
        "homeScore": score(home),
        "awayScore": score(away),
        "time": {"currentPeriodStartTimestamp": KICKOFF},
        "startTimestamp": KICKOFF,
        "changes": {"changes": [], "changeTimestamp": KICKOFF - 3600 + at},
    }


def events_body(*events: dict[str, Any]) -> bytes:
    """``{"events": [...]}`` with each event exactly ``json.dumps(event)``."""
    return b'{"events": [' + b", ".join(json.dumps(e).encode() for e in events) + b"]}"


class FakeProvider:
    """The provider contract over HTTP: bodies per path, strong ETags, scripted failures."""

    def __init__(self) -> None:
        self.bodies: dict[str, bytes] = {}
        self.failures: dict[str, int] = {}  # path -> status to answer instead
        self.hits: list[tuple[str, str | None]] = []  # (path, If-None-Match)
        self.url = ""

    def set_rounds(self, current: int, rounds: range) -> None:
        body = {"currentRound": {"round": current}, "rounds": [{"round": r} for r in rounds]}
        self.bodies[f"{SEASON_PATH}/rounds"] = json.dumps(body).encode()

    def set_round(self, number: int, *events: dict[str, Any]) -> None:
        self.bodies[f"{SEASON_PATH}/events/round/{number}"] = events_body(*events)

    def set_live(self, *events: dict[str, Any]) -> None:
        self.bodies[LIVE_PATH] = events_body(*events)

    def set_event(self, event: dict[str, Any]) -> None:
        self.bodies[f"/api/v1/event/{event['id']}"] = json.dumps({"event": event}).encode()

    def count(self, path: str) -> int:
        return sum(1 for p, _ in self.hits if p == path)

    async def handle(self, request: Request) -> Response:
        path = request.url.path
        self.hits.append((path, request.headers.get("if-none-match")))
        if path in self.failures:
            return Response(b"upstream down", status_code=self.failures[path])
        body = self.bodies.get(path)
        if body is None:
            return Response(b'{"error": "not found"}', status_code=404)
        etag = f'"{hashlib.sha256(body).hexdigest()[:20]}"'
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers={"ETag": etag})
        return Response(body, media_type="application/json", headers={"ETag": etag})


@pytest.fixture
def provider() -> Iterator[FakeProvider]:
    fake = FakeProvider()
    app = Starlette(routes=[Route("/{path:path}", fake.handle)])
    port = free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        loop="asyncio",
        http="h11",
        ws="none",
        lifespan="off",
        log_level="warning",
        access_log=False,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="fake-provider", daemon=True)
    thread.start()
    wait_for(lambda: server.started, timeout=10, what="fake provider started")
    fake.url = f"http://127.0.0.1:{port}"
    try:
        yield fake
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
async def kafka(services: Services, topic_prefix: str) -> str:
    admin = AIOKafkaAdminClient(bootstrap_servers=services.kafka, request_timeout_ms=15000)
    await admin.start()
    try:
        await apply_topics(admin, prefix=topic_prefix)
    finally:
        await admin.close()
    return services.kafka


@pytest.fixture
async def producer(kafka: str, settings: Settings) -> AsyncIterator[Any]:
    client = kafka_producer(settings)
    await client.start()
    yield client
    await client.stop()


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    created = await asyncpg.create_pool(database_url, min_size=1, max_size=4)
    yield created
    await created.close()


class Harness:
    """Makes pollers (each with its own HTTP client) and reads back what they wrote."""

    def __init__(
        self, provider: FakeProvider, producer: Any, pool: asyncpg.Pool, kafka: str, prefix: str
    ) -> None:
        self.provider = provider
        self.producer = producer
        self.pool = pool
        self.kafka = kafka
        self.prefix = prefix
        self.name = unique("sofa-")  # the module's database is shared: one provider per test
        self.clients: list[httpx.AsyncClient] = []

    def poller(self, **overrides: Any) -> FootballPoller:
        client = httpx.AsyncClient(base_url=self.provider.url, timeout=5.0)
        self.clients.append(client)
        options: dict[str, Any] = {
            "tournament_id": 17,
            "season_id": 2026,
            "prefix": self.prefix,
            "provider": self.name,
            "retry": RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.05),
        }
        options.update(overrides)
        return FootballPoller(client, self.producer, CODEC, self.pool, **options)

    async def read(self, logical: str) -> list[Any]:
        """Every record of the topic up to its end now, read with read_committed."""
        name = self.prefix + logical
        partitions = [TopicPartition(name, p) for p in range(spec(logical).partitions)]
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.kafka,
            isolation_level="read_committed",
            enable_auto_commit=False,
            group_id=None,
        )
        await consumer.start()
        try:
            consumer.assign(partitions)
            await consumer.seek_to_beginning(*partitions)
            end = await consumer.end_offsets(partitions)
            records: list[Any] = []

            async def caught_up() -> bool:
                batches = await consumer.getmany(*partitions, timeout_ms=100)
                for batch in batches.values():
                    records.extend(batch)
                return all([await consumer.position(tp) >= end[tp] for tp in partitions])

            done: bool = await eventually(caught_up, timeout=20, what=f"{name} read to its end")
            assert done
        finally:
            await consumer.stop()  # the embedded broker makes idle consumers spin
        return records

    async def matches(self) -> list[MatchUpdated]:
        updates: list[MatchUpdated] = []
        for record in await self.read(FIXTURES_MATCHES):
            update = CODEC.decode(record.value)
            assert isinstance(update, MatchUpdated)
            updates.append(update)
        return sorted(updates, key=lambda u: (u.match_id, u.provider_version))

    async def executions(self) -> list[tuple[str, str, int, int, str | None]]:
        rows = await self.pool.fetch(
            "select feed, status::text, fetched_count, published_count, error "
            "from poll_executions where provider = $1 order by queued_at",
            self.name,
        )
        return [tuple(row.values()) for row in rows]

    async def close(self) -> None:
        for client in self.clients:
            await client.aclose()


@pytest.fixture
async def harness(
    provider: FakeProvider, producer: Any, pool: asyncpg.Pool, kafka: str, topic_prefix: str
) -> AsyncIterator[Harness]:
    made = Harness(provider, producer, pool, kafka, topic_prefix)
    yield made
    await made.close()


def state_of(breaker: CircuitBreaker) -> BreakerState:
    return breaker.state  # a call, so mypy does not narrow the property between checks


def headers_of(record: Any) -> dict[str, str]:
    return {name: value.decode() for name, value in record.headers}


async def test_a_change_publishes_one_match_updated_and_an_unchanged_payload_nothing(
    harness: Harness, provider: FakeProvider
) -> None:
    provider.set_rounds(3, range(1, 6))
    provider.set_round(3, an_event(1001), an_event(1002))
    provider.set_round(4, an_event(1003))
    poller = harness.poller()

    first = await poller.poll_rounds()
    assert (first.fetched, first.published, first.not_modified) == (3, 3, 0)
    assert [u.match_id for u in await harness.matches()] == ["1001", "1002", "1003"]
    raw = await harness.read(RAW_FOOTBALL_ROUNDS)
    assert [r.key for r in sorted(raw, key=lambda r: r.key)] == [
        b"round:17:2026:3",
        b"round:17:2026:4",
        b"rounds:17:2026",
    ]
    for record in raw:
        headers = headers_of(record)
        assert record.value == provider.bodies[httpx.URL(headers["url"]).path], "byte for byte"
        assert headers["provider"] == harness.name
        assert headers["content_sha256"] == hashlib.sha256(record.value).hexdigest()
        assert headers["poll_execution_id"] == str(first.execution_id)
        assert datetime.fromisoformat(headers["fetched_at"]).utcoffset() is not None

    unchanged = await poller.poll_rounds()
    assert (unchanged.not_modified, unchanged.published, unchanged.fetched) == (3, 0, 0)
    assert len(await harness.read(RAW_FOOTBALL_ROUNDS)) == 3, "a 304 publishes nothing"

    provider.set_round(3, an_event(1001, "inprogress", home=1, at=4000), an_event(1002))
    changed = await poller.poll_rounds()
    assert (changed.fetched, changed.published, changed.not_modified) == (2, 1, 2)
    updates = await harness.matches()
    assert len(updates) == 4
    goal = updates[1]
    assert (goal.match_id, goal.status, goal.home_score, goal.minute) == (
        "1001",
        MatchStatus.INPROGRESS,
        1,
        7,
    )

    noise = an_event(1002)
    noise["homeTeam"]["shortName"] = "H2"  # not something MatchUpdated carries
    provider.set_round(3, an_event(1001, "inprogress", home=1, at=4000), noise)
    cosmetic = await poller.poll_rounds()
    assert (cosmetic.fetched, cosmetic.published) == (2, 0)
    assert len(await harness.read(RAW_FOOTBALL_ROUNDS)) == 5, "the new body is still raw"
    assert len(await harness.matches()) == 4

    assert await harness.executions() == [
        ("rounds", "completed", 3, 3, None),
        ("rounds", "completed", 0, 0, None),
        ("rounds", "completed", 2, 1, None),
        ("rounds", "completed", 2, 0, None),
    ]


async def test_a_duplicate_payload_after_a_restart_publishes_nothing(
    harness: Harness, provider: FakeProvider
) -> None:
    provider.set_live(an_event(7, "inprogress", 1, 0, at=4000), an_event(8, "inprogress"))
    assert (await harness.poller().poll_live()).published == 2

    restarted = harness.poller()  # a new process: no ETags, state only in Postgres
    again = await restarted.poll_live()
    assert provider.hits[-1] == (LIVE_PATH, None), "nothing remembered: a full GET"
    assert (again.fetched, again.published, again.not_modified) == (2, 0, 0)
    assert len(await harness.read(RAW_FOOTBALL_EVENTS)) == 2
    assert len(await harness.matches()) == 2
    assert [row[1] for row in await harness.executions()] == ["completed", "completed"]


async def test_a_corrected_final_score_publishes_result_version_2(
    harness: Harness, provider: FakeProvider
) -> None:
    poller = harness.poller()
    provider.set_live(an_event(21, "finished", home=2, away=1, at=7000))
    assert (await poller.poll_live()).published == 1

    provider.set_event(an_event(21, "finished", home=2, away=2, at=9000))
    corrected = await poller.poll_event(21)
    assert corrected.published == 1
    assert (await poller.poll_event(21)).not_modified == 1
    provider.set_live(an_event(21, "finished", home=2, away=1, at=7000))  # a stale copy
    assert (await harness.poller().poll_live()).published == 0

    updates = await harness.matches()
    assert [(u.status, u.home_score, u.away_score, u.result_version) for u in updates] == [
        (MatchStatus.FINISHED, 2, 1, 1),
        (MatchStatus.FINISHED, 2, 2, 2),
    ]
    events_raw = await harness.read(RAW_FOOTBALL_EVENTS)
    assert sorted(r.key for r in events_raw) == [b"21", b"live:football", b"live:football"]


async def test_a_malformed_event_goes_to_the_dlq_and_the_others_publish(
    harness: Harness, provider: FakeProvider
) -> None:
    bad = an_event(32)
    del bad["homeTeam"]["id"]
    provider.set_rounds(3, range(1, 4))  # the last round: no next one to poll
    provider.set_round(3, an_event(31), bad, an_event(33))
    provider.bodies[LIVE_PATH] = b"<html>502 Bad Gateway</html>"  # a 200 that is not JSON
    poller = harness.poller()

    rounds = await poller.poll_rounds()
    live = await poller.poll_live()
    assert (rounds.fetched, rounds.published, rounds.dead_lettered) == (3, 2, 1)
    assert (live.fetched, live.published, live.dead_lettered) == (0, 0, 1)
    assert [u.match_id for u in await harness.matches()] == ["31", "33"]

    letters = {r.key: r for r in await harness.read(DLQ_PRODUCERS)}
    assert set(letters) == {b"32", b"live:football"}
    event_letter = letters[b"32"]
    assert event_letter.value == json.dumps(bad).encode(), "the event's original bytes"
    dead = DeadLetter.from_headers(event_letter.headers)
    assert dead.error_class == "producers.exceptions.MalformedPayloadError"
    assert dead.error_message.startswith("event.homeTeam.id: expected a non-negative integer")
    assert dead.attempts == 1
    raw_round = next(
        r for r in await harness.read(RAW_FOOTBALL_ROUNDS) if r.key == b"round:17:2026:3"
    )
    assert (dead.source_topic, dead.source_partition, dead.source_offset) == (
        harness.prefix + RAW_FOOTBALL_ROUNDS,
        raw_round.partition,
        raw_round.offset,
    )
    headers = headers_of(event_letter)
    assert headers["source_url"] == f"{provider.url}{SEASON_PATH}/events/round/3"
    assert headers["poll_execution_id"] == str(rounds.execution_id)

    body_letter = letters[b"live:football"]
    assert body_letter.value == b"<html>502 Bad Gateway</html>"
    assert DeadLetter.from_headers(body_letter.headers).error_message.startswith("body: not JSON")

    assert (await poller.poll_rounds()).not_modified == 2
    assert (await poller.poll_live()).not_modified == 1
    assert len(await harness.read(DLQ_PRODUCERS)) == 2, "a bad payload is dead-lettered once"
    assert [row[1] for row in await harness.executions()] == ["completed"] * 4


async def test_5xx_are_retried_then_the_circuit_opens_and_heals(
    harness: Harness, provider: FakeProvider
) -> None:
    now = [0.0]
    breaker = CircuitBreaker(
        failure_threshold=4, reset_timeout=30.0, clock=lambda: now[0], name=harness.name
    )
    poller = harness.poller(breaker=breaker)
    provider.failures[LIVE_PATH] = 503
    retries_before = REGISTRY.get_sample_value(
        "scoreline_poller_http_retries_total", {"circuit": harness.name}
    )

    with pytest.raises(ProviderUnavailableError, match="failed 3 time"):
        await poller.poll_live()
    assert provider.count(LIVE_PATH) == 3
    assert state_of(breaker) is BreakerState.CLOSED
    with pytest.raises(ProviderUnavailableError, match="circuit now open"):
        await poller.poll_live()
    assert provider.count(LIVE_PATH) == 4 and state_of(breaker) is BreakerState.OPEN
    with pytest.raises(CircuitOpenError):
        await poller.poll_live()
    assert provider.count(LIVE_PATH) == 4, "an open circuit sends nothing"
    retries = REGISTRY.get_sample_value(
        "scoreline_poller_http_retries_total", {"circuit": harness.name}
    )
    assert (retries or 0) - (retries_before or 0) == 2
    assert (
        REGISTRY.get_sample_value("scoreline_poller_circuit_state", {"circuit": harness.name}) == 2
    )

    del provider.failures[LIVE_PATH]
    provider.set_live(an_event(41, "inprogress", 0, 1, at=4000))
    now[0] += 30.0
    healed = await poller.poll_live()
    assert healed.published == 1 and state_of(breaker) is BreakerState.CLOSED

    executions = await harness.executions()
    assert [row[:2] for row in executions] == [("live", "failed")] * 3 + [("live", "completed")]
    assert "ProviderUnavailableError" in (executions[0][4] or "")
    assert "CircuitOpenError" in (executions[2][4] or "")


async def test_run_polls_both_feeds_until_stopped(harness: Harness, provider: FakeProvider) -> None:
    provider.set_rounds(3, range(1, 5))
    provider.set_round(3, an_event(51))
    provider.set_round(4, an_event(52))
    provider.set_live(an_event(53, "inprogress", at=4000))
    poller = harness.poller(round_interval_s=0.2, live_interval_s=0.05)
    stop = asyncio.Event()
    task = asyncio.create_task(poller.run(stop))
    try:
        await eventually(lambda: provider.count(LIVE_PATH) >= 3, timeout=15, what="live polls")
        await eventually(
            lambda: provider.count(f"{SEASON_PATH}/rounds") >= 2, timeout=15, what="round polls"
        )
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=15)
    assert sorted(u.match_id for u in await harness.matches()) == ["51", "52", "53"]
    statuses = {row[1] for row in await harness.executions()}
    assert statuses == {"completed"}, "no run left in progress"
