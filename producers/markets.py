"""The market poller: market feeds -> ``raw.markets.*`` and ``fixtures.markets``.

Three loops (:meth:`MarketPoller.run`), each run a poll execution like the football
poller's (:mod:`producers.executions`):

- every ``markets_interval_s`` (5 min) the open markets (``/markets?active=true&closed=
  false``, page by page): what a market is (question, outcomes, tokens, end date);
- every ``prices_interval_s`` (30 s) the CLOB midpoints of the open binary markets'
  tokens and the odds feed of the open match markets;
- every ``resolutions_interval_s`` (1 min) the resolution view: markets closing, resolved,
  resolved again or voided.

For each 200 (a 304 brings nothing new): the body goes to ``raw.markets.markets`` (market
list and resolution view) or ``raw.markets.prices`` (midpoints and odds) byte for byte;
each market is normalized (:mod:`producers.market_normalize`) against what was last
published for it, and a change is published to ``fixtures.markets`` keyed by market id:
one ``MarketUpdated`` per market per poll however many of its fields moved, then a
``MarketResolved`` when its resolution changed. A malformed market, token or odds event
goes to ``dlq.producers`` with the reason and the others carry on. Once every publish is
acknowledged the states are saved, and only then is the response's ETag remembered.

What a market *is* comes from the lists, its prices from the price feeds; the poller
keeps the latest of both in memory (a list poll reprices only a market it has no price
for yet), and the versions in Postgres (:class:`MarketStateStore`), so an unchanged market
publishes nothing across restarts. As with matches, a crash between publishing and saving
publishes the same versions again, which consumers dedupe by ``(market_id, version)``.
One poller per provider.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
from prometheus_client import Counter

from core.exceptions import PoisonRecordError
from core.logging import get_logger
from producers.exceptions import MalformedPayloadError
from producers.executions import PollExecutions, translated_errors
from producers.football import (
    DEAD_LETTERS,
    EXECUTIONS,
    FETCHED,
    NOT_MODIFIED,
    PollResult,
    _Run,
    position_key,
)
from producers.http import BreakerState, CircuitBreaker, ConditionalFetcher, Fetched, RetryPolicy
from producers.market_normalize import (
    DEFAULT_MARKETS_PROVIDER,
    MarketListing,
    ProviderMarketState,
    listed_quotes,
    market_key,
    market_resolution,
    market_update,
    parse_array,
    parse_market,
    parse_midpoint_items,
    parse_odds_event,
    price,
    with_midpoints,
    with_odds,
)
from producers.normalize import EventSlice
from producers.raw import RawPosition, dead_letter_headers, publish_dead_letter, publish_raw
from schemas.catalog import (
    DLQ_PRODUCERS,
    FIXTURES_MARKETS,
    RAW_MARKETS_MARKETS,
    RAW_MARKETS_PRICES,
    topic,
)
from schemas.codec import AvroCodec
from schemas.records import AvroRecord, MarketOutcome
from schemas.records.fixtures import MarketKind

log = get_logger("poller")

MARKET_RECORDS = Counter(
    "scoreline_poller_market_records_published_total",
    "MarketUpdated and MarketResolved records published to fixtures.markets.",
    ["provider", "feed", "record"],
)


@dataclass(frozen=True, slots=True)
class _Known:
    """What the poller knows of a market: the listing and its latest quotes."""

    listing: MarketListing
    outcomes: tuple[MarketOutcome, ...] | None  # None: an open match market awaiting odds


@dataclass(frozen=True, slots=True)
class _Source:
    """Where a market's data came from: its bytes and the raw record of its response."""

    raw: bytes
    position: RawPosition
    url: str
    fetched_at: datetime


class MarketStateStore:
    """What was last published per market, in ``provider_match_state`` (per provider
    object): ``payload_sha256`` the content hash, ``provider_version`` the MarketUpdated
    version, ``status`` the resolution (``unresolved``, ``void``, ``outcome:<name>``),
    ``result_version`` the MarketResolved version."""

    def __init__(self, pool: Any) -> None:
        self._pool = pool

    async def load(
        self, provider: str, market_ids: Iterable[str]
    ) -> dict[str, ProviderMarketState]:
        async with translated_errors("market state load"), self._pool.acquire() as conn:
            rows = await conn.fetch(
                "select match_id, payload_sha256, status, result_version, provider_version "
                "from provider_match_state where provider = $1 and match_id = any($2::text[])",
                provider,
                sorted(set(market_ids)),
            )
        return {
            row["match_id"]: ProviderMarketState(
                provider=provider,
                market_id=row["match_id"],
                content_sha256=row["payload_sha256"],
                version=row["provider_version"],
                resolution="" if row["status"] == "unresolved" else row["status"],
                resolution_version=row["result_version"],
            )
            for row in rows
        }

    async def save(self, states: Iterable[ProviderMarketState]) -> None:
        rows = [
            (
                s.provider,
                s.market_id,
                s.content_sha256,
                s.resolution or "unresolved",
                s.resolution_version,
                s.version,
            )
            for s in states
        ]
        if not rows:
            return
        async with translated_errors("market state save"), self._pool.acquire() as conn:
            await conn.executemany(
                "insert into provider_match_state (provider, match_id, payload_sha256, status, "
                "result_version, provider_version) values ($1, $2, $3, $4, $5, $6) "
                "on conflict (provider, match_id) do update set "
                "payload_sha256 = excluded.payload_sha256, status = excluded.status, "
                "result_version = excluded.result_version, "
                "provider_version = excluded.provider_version, updated_at = now()",
                rows,
            )


class MarketPoller:
    """Polls a Polymarket-shaped provider and an odds feed (module docstring)."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        producer: Any,
        codec: AvroCodec,
        pool: Any,
        *,
        base_url: str = "",
        prefix: str = "",
        provider: str = DEFAULT_MARKETS_PROVIDER,
        markets_interval_s: float = 300.0,
        prices_interval_s: float = 30.0,
        resolutions_interval_s: float = 60.0,
        page_size: int = 100,
        tokens_per_request: int = 100,
        retry: RetryPolicy | None = None,
        breaker: CircuitBreaker | None = None,
        dlq_topic: str = DLQ_PRODUCERS,
        rng: random.Random | None = None,
    ) -> None:
        self.provider = provider
        self.markets_interval_s = markets_interval_s
        self.prices_interval_s = prices_interval_s
        self.resolutions_interval_s = resolutions_interval_s
        self.page_size = page_size
        self.tokens_per_request = tokens_per_request
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
        self._states = MarketStateStore(pool)
        self._base = f"{base_url.rstrip('/')}/api/v1"
        self._topics = {
            "markets": topic(RAW_MARKETS_MARKETS, prefix),
            "prices": topic(RAW_MARKETS_PRICES, prefix),
            "fixtures": topic(FIXTURES_MARKETS, prefix),
            "dlq": topic(dlq_topic, prefix),
        }
        self._lock = asyncio.Lock()
        self._known: dict[str, _Known] = {}
        self._page_lengths: dict[str, int] = {}  # url -> items of its last processed 200

    @property
    def known(self) -> dict[str, tuple[MarketOutcome, ...]]:
        """The latest quotes of every market seen, by id."""
        return {m: k.outcomes for m, k in self._known.items() if k.outcomes is not None}

    # -- the polls --------------------------------------------------------------------

    async def poll_markets(self) -> PollResult:
        """The open markets, every page."""
        async with self._execution("markets") as run:
            await self._listings(run, f"{self._base}/markets?active=true&closed=false", "markets")
        return run.result()

    async def poll_resolutions(self) -> PollResult:
        """The resolution view: closing, resolved, corrected and voided markets."""
        async with self._execution("resolutions") as run:
            await self._listings(run, f"{self._base}/resolutions", "resolutions")
        return run.result()

    async def poll_prices(self) -> PollResult:
        """Midpoints of the open binary markets, then the odds of the open match markets."""
        async with self._execution("prices") as run:
            quotes: dict[str, tuple[MarketOutcome, ...]] = {}
            sources: dict[str, _Source] = {}
            done: list[Fetched] = []
            for offset, tokens in enumerate(self._token_batches()):
                url = f"{self._base}/midpoints?token_ids={','.join(tokens)}"
                await self._midpoints(run, url, f"midpoints:{offset}", quotes, sources, done)
            await self._odds(run, f"{self._base}/sports/football/odds", quotes, sources, done)
            await self._publish(
                run,
                [(self._known[m].listing, q, sources[m]) for m, q in quotes.items()],
                resolutions=False,
            )
            for fetched in done:
                self.fetcher.commit(fetched)
        return run.result()

    async def run(self, stop: asyncio.Event) -> None:
        """The three loops until ``stop`` is set; the market list first (prices need it)."""
        log.info("poller.started", operation="run", provider=self.provider)
        await self._attempt(self.poll_markets, "markets")
        async with asyncio.TaskGroup() as group:
            for interval, poll, operation in (
                (self.markets_interval_s, self.poll_markets, "markets"),
                (self.prices_interval_s, self.poll_prices, "prices"),
                (self.resolutions_interval_s, self.poll_resolutions, "resolutions"),
            ):
                later = operation == "markets"  # it has just run
                group.create_task(self._every(interval, poll, operation, stop, wait_first=later))
        log.info("poller.stopped", operation="run", provider=self.provider)

    async def _every(
        self,
        interval_s: float,
        poll: Callable[[], Awaitable[PollResult]],
        operation: str,
        stop: asyncio.Event,
        *,
        wait_first: bool = False,
    ) -> None:
        if wait_first:
            await _wait(stop, interval_s)
        while not stop.is_set():
            await self._attempt(poll, operation)
            await _wait(stop, interval_s)

    async def _attempt(self, poll: Callable[[], Awaitable[PollResult]], operation: str) -> None:
        """One poll, unless the circuit is open; a failure is on its execution, not raised."""
        if self.breaker.state is BreakerState.OPEN:
            log.debug("poll.skipped", operation=operation, reason="circuit open")
            return
        try:
            await poll()
        except Exception as e:  # logged and recorded on the execution; try again later
            log.debug("poll.retry_later", operation=operation, error=repr(e))

    # -- the feeds ----------------------------------------------------------------------

    async def _listings(self, run: _Run, url: str, feed: str) -> None:
        """Every page of a list of markets, then what changed, then the ETags."""
        found: dict[str, tuple[MarketListing, _Source]] = {}
        processed: list[Fetched] = []
        lengths: dict[str, int] = {}
        offset = 0
        while True:
            page = f"{url}{'&' if '?' in url else '?'}limit={self.page_size}&offset={offset}"
            key = f"{feed}:{offset}"
            fetched, position, items = await self._fetch(run, page, "markets", key, processed)
            if fetched.body is None:
                length = self._page_lengths.get(fetched.url, 0)
            elif position is None or items is None:
                length = lengths[fetched.url] = 0  # a broken page: where the next starts is unknown
            else:
                length = lengths[fetched.url] = len(items)
                await self._read_listings(run, items, fetched, position, found)
            if length < self.page_size:
                break
            offset += self.page_size
        entries = [(listing, self._quotes_of(listing), src) for listing, src in found.values()]
        await self._publish(run, entries, resolutions=feed == "resolutions")
        for fetched in processed:
            self.fetcher.commit(fetched)
        self._page_lengths.update(lengths)

    async def _fetch(
        self,
        run: _Run,
        url: str,
        feed: str,
        key: str,
        processed: list[Fetched],
        parse: Callable[[bytes], list[EventSlice]] = parse_array,
    ) -> tuple[Fetched, RawPosition | None, list[EventSlice] | None]:
        """GET ``url``; on a 200 the raw record, then the items ``parse`` finds in the body
        (a malformed body is dead-lettered: no items)."""
        fetched = await self._get(run, url)
        if fetched.body is None:
            return fetched, None, None
        position = await self._publish_raw(run, fetched, feed, key)
        processed.append(fetched)
        try:
            return fetched, position, parse(fetched.body)
        except MalformedPayloadError as e:
            await self._dead_letter(run, e, key.encode(), fetched.body, position, fetched.url)
            return fetched, position, None

    async def _read_listings(
        self,
        run: _Run,
        items: list[EventSlice],
        fetched: Fetched,
        position: RawPosition,
        found: dict[str, tuple[MarketListing, _Source]],
    ) -> None:
        """Each market of a page (the last copy of a market wins)."""
        for item in items:
            self._count(run)
            try:
                listing = parse_market(item.payload)
            except PoisonRecordError as e:
                bad_key = market_key(item.payload) or position_key(position)
                await self._dead_letter(run, e, bad_key.encode(), item.raw, position, fetched.url)
                continue
            source = _Source(item.raw, position, fetched.url, fetched.fetched_at)
            found.pop(listing.market_id, None)
            found[listing.market_id] = (listing, source)

    def _count(self, run: _Run) -> None:
        run.fetched += 1
        FETCHED.labels(self.provider, run.feed).inc()

    def _quotes_of(self, listing: MarketListing) -> tuple[MarketOutcome, ...] | None:
        """The latest quotes of a known market, else the listing's prices; ``None`` for an
        open match market: it is published once the odds feed has priced it."""
        known = self._known.get(listing.market_id)
        if known and known.outcomes and known.listing.outcomes == listing.outcomes:
            return known.outcomes
        if listing.kind is MarketKind.MATCH_1X2 and listing.open:
            return None
        return listed_quotes(listing)

    def _token_batches(self) -> list[list[str]]:
        """The open binary markets' tokens, a market's tokens always in one batch."""
        batches: list[list[str]] = [[]]
        for market_id in sorted(self._known):
            listing = self._known[market_id].listing
            if not (listing.open and listing.token_ids):
                continue
            if batches[-1] and len(batches[-1]) + len(listing.token_ids) > self.tokens_per_request:
                batches.append([])
            batches[-1].extend(listing.token_ids)
        return [batch for batch in batches if batch]

    async def _midpoints(
        self,
        run: _Run,
        url: str,
        key: str,
        quotes: dict[str, tuple[MarketOutcome, ...]],
        sources: dict[str, _Source],
        processed: list[Fetched],
    ) -> None:
        fetched, position, items = await self._fetch(
            run, url, "prices", key, processed, parse_midpoint_items
        )
        if position is None or items is None:
            return
        owners = {t: m for m, k in self._known.items() for t in k.listing.token_ids}
        midpoints: dict[str, Decimal] = {}
        for item in items:
            self._count(run)
            token, value = item.payload
            try:
                midpoints[token] = price(value, f"midpoints.{token}")
            except MalformedPayloadError as e:
                owner = owners.get(token, token)
                await self._dead_letter(run, e, owner.encode(), item.raw, position, fetched.url)
        for market_id in sorted({owners[t] for t in midpoints if t in owners}):
            known = self._known[market_id]
            current = quotes.get(market_id) or known.outcomes or listed_quotes(known.listing)
            quotes[market_id] = with_midpoints(known.listing, current, midpoints)
            sources[market_id] = _Source(fetched.body or b"", position, url, fetched.fetched_at)

    async def _odds(
        self,
        run: _Run,
        url: str,
        quotes: dict[str, tuple[MarketOutcome, ...]],
        sources: dict[str, _Source],
        processed: list[Fetched],
    ) -> None:
        fetched, position, events = await self._fetch(run, url, "prices", ODDS_KEY, processed)
        if position is None or events is None:
            return
        markets = {k.listing.match_id: m for m, k in self._known.items() if k.listing.match_id}
        for event in events:
            self._count(run)
            market_id = markets.get(market_key(event.payload) or "")
            try:
                quote = parse_odds_event(event.payload)
                if market_id is None:
                    continue  # a match the market list has not shown yet
                quotes[market_id] = with_odds(self._known[market_id].listing, quote)
            except PoisonRecordError as e:
                bad_key = market_id or position_key(position)
                await self._dead_letter(run, e, bad_key.encode(), event.raw, position, fetched.url)
                continue
            sources[market_id] = _Source(event.raw, position, fetched.url, fetched.fetched_at)

    # -- publishing ---------------------------------------------------------------------

    async def _publish(
        self,
        run: _Run,
        entries: Sequence[tuple[MarketListing, Sequence[MarketOutcome] | None, _Source]],
        *,
        resolutions: bool,
    ) -> None:
        """At most one MarketUpdated (then one MarketResolved) per market; then the states.

        An entry without outcomes is only remembered (a match market awaiting odds)."""
        async with self._lock:
            states = await self._states.load(self.provider, [e[0].market_id for e in entries])
            changed: dict[str, ProviderMarketState] = {}
            known: dict[str, _Known] = {}
            acks: list[asyncio.Future[Any]] = []
            for listing, outcomes, source in entries:
                market_id = listing.market_id
                if outcomes is None:
                    known[market_id] = _Known(listing, None)
                    continue
                try:
                    records, state = self._changes(
                        listing, outcomes, states.get(market_id), resolutions, source.fetched_at
                    )
                    values = [self._codec.encode(r, FIXTURES_MARKETS) for r in records]
                except PoisonRecordError as e:
                    await self._dead_letter(
                        run, e, market_id.encode(), source.raw, source.position, source.url
                    )
                    continue
                for record, value in zip(records, values, strict=True):
                    acks.append(
                        await self._producer.send(
                            self._topics["fixtures"], value=value, key=market_id.encode()
                        )
                    )
                    MARKET_RECORDS.labels(self.provider, run.feed, record.schema_name).inc()
                if state is not None:
                    states[market_id] = changed[market_id] = state
                known[market_id] = _Known(listing, tuple(outcomes))
            await asyncio.gather(*acks)
            run.published += len(acks)
            await self._states.save(changed.values())
            self._known.update(known)

    def _changes(
        self,
        listing: MarketListing,
        outcomes: Sequence[MarketOutcome],
        previous: ProviderMarketState | None,
        resolutions: bool,
        at: datetime,
    ) -> tuple[list[AvroRecord], ProviderMarketState | None]:
        """The records a market's new listing and outcomes call for, and its new state."""
        records: list[AvroRecord] = []
        state: ProviderMarketState | None = None
        updated = market_update(listing, outcomes, provider=self.provider, previous=previous, at=at)
        if updated is not None:
            records.append(updated[0])
            state = updated[1]
        if resolutions:
            resolved = market_resolution(
                listing, provider=self.provider, previous=state or previous
            )
            if resolved is not None:
                records.append(resolved[0])
                state = resolved[1]
        return records, state

    # -- one run ------------------------------------------------------------------------

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

    async def _publish_raw(self, run: _Run, fetched: Fetched, feed: str, key: str) -> RawPosition:
        return await publish_raw(
            self._producer,
            fetched,
            topic=self._topics[feed],
            key=key,
            provider=self.provider,
            execution_id=str(run.execution_id),
        )

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


ODDS_KEY = "odds:football"


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)
