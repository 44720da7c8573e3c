"""The market poller against the replay provider over real HTTP, a real broker and Postgres.

The replay provider serves a small market season (``producers.market_season``) on a clock
the test moves; what reaches ``fixtures.markets`` is compared with what the season's
states say a poller polling at those moments must publish.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka import TopicPartition

from core.kafka import consumer as kafka_consumer
from core.kafka import producer as kafka_producer
from core.settings import Settings
from core.topics import apply_catalog
from producers.clock import ManualClock
from producers.football import PollResult
from producers.http import RetryPolicy
from producers.market_season import MarketSeason, MarketState, generate_market_season
from producers.markets import MarketPoller
from producers.replay import Faults, Malformation, ReplayServer, create_replay_app
from producers.season import Season
from schemas.catalog import (
    DLQ_PRODUCERS,
    FIXTURES_MARKETS,
    RAW_MARKETS_MARKETS,
    RAW_MARKETS_PRICES,
    spec,
    topic,
)
from schemas.codec import AvroCodec
from schemas.records import DeadLetter, MarketResolved, MarketUpdated
from tests.builders import KICKOFF, a_season
from tests.support import eventually, unique

FIRST_OPEN = KICKOFF - timedelta(days=1)
HOUR = timedelta(hours=1)
TICK = Decimal("0.0001")


def a_market_season(football: Season) -> MarketSeason:
    """5 binary markets (one corrected, one voided) and the 1X2 markets of ``football``."""
    return generate_market_season(
        21,
        first_open=FIRST_OPEN,
        football=football,
        binary_markets=5,
        open_spread=4 * HOUR,
        duration=(6 * HOUR, 10 * HOUR),
        resolve_delay=(timedelta(minutes=10), timedelta(minutes=50)),
        correction_delay=(HOUR, 3 * HOUR),
        correction_rate=0.0,
        void_rate=0.0,
        match_open_before=20 * HOUR,
        odds_interval=3 * HOUR,
    )


@dataclass
class Rig:
    """The replay provider on a manual clock, and pollers of it that share one provider name."""

    settings: Settings
    pool: asyncpg.Pool
    producer: Any
    season: MarketSeason
    clock: ManualClock
    faults: Faults
    base_url: str
    provider: str = field(default_factory=lambda: unique("markets-"))
    codec: AvroCodec = field(default_factory=AvroCodec)
    clients: list[httpx.AsyncClient] = field(default_factory=list)

    def poller(self, **overrides: Any) -> MarketPoller:
        client = httpx.AsyncClient(timeout=5.0)
        self.clients.append(client)
        options: dict[str, Any] = {
            "base_url": self.base_url,
            "prefix": self.settings.topic_prefix,
            "provider": self.provider,
            "retry": RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.05),
        }
        options.update(overrides)
        return MarketPoller(client, self.producer, self.codec, self.pool, **options)

    async def read(self, logical: str) -> list[Any]:
        """Every record of a topic up to its end now (read_committed), partition by partition."""
        name = topic(logical, self.settings.topic_prefix)
        partitions = [TopicPartition(name, p) for p in range(spec(logical).partitions)]
        reader = kafka_consumer(self.settings)
        records: list[Any] = []
        await reader.start()
        try:
            reader.assign(partitions)
            await reader.seek_to_beginning(*partitions)
            ends = await reader.end_offsets(partitions)

            async def at_the_end() -> bool:
                for batch in (await reader.getmany(*partitions, timeout_ms=100)).values():
                    records.extend(batch)
                return all([await reader.position(tp) >= ends[tp] for tp in partitions])

            await eventually(at_the_end, timeout=20, what=f"{name} read to its end")
        finally:
            await reader.stop()
        return records

    async def records(self) -> dict[str, list[tuple[Any, ...]]]:
        """What ``fixtures.markets`` holds, per market, in order."""
        found: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
        for message in await self.read(FIXTURES_MARKETS):
            record = self.codec.decode(message.value)
            assert isinstance(record, MarketUpdated | MarketResolved)
            assert message.key == record.market_id.encode()
            found[record.market_id].append(summary(record))
        return dict(found)

    async def executions(self) -> list[tuple[str, str]]:
        rows = await self.pool.fetch(
            "select feed, status::text from poll_executions where provider = $1 order by queued_at",
            self.provider,
        )
        return [(row["feed"], row["status"]) for row in rows]


@pytest.fixture
async def rig(settings: Settings, database_url: str) -> AsyncIterator[Rig]:
    await apply_catalog(settings)
    football = a_season(rounds=1, kickoff_spread=HOUR)  # 4 matches
    season = a_market_season(football)
    clock = ManualClock(FIRST_OPEN)
    faults = Faults()
    app = create_replay_app(football, clock, faults=faults, markets=season)
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=4)
    out = kafka_producer(settings)
    await out.start()
    try:
        async with ReplayServer(app) as server:
            made = Rig(settings, pool, out, season, clock, faults, server.base_url)
            yield made
            for client in made.clients:
                await client.aclose()
    finally:
        await out.stop()
        await pool.close()


def summary(record: MarketUpdated | MarketResolved) -> tuple[Any, ...]:
    if isinstance(record, MarketResolved):
        return ("resolved", record.version, record.outcome, record.void)
    outcomes = tuple((o.name, o.price, o.odds) for o in record.outcomes)
    return ("updated", record.version, outcomes, record.active, record.closed)


async def poll_all(poller: MarketPoller) -> tuple[PollResult, PollResult, PollResult]:
    """The three feeds in the order a poller that has just started polls them."""
    return await poller.poll_markets(), await poller.poll_prices(), await poller.poll_resolutions()


# -- what a poller polling at given moments must publish ------------------------------------


def quoted(state: MarketState) -> tuple[tuple[str, Decimal, Decimal | None], ...]:
    """A state's outcomes as the poller publishes them: price 4 decimals (1/odds on 1X2)."""
    if state.plan.binary:
        return tuple(
            (name, v.quantize(TICK), None)
            for name, v in zip(state.plan.outcomes, state.quote.values, strict=True)
        )
    return tuple(
        (name, (1 / odds).quantize(TICK), odds)
        for name, odds in zip(state.plan.outcomes, state.quote.values, strict=True)
    )


def expected_records(
    season: MarketSeason, times: list[datetime]
) -> dict[str, list[tuple[Any, ...]]]:
    """Per market: an update when what it is or its prices change (a closed market's prices
    are frozen); a binary market first priced by the list, a match market by the odds feed;
    a resolution when it changes; each with the next version."""
    quotes: dict[str, Any] = {}
    contents: dict[str, Any] = {}
    resolutions: dict[str, Any] = {}
    out: dict[str, list[tuple[Any, ...]]] = defaultdict(list)

    def publish(market_id: str, outcomes: Any, closed: bool) -> None:
        content = (closed, None if closed else outcomes)
        if contents.get(market_id) != content:
            contents[market_id] = content
            version = sum(1 for r in out[market_id] if r[0] == "updated") + 1
            out[market_id].append(("updated", version, outcomes, not closed, closed))

    for when in times:
        open_now = [s for s in season.listed(when) if not s.closed]
        for state in open_now:  # the market list
            market_id = state.plan.market_id
            if market_id not in quotes:
                quotes[market_id] = quoted(state) if state.plan.binary else None
                if quotes[market_id] is not None:
                    publish(market_id, quotes[market_id], closed=False)
        for state in open_now:  # midpoints and odds
            quotes[state.plan.market_id] = quoted(state)
            publish(state.plan.market_id, quotes[state.plan.market_id], closed=False)
        for state in season.resolution_view(when):
            market_id = state.plan.market_id
            publish(market_id, quotes[market_id], closed=True)
            outcome = None if state.resolution is None else (state.resolution.outcome,)
            if outcome is not None and resolutions.get(market_id) != outcome:
                resolutions[market_id] = outcome
                version = sum(1 for r in out[market_id] if r[0] == "resolved") + 1
                out[market_id].append(("resolved", version, outcome[0], outcome[0] is None))
    return dict(out)


# -- the tests -------------------------------------------------------------------------------


async def test_raw_payloads_byte_for_byte_and_an_unchanged_poll_publishes_nothing(
    rig: Rig,
) -> None:
    rig.clock.set(FIRST_OPEN + 5 * HOUR)
    open_now = [s for s in rig.season.listed(rig.clock.now()) if not s.closed]
    binary = [s for s in open_now if s.plan.binary]
    matches = [s for s in open_now if not s.plan.binary]
    assert len(binary) == 5 and len(matches) == 4
    poller = rig.poller()

    started = datetime.now(UTC)
    markets, prices, resolutions = await poll_all(poller)
    for message in await rig.read(FIXTURES_MARKETS):
        update = rig.codec.decode(message.value)
        assert isinstance(update, MarketUpdated)
        assert started - timedelta(seconds=1) <= update.updated_at <= datetime.now(UTC), (
            "updated_at is when the poller fetched it"
        )
    assert (markets.fetched, markets.published) == (9, 5), "match markets wait for their odds"
    assert (prices.fetched, prices.published) == (10 + 4, 4), "midpoints unchanged; odds new"
    assert (resolutions.fetched, resolutions.published) == (0, 0)
    assert {m: len(r) for m, r in (await rig.records()).items()} == {
        s.plan.market_id: 1 for s in open_now
    }

    raw = await rig.read(RAW_MARKETS_MARKETS) + await rig.read(RAW_MARKETS_PRICES)
    assert sorted(r.key for r in raw) == [
        b"markets:0",
        b"midpoints:0",
        b"odds:football",
        b"resolutions:0",
    ]
    runs = {
        b"markets:0": markets.execution_id,
        b"resolutions:0": resolutions.execution_id,
        b"midpoints:0": prices.execution_id,
        b"odds:football": prices.execution_id,
    }
    async with httpx.AsyncClient() as client:
        for record in raw:
            headers = {name: value.decode() for name, value in record.headers}
            again = await client.get(headers["url"])  # the clock has not moved
            assert record.value == again.content, "byte for byte"
            assert headers["content_sha256"] == hashlib.sha256(record.value).hexdigest()
            assert headers["etag"] == again.headers["etag"]
            assert headers["provider"] == rig.provider
            assert headers["poll_execution_id"] == str(runs[record.key])
            assert datetime.fromisoformat(headers["fetched_at"]).utcoffset() == timedelta(0)

    unchanged = await poll_all(poller)
    assert [(r.published, r.not_modified, r.fetched) for r in unchanged] == [
        (0, 1, 0),
        (0, 2, 0),
        (0, 1, 0),
    ]
    restarted = await poll_all(rig.poller())  # no ETags, no quotes: state from Postgres only
    assert [(r.published, r.not_modified) for r in restarted] == [(0, 0)] * 3
    assert restarted[0].fetched == 9
    assert sum(len(r) for r in (await rig.records()).values()) == 9
    assert len(await rig.read(RAW_MARKETS_MARKETS)) == 4, "a 304 publishes no raw record"
    assert set(await rig.executions()) == {
        ("markets", "completed"),
        ("prices", "completed"),
        ("resolutions", "completed"),
    }


async def test_a_fast_forwarded_season_publishes_the_expected_sequence(rig: Rig) -> None:
    last = max(r.at for m in rig.season.markets for r in m.resolutions)
    times = [FIRST_OPEN + n * HOUR for n in range(int((last - FIRST_OPEN) / HOUR) + 2)]
    poller = rig.poller()
    for when in times:
        rig.clock.set(when)
        await poll_all(poller)

    actual = await rig.records()
    expected = expected_records(rig.season, times)
    assert actual.keys() == expected.keys() == {m.market_id for m in rig.season.markets}
    for market_id, records in expected.items():
        assert actual[market_id] == records, market_id

    flat = [r for records in actual.values() for r in records]
    resolved = [r for r in flat if r[0] == "resolved"]
    corrected = [r for r in resolved if r[1] == 2]
    assert corrected and all(r[2] is not None for r in corrected), "a re-resolution arrives"
    for market_id, records in actual.items():
        outcomes = [r[2] for r in records if r[0] == "resolved"]
        assert len(set(outcomes)) == len(outcomes), f"{market_id}: each resolution changes it"
    assert any(r[3] and r[2] is None for r in resolved), "a void arrives"
    odds_moves = [r for r in flat if r[0] == "updated" and r[2][0][2] is not None and r[3]]
    assert len(odds_moves) > 4, "match markets' odds move before kick-off"
    assert {r[4] for r in flat if r[0] == "updated"} == {False, True}


async def test_malformed_payloads_go_to_the_dlq_and_the_poller_keeps_going(rig: Rig) -> None:
    rig.clock.set(FIRST_OPEN + 5 * HOUR)
    malformed: dict[int, Malformation] = {510_002: Malformation.SCORE_AS_STRING}
    rig.faults.malformed = malformed
    poller = rig.poller()
    rig.faults.fail_next(1)  # and a 500, retried
    markets = await poller.poll_markets()
    assert (markets.fetched, markets.published, markets.dead_lettered) == (9, 4, 1)
    assert rig.faults.errors_served == 1

    (letter,) = await rig.read(DLQ_PRODUCERS)
    (raw,) = await rig.read(RAW_MARKETS_MARKETS)
    assert letter.key == b"510002"
    assert letter.value in raw.value and letter.value.startswith(b'{"id":"510002"')
    dead = DeadLetter.from_headers(letter.headers)
    assert dead.error_class == "producers.exceptions.MalformedPayloadError"
    assert dead.error_message.startswith("market.outcomePrices: not a JSON list")
    assert (dead.source_topic, dead.source_partition, dead.source_offset) == (
        raw.topic,
        raw.partition,
        raw.offset,
    )

    malformed.clear()
    malformed[510_001] = Malformation.SCORE_AS_STRING  # its midpoints are "n/a"
    assert (await poller.poll_prices()).dead_lettered == 2
    malformed[520_001] = Malformation.NOT_JSON  # the list and the odds feed are cut in half
    rig.clock.set(FIRST_OPEN + 6 * HOUR)
    broken = [await poller.poll_markets(), await poller.poll_prices()]
    assert [r.dead_lettered for r in broken] == [1, 3] and broken[0].published == 0
    letters = {r.key: r for r in await rig.read(DLQ_PRODUCERS)}
    assert set(letters) == {b"510001", b"510002", b"markets:0", b"odds:football"}
    assert letters[b"510001"].value == b'"n/a"'
    for key in (b"markets:0", b"odds:football"):
        reason = DeadLetter.from_headers(letters[key].headers).error_message
        assert reason.startswith("body: not JSON"), reason

    malformed.clear()
    rig.clock.set(FIRST_OPEN + 7 * HOUR)
    healed = await poll_all(poller)
    assert healed[0].dead_lettered == healed[1].dead_lettered == 0
    records = await rig.records()
    assert records["510002"][0][:2] == ("updated", 1), "the bad market is published once fixed"
    assert all(records[str(520_001 + n)] for n in range(4)), "match markets priced"
    assert {status for _, status in await rig.executions()} == {"completed"}


async def test_run_polls_every_feed_until_stopped(rig: Rig) -> None:
    rig.clock.set(FIRST_OPEN + 5 * HOUR)
    poller = rig.poller(markets_interval_s=0.2, prices_interval_s=0.05, resolutions_interval_s=0.1)
    stop = asyncio.Event()
    task = asyncio.create_task(poller.run(stop))
    try:

        async def every_feed_twice() -> bool:
            feeds = [feed for feed, _ in await rig.executions()]
            return all(feeds.count(f) >= 2 for f in ("markets", "prices", "resolutions"))

        await eventually(every_feed_twice, timeout=20, what="each feed polled twice")
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=15)
    assert len(await rig.records()) == 9, "every open market, binary and 1X2"
    assert {status for _, status in await rig.executions()} == {"completed"}
