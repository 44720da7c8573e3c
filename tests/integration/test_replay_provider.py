"""The replay provider over real HTTP, and the simulator publishing to a real broker."""

from __future__ import annotations

import hashlib
import json
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import httpx
import pytest
from aiokafka.admin import AIOKafkaAdminClient

from core.kafka import consumer as kafka_consumer
from core.settings import Settings
from core.topics import apply_topics
from producers.clock import ManualClock
from producers.replay import Faults, Malformation, ReplayServer, create_replay_app
from producers.season import LIVE_WINDOW, Correction, Season, epoch_seconds, event_at
from producers.simulator import generate_entries, publish_simulation
from schemas.catalog import ENTRIES_PREDICTIONS, RULES, topic
from schemas.codec import AvroCodec
from schemas.records import PredictionPlaced
from tests.builders import KICKOFF, a_match_plan, a_season
from tests.conftest import Services
from tests.support import eventually, unique

ROUNDS = "/api/v1/unique-tournament/17/season/2026/rounds"
ROUND = "/api/v1/unique-tournament/17/season/2026/events/round/{}"
EVENT = "/api/v1/event/{}"
LIVE = "/api/v1/sport/football/events/live"
MIN = timedelta(minutes=1)


@contextmanager
def serve(
    season: Season, clock: ManualClock, faults: Faults | None = None
) -> Iterator[httpx.Client]:
    """The provider on a free port, and a client for it."""
    app = create_replay_app(season, clock, faults=faults)
    with ReplayServer(app) as server, httpx.Client(base_url=server.base_url) as client:
        yield client


@pytest.fixture
def season() -> Season:
    return a_season(kickoff_spread=timedelta(0), corrections_at_least=0)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(KICKOFF - timedelta(hours=1))


def test_rounds_and_the_events_of_a_round(season: Season, clock: ManualClock) -> None:
    with serve(season, clock) as client:
        rounds = client.get(ROUNDS)
        assert rounds.status_code == 200
        assert rounds.json() == {
            "currentRound": {"round": 1},
            "rounds": [{"round": 1}, {"round": 2}],
        }

        events = client.get(ROUND.format(1)).json()["events"]
        assert [e["id"] for e in events] == [1001, 1002, 1003, 1004]
        assert {e["status"]["type"] for e in events} == {"notstarted"}
        assert {e["roundInfo"]["round"] for e in events} == {1}

        clock.set(max(m.settled_at for m in season.round_matches(1)))
        assert client.get(ROUNDS).json()["currentRound"] == {"round": 2}
        ended = client.get(ROUND.format(1)).json()["events"]
        assert {e["status"]["code"] for e in ended} == {100}

        for path in (ROUND.format(3), ROUND.format("x"), ROUNDS.replace("/17/", "/18/")):
            missing = client.get(path)
            assert missing.status_code == 404
            assert missing.json()["error"]["code"] == 404


def test_event_detail_and_unknown_events(season: Season, clock: ManualClock) -> None:
    with serve(season, clock) as client:
        plan = season.round_matches(2)[0]
        detail = client.get(EVENT.format(plan.id))
        assert detail.status_code == 200
        assert detail.headers["content-type"] == "application/json"
        assert detail.json() == {"event": event_at(plan, clock.now())}
        for unknown in ("999999", "abc"):
            missing = client.get(EVENT.format(unknown))
            assert missing.status_code == 404
            assert missing.json() == {"error": {"code": 404, "message": f"no event {unknown}"}}


async def test_live_lists_matches_in_play_and_just_ended(
    season: Season, clock: ManualClock
) -> None:
    first_round = season.round_matches(1)
    ids = [m.id for m in first_round]
    async with (
        ReplayServer(create_replay_app(season, clock)) as server,
        httpx.AsyncClient(base_url=server.base_url) as client,
    ):

        async def live_ids() -> list[int]:
            response = await client.get(LIVE)
            assert response.status_code == 200
            return [e["id"] for e in response.json()["events"]]

        assert await live_ids() == []
        clock.set(KICKOFF)
        assert await live_ids() == ids
        last_full_time = max(m.full_time for m in first_round)
        clock.set(last_full_time)
        assert await live_ids() == ids, "ended matches stay listed for a while"
        clock.set(last_full_time + LIVE_WINDOW)
        assert await live_ids() == []


def test_etag_and_conditional_requests(season: Season, clock: ManualClock) -> None:
    with serve(season, clock) as client:
        first = client.get(EVENT.format(1001))
        etag = first.headers["etag"]
        assert etag == f'"{hashlib.sha256(first.content).hexdigest()}"'
        assert first.headers["cache-control"].startswith("max-age=")

        for header in (etag, f"W/{etag}", f'"other", {etag}', "*"):
            again = client.get(EVENT.format(1001), headers={"If-None-Match": header})
            assert again.status_code == 304, header
            assert again.content == b""
            assert again.headers["etag"] == etag

        stale = client.get(EVENT.format(1001), headers={"If-None-Match": '"other"'})
        assert stale.status_code == 200 and stale.content == first.content

        round_etag = client.get(ROUND.format(1)).headers["etag"]
        clock.set(KICKOFF)
        changed = client.get(EVENT.format(1001), headers={"If-None-Match": etag})
        assert changed.status_code == 200
        assert changed.headers["etag"] != etag
        assert changed.json()["event"]["status"]["code"] == 6
        round_again = client.get(ROUND.format(1), headers={"If-None-Match": round_etag})
        assert round_again.status_code == 200


def test_a_match_from_kickoff_to_its_correction(clock: ManualClock) -> None:
    plan = a_match_plan(correction=Correction(timedelta(minutes=6), "home", 1))
    season = Season(0, plan.competition, (plan.home, plan.away), (plan,))

    with serve(season, clock) as client:

        def event() -> dict[str, Any]:
            response = client.get(EVENT.format(plan.id))
            assert response.status_code == 200
            data: dict[str, Any] = response.json()["event"]
            return data

        def state() -> tuple[int, Any, Any]:
            e = event()
            return e["status"]["code"], e["homeScore"].get("current"), e["awayScore"].get("current")

        assert state() == (0, None, None)
        clock.set(KICKOFF)
        assert state() == (6, 0, 0)
        clock.advance(20 * MIN)
        assert state() == (6, 1, 0)
        clock.set(plan.half_time)
        assert state() == (31, 1, 0)
        clock.set(plan.second_half_start + 15 * MIN)
        assert state() == (7, 1, 1)
        clock.set(plan.full_time - MIN)
        assert state() == (7, 2, 1)
        clock.set(plan.full_time)
        assert state() == (100, 2, 1)
        ended = event()
        assert ended["changes"]["changeTimestamp"] == epoch_seconds(plan.full_time)

        clock.advance(6 * MIN)
        corrected = event()
        assert corrected["status"]["code"] == 100
        assert corrected["homeScore"] == {"current": 3, "display": 3, "period1": 1, "period2": 2}
        assert corrected["changes"]["changeTimestamp"] == epoch_seconds(plan.full_time + 6 * MIN)
        assert "homeScore.current" in corrected["changes"]["changes"]


def test_injected_server_errors(season: Season, clock: ManualClock) -> None:
    faults = Faults()
    with serve(season, clock, faults) as client:
        faults.fail_next(2)
        statuses = [client.get(EVENT.format(1001)).status_code for _ in range(3)]
        assert statuses == [500, 500, 200]
        assert client.get("/health").status_code == 200, "health is never faulted"
        faults.fail_next(1)
        failing = client.get(LIVE)
        assert failing.status_code == 500
        assert failing.json() == {"error": {"code": 500, "message": "injected fault"}}

    runs = []
    for _ in range(2):
        with serve(season, clock, Faults(error_rate=0.3, seed=42)) as client:
            runs.append([client.get(EVENT.format(1001)).status_code for _ in range(40)])
    assert runs[0] == runs[1], "the same seed fails the same requests"
    assert 3 <= runs[0].count(500) <= 25 and 200 in runs[0]


def test_malformed_payloads(season: Season, clock: ManualClock) -> None:
    clock.set(KICKOFF + 50 * MIN)
    faults = Faults(
        malformed={
            1001: Malformation.SCORE_AS_STRING,
            1002: Malformation.MISSING_STATUS,
            1005: Malformation.NOT_JSON,
        }
    )
    with serve(season, clock, faults) as client:
        as_string = client.get(EVENT.format(1001)).json()["event"]
        assert isinstance(as_string["homeScore"], str)
        assert "status" not in client.get(EVENT.format(1002)).json()["event"]
        assert isinstance(client.get(EVENT.format(1003)).json()["event"]["homeScore"], dict)

        round_one = client.get(ROUND.format(1)).json()["events"]
        assert isinstance(round_one[0]["homeScore"], str)
        assert "status" not in round_one[1]

        for path in (EVENT.format(1005), ROUND.format(2)):
            broken = client.get(path)
            assert broken.status_code == 200
            with pytest.raises(json.JSONDecodeError):
                json.loads(broken.content)


def test_the_server_stops_on_exit(season: Season, clock: ManualClock) -> None:
    with ReplayServer(create_replay_app(season, clock)) as server:
        base_url = server.base_url
        assert httpx.get(f"{base_url}/health").status_code == 200
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{base_url}/health")


async def test_the_simulator_publishes_every_entry_to_the_broker(
    services: Services, settings: Settings, topic_prefix: str
) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=services.kafka, request_timeout_ms=15000)
    await admin.start()
    try:
        await apply_topics(admin, prefix=topic_prefix)
    finally:
        await admin.close()
    entries = generate_entries(
        a_season(), members=150, leagues=6, seed=3, late_rate=0.1, duplicate_rate=0.1
    )
    assert entries.duplicated_entry_ids and entries.late_entry_ids

    sent = await publish_simulation(settings, entries)
    assert sent == len(entries.predictions)

    codec = AvroCodec.from_settings(settings)
    messages = await read_all(settings, topic(ENTRIES_PREDICTIONS, topic_prefix), sent)
    records = [codec.decode(message.value) for message in messages]
    assert all(isinstance(r, PredictionPlaced) for r in records)
    assert Counter(records) == Counter(entries.predictions), "exactly what was published"
    partitions: dict[str, set[int]] = defaultdict(set)
    in_order: dict[str, list[PredictionPlaced]] = defaultdict(list)
    for message, record in zip(messages, records, strict=True):
        assert isinstance(record, PredictionPlaced)
        assert message.key == record.match_id.encode()
        partitions[record.match_id].add(message.partition)
        in_order[record.match_id].append(record)
    for match_id, received in in_order.items():
        assert received == [p for p in entries.predictions if p.match_id == match_id]
        assert len(partitions[match_id]) == 1, "a match's entries share one partition"

    rules = await read_all(settings, topic(RULES, topic_prefix), 1)
    assert [codec.decode(m.value) for m in rules] == [entries.ruleset]


async def read_all(settings: Settings, name: str, count: int) -> list[Any]:
    """Every message of ``name``, read_committed from the start: exactly ``count`` of them."""
    consumer = kafka_consumer(settings, name, group_id=unique("g-"))
    received: list[Any] = []

    async def read() -> bool:
        batches = await consumer.getmany(timeout_ms=200)
        for partition in sorted(batches, key=lambda tp: tp.partition):
            received.extend(batches[partition])
        return len(received) >= count

    await consumer.start()
    try:
        condition: Callable[[], bool | Awaitable[bool]] = read  # pins eventually's T to bool
        await eventually(condition, timeout=30, what=f"{count} messages on {name}")
        extra = await consumer.getmany(timeout_ms=300)
    finally:
        await consumer.stop()
    assert not any(extra.values()) and len(received) == count
    return received
