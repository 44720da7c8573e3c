"""The football poller: provider HTTP -> ``raw.football.*`` and ``fixtures.matches``.

Two loops (:meth:`FootballPoller.run`): every ``round_interval_s`` the rounds list and the
events of the current and next round; every ``live_interval_s`` the live list. Each run
is a poll execution (``queued -> in_progress -> completed | failed``, ``cancelled`` on
shutdown). For each 200 (a 304 brings nothing new):

1. the body goes to ``raw.football.<feed>`` byte for byte, once per fetch
   (:mod:`producers.raw`);
2. every event is normalized against ``provider_match_state`` (:mod:`producers.normalize`);
   a changed one is published as ``MatchUpdated`` to ``fixtures.matches``, keyed by
   match id; an unchanged or stale one publishes nothing;
3. a malformed event goes to ``dlq.producers`` (original bytes, the reason) and the
   others carry on;
4. once every publish is acknowledged, the new states are upserted, and only then is the
   response's ETag remembered.

**Publish first, then state.** A crash between 2 and 4 leaves the state behind: the next
poll publishes the same ``MatchUpdated`` again, with the same ``result_version``, and
downstream dedupes it (scores are keyed by ``score:{match}:{entry}:{result_version}:...``).
The other order could lose an update for good. One poller per tournament and season:
the loops of one poller share a lock around 2-4; two poller processes on the same
tournament would race on the state.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import structlog
from prometheus_client import Counter

from core.exceptions import PoisonRecordError
from core.logging import get_logger
from producers.exceptions import MalformedPayloadError
from producers.executions import MatchStateStore, PollExecutions
from producers.http import BreakerState, CircuitBreaker, ConditionalFetcher, Fetched, RetryPolicy
from producers.normalize import (
    DEFAULT_PROVIDER,
    EventSlice,
    ProviderMatchState,
    RoundsIndex,
    event_id,
    normalize_event,
    parse_event_detail,
    parse_event_list,
    parse_rounds,
)
from producers.raw import RawPosition, dead_letter_headers, publish_dead_letter, publish_raw
from schemas.catalog import (
    DLQ_PRODUCERS,
    FIXTURES_MATCHES,
    RAW_FOOTBALL_EVENTS,
    RAW_FOOTBALL_ROUNDS,
    topic,
)
from schemas.codec import AvroCodec

log = get_logger("poller")

FETCHED = Counter(
    "scoreline_poller_records_fetched_total",
    "Provider events read from 200 responses.",
    ["provider", "feed"],
)
PUBLISHED = Counter(
    "scoreline_poller_records_published_total",
    "MatchUpdated records published to fixtures.matches.",
    ["provider", "feed"],
)
NOT_MODIFIED = Counter(
    "scoreline_poller_not_modified_total",
    "Provider answers 304 Not Modified.",
    ["provider", "feed"],
)
DEAD_LETTERS = Counter(
    "scoreline_poller_dead_letters_total",
    "Malformed payloads sent to dlq.producers.",
    ["provider", "feed"],
)
EXECUTIONS = Counter(
    "scoreline_poller_executions_total", "Poll runs by outcome.", ["provider", "feed", "status"]
)

LIVE_KEY = "live:football"


@dataclass(frozen=True, slots=True)
class PollResult:
    """What one poll run did."""

    execution_id: uuid.UUID
    fetched: int  # provider events read from 200 responses
    published: int  # MatchUpdated records published
    not_modified: int  # 304 answers
    dead_lettered: int


@dataclass
class _Run:
    execution_id: uuid.UUID
    feed: str
    log: structlog.stdlib.BoundLogger
    fetched: int = 0
    published: int = 0
    not_modified: int = 0
    dead_lettered: int = 0

    def result(self) -> PollResult:
        return PollResult(
            self.execution_id, self.fetched, self.published, self.not_modified, self.dead_lettered
        )


class FootballPoller:
    """Polls a SofaScore-like provider for one tournament season (module docstring)."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        producer: Any,
        codec: AvroCodec,
        pool: Any,
        *,
        tournament_id: int | str,
        season_id: int | str,
        prefix: str = "",
        provider: str = DEFAULT_PROVIDER,
        base_url: str = "",
        round_interval_s: float = 60.0,
        live_interval_s: float = 5.0,
        rounds_ahead: int = 1,
        retry: RetryPolicy | None = None,
        breaker: CircuitBreaker | None = None,
        dlq_topic: str = DLQ_PRODUCERS,
        rng: random.Random | None = None,
    ) -> None:
        self.provider = provider
        self.tournament_id = str(tournament_id)
        self.season_id = str(season_id)
        self.round_interval_s = round_interval_s
        self.live_interval_s = live_interval_s
        self.rounds_ahead = rounds_ahead
        self.breaker = breaker or CircuitBreaker(name=provider)
        self.fetcher = ConditionalFetcher(
            client,
            retry=retry or RetryPolicy(),
            breaker=self.breaker,
            rng=rng or random.Random(),  # noqa: S311 - jitter, not cryptography
        )
        self._producer = producer
        self._codec = codec
        self._executions = PollExecutions(pool)
        self._states = MatchStateStore(pool)
        self._base = f"{base_url.rstrip('/')}/api/v1"
        self._topics = {
            "events": topic(RAW_FOOTBALL_EVENTS, prefix),
            "rounds": topic(RAW_FOOTBALL_ROUNDS, prefix),
            "matches": topic(FIXTURES_MATCHES, prefix),
            "dlq": topic(dlq_topic, prefix),
        }
        self._lock = asyncio.Lock()
        self._rounds: RoundsIndex | None = None

    # -- the polls --------------------------------------------------------------------

    async def poll_rounds(self) -> PollResult:
        """The rounds list, then the events of the current round and the next ones."""
        season = f"{self.tournament_id}:{self.season_id}"
        path = f"{self._base}/unique-tournament/{self.tournament_id}/season/{self.season_id}"
        async with self._execution("rounds") as run:
            fetched = await self._get(run, f"{path}/rounds")
            if fetched.body is not None:
                position = await self._publish_raw(run, fetched, "rounds", f"rounds:{season}")
                try:
                    self._rounds = parse_rounds(fetched.body)
                except MalformedPayloadError as e:
                    key = f"rounds:{season}".encode()
                    await self._dead_letter(run, e, key, fetched.body, position, fetched.url)
                self.fetcher.commit(fetched)
            for number in self._rounds.upcoming(self.rounds_ahead) if self._rounds else ():
                url = f"{path}/events/round/{number}"
                await self._ingest(run, url, "rounds", f"round:{season}:{number}", parse_event_list)
        return run.result()

    async def poll_live(self) -> PollResult:
        """The live list: matches in play and those finished in the last few minutes."""
        async with self._execution("live") as run:
            url = f"{self._base}/sport/football/events/live"
            await self._ingest(run, url, "events", LIVE_KEY, parse_event_list)
        return run.result()

    async def poll_event(self, provider_event_id: int | str) -> PollResult:
        """One event's detail (a check of a single match, e.g. after full time)."""
        async with self._execution("event") as run:
            url = f"{self._base}/event/{provider_event_id}"
            await self._ingest(
                run, url, "events", str(provider_event_id), lambda b: [parse_event_detail(b)]
            )
        return run.result()

    async def run(self, stop: asyncio.Event) -> None:
        """Both loops until ``stop`` is set; a failed run is logged and the loop goes on."""
        log.info("poller.started", operation="run", tournament_id=self.tournament_id)
        async with asyncio.TaskGroup() as group:
            group.create_task(self._every(self.round_interval_s, self.poll_rounds, "rounds", stop))
            group.create_task(self._every(self.live_interval_s, self.poll_live, "live", stop))
        log.info("poller.stopped", operation="run", tournament_id=self.tournament_id)

    async def _every(
        self,
        interval_s: float,
        poll: Callable[[], Awaitable[PollResult]],
        operation: str,
        stop: asyncio.Event,
    ) -> None:
        while not stop.is_set():
            if self.breaker.state is BreakerState.OPEN:
                log.debug("poll.skipped", operation=operation, reason="circuit open")
            else:
                try:
                    await poll()
                except Exception as e:  # logged and recorded on the execution; try again later
                    log.debug("poll.retry_later", operation=operation, error=repr(e))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=interval_s)

    # -- one run ----------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _execution(self, feed: str) -> AsyncIterator[_Run]:
        execution_id = await self._executions.start(self.provider, feed)
        run = _Run(execution_id, feed, log.bind(operation=feed, execution_id=str(execution_id)))
        outcome = "completed"
        try:
            yield run
        except asyncio.CancelledError:
            outcome = "cancelled"
            await self._executions.cancel(execution_id)
            raise
        except Exception as e:
            outcome = "failed"
            run.log.warning("poll.failed", error=repr(e))
            await self._executions.fail(
                execution_id,
                f"{type(e).__name__}: {e}",
                fetched_count=run.fetched,
                published_count=run.published,
            )
            raise
        else:
            await self._executions.complete(execution_id, run.fetched, run.published)
            run.log.info(
                "poll.completed",
                fetched=run.fetched,
                published=run.published,
                not_modified=run.not_modified,
                dead_lettered=run.dead_lettered,
            )
        finally:
            EXECUTIONS.labels(self.provider, feed, outcome).inc()

    async def _get(self, run: _Run, url: str) -> Fetched:
        fetched = await self.fetcher.fetch(url)
        run.log.debug("fetch", url=fetched.url, status=fetched.status, attempts=fetched.attempts)
        if fetched.not_modified:
            run.not_modified += 1
            NOT_MODIFIED.labels(self.provider, run.feed).inc()
        return fetched

    async def _ingest(
        self,
        run: _Run,
        url: str,
        feed: str,
        key: str,
        events_of: Callable[[bytes], list[EventSlice]],
    ) -> None:
        """Fetch ``url``; on a 200: raw, then each event, then remember the ETag."""
        fetched = await self._get(run, url)
        if fetched.body is None:
            return
        position = await self._publish_raw(run, fetched, feed, key)
        try:
            events = events_of(fetched.body)
        except MalformedPayloadError as e:
            await self._dead_letter(run, e, key.encode(), fetched.body, position, fetched.url)
        else:
            await self._process(run, events, position, fetched.url)
        self.fetcher.commit(fetched)

    async def _publish_raw(self, run: _Run, fetched: Fetched, feed: str, key: str) -> RawPosition:
        return await publish_raw(
            self._producer,
            fetched,
            topic=self._topics[feed],
            key=key,
            provider=self.provider,
            execution_id=str(run.execution_id),
        )

    async def _process(
        self, run: _Run, events: list[EventSlice], position: RawPosition, url: str
    ) -> None:
        ids = [i for i in (_key_of(e.payload) for e in events) if i is not None]
        async with self._lock:
            states = await self._states.load(self.provider, ids)
            changed: dict[str, ProviderMatchState] = {}
            acks: list[asyncio.Future[Any]] = []
            for event in events:
                run.fetched += 1
                FETCHED.labels(self.provider, run.feed).inc()
                try:
                    if not isinstance(event.payload, Mapping):
                        raise MalformedPayloadError(
                            f"body.events[{event.index}]", "expected an event object"
                        )
                    match_id = event_id(event.payload)
                    normalized = normalize_event(
                        event.payload, provider=self.provider, previous=states.get(match_id)
                    )
                    if normalized is None:
                        continue
                    update, state = normalized
                    value = self._codec.encode(update, FIXTURES_MATCHES)
                except PoisonRecordError as e:
                    key = _key_of(event.payload) or position_key(position)
                    await self._dead_letter(run, e, key.encode(), event.raw, position, url)
                    continue
                acks.append(
                    await self._producer.send(
                        self._topics["matches"], value=value, key=match_id.encode()
                    )
                )
                states[match_id] = changed[match_id] = state
            await asyncio.gather(*acks)
            run.published += len(acks)
            PUBLISHED.labels(self.provider, run.feed).inc(len(acks))
            await self._states.save(changed.values())

    async def _dead_letter(
        self,
        run: _Run,
        error: PoisonRecordError,
        key: bytes,
        value: bytes,
        position: RawPosition,
        url: str,
    ) -> None:
        run.log.warning("poll.dead_letter", url=url, error=str(error))
        headers = dead_letter_headers(
            error,
            source=position,
            url=url,
            provider=self.provider,
            execution_id=str(run.execution_id),
            failed_at=datetime.now(UTC),
        )
        await publish_dead_letter(
            self._producer, topic=self._topics["dlq"], key=key, value=value, headers=headers
        )
        run.dead_lettered += 1
        DEAD_LETTERS.labels(self.provider, run.feed).inc()


def _key_of(payload: Any) -> str | None:
    """The event id, when the payload has a usable one."""
    if not isinstance(payload, Mapping):
        return None
    try:
        return event_id(payload)
    except MalformedPayloadError:
        return None


def position_key(position: RawPosition) -> str:
    """A key for an event without a usable id: where its response is in the raw topic."""
    return f"{position.topic}:{position.partition}:{position.offset}"
