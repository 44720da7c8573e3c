"""The settlement processor: bets judged and settled against the market table, exactly once.

In: ``entries.bets`` (keyed by member_id; this instance's partitions, assigned) and every
partition of ``fixtures.markets`` (the market table is global: each bets partition's state
sees every market event). Out: ``credits.ledger``, ``settlements``, ``scores`` (the PnL, as
ScoreAwarded, so the boards stage, sinks and API serve PnL boards unchanged),
``entries.rejected``, ``notifications``, and the changelog ``streams.settlement.state``.

A plain aiokafka consume-transform-produce loop with Kafka transactions, like the boards
stage (:mod:`streams.boards`): one transactional producer for the partition set, its id
derived from the prefix and the partitions (a restarted instance fences the dead one and
aborts its open transaction), read_committed in, the bets offsets sent to the
transaction, the state's changelog records written in it. Each round:

1. fetch a batch of bets;
2. read ``fixtures.markets`` up to its end offsets taken now (the market rule of
   :mod:`streams.settling`), merged across partitions by event time, and apply each event
   to every partition's state; a resolution settles the bets on its market, committing
   every :data:`SETTLE_CHUNK` bets with the progress in the changelog;
3. judge the bets; commit outputs, changelog records and offsets in one transaction.

On start (and after an aborted transaction) the state is rebuilt: the changelog read to
its end, then the market events below each partition's recorded positions put back
silently, the bets consumer at the committed offsets, the markets consumer at the
recorded positions (events already applied are skipped), and a settlement under way is
finished first. docs/markets.md has the design.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import heapq
import os
import time
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError, ProducerFenced
from prometheus_client import Counter, Histogram

from core.exceptions import SchemaDecodeError
from core.kafka import BatchSender, admin_client, consumer, producer
from core.logging import get_logger
from core.settings import Settings
from schemas.catalog import (
    CREDITS_LEDGER,
    ENTRIES_BETS,
    ENTRIES_REJECTED,
    FIXTURES_MARKETS,
    NOTIFICATIONS,
    SCORES,
    SETTLEMENT_STATE,
    SETTLEMENTS,
    spec,
    topic,
)
from schemas.codec import AvroCodec
from schemas.fast_decode import RecordDecoder
from schemas.fast_encode import RecordEncoder
from schemas.records import (
    AvroRecord,
    BetPlaced,
    BetSettled,
    EntryRejected,
    MarketResolved,
    MarketUpdated,
    ScoreAwarded,
    SettlementStatus,
)
from schemas.records.outputs import LedgerEntryPosted
from streams.dlq import dead_letter
from streams.rules.markets import MarketEvent
from streams.settling import (
    Output,
    SettlingState,
    drain_changelog,
    event_time,
    on_bet,
    on_market_event,
    pass_position,
    replay_market_event,
    restore,
    resume,
)
from streams.state import committed_offset, read_partition

log = get_logger("streams.settlement")

#: Bets fetched (and judged) per transaction.
MAX_BATCH = 5_000
#: Bets of one partition settled per transaction when a market resolves.
SETTLE_CHUNK = 2_000
#: Bets settled between two hand-overs to the producer (SETTLE_CHUNK is a multiple of it).
SETTLE_SLICE = 2_000
#: How long catching the market table up to its end offsets may take.
CATCH_UP_TIMEOUT_S = 60.0
#: Wait before the clients start again after a broker error.
RESTART_BACKOFF_S = 1.0

RECORDS_IN = Counter("scoreline_settlement_records_in", "Records the settlement read", ["topic"])
RECORDS_OUT = Counter(
    "scoreline_settlement_records_out", "Records the settlement produced", ["topic"]
)
SETTLE_SECONDS = Histogram(
    "scoreline_settlement_resolution_seconds",
    "From reading a MarketResolved to the commit of its last settlement",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND = timedelta(milliseconds=1)
#: A market record as read: (partition, offset, key, value, the event or why not).
_Read = tuple[int, int, bytes | None, bytes | None, MarketEvent | SchemaDecodeError]


class SettlementProcessor:
    """Runs the settlement over some (by default all) partitions of ``entries.bets``."""

    def __init__(self, settings: Settings, partitions: Iterable[int] | None = None) -> None:
        self.settings = settings
        self.prefix = settings.topic_prefix
        self.codec = AvroCodec.from_settings(settings)
        self.decode = RecordDecoder(self.codec, ["BetPlaced", "MarketUpdated", "MarketResolved"])
        count = spec(ENTRIES_BETS).partitions
        self.partitions = sorted(set(partitions) if partitions is not None else range(count))
        self.bets_topic = topic(ENTRIES_BETS, self.prefix)
        self.markets_topic = topic(FIXTURES_MARKETS, self.prefix)
        self.state_topic = topic(SETTLEMENT_STATE, self.prefix)
        self.bets_tps = [TopicPartition(self.bets_topic, p) for p in self.partitions]
        self.market_tps = [
            TopicPartition(self.markets_topic, p) for p in range(spec(FIXTURES_MARKETS).partitions)
        ]
        self.group_id = f"{self.prefix}scoreline-settlement"
        suffix = "-".join(str(p) for p in self.partitions)
        self.transactional_id = f"{self.group_id}-{suffix}"
        self.states: dict[int, SettlingState] = {}
        #: Next offset to read of each bets partition (what the transactions commit).
        self.positions: dict[TopicPartition, int] = {}
        self._topics = {
            name: topic(name, self.prefix)
            for name in (SETTLEMENTS, CREDITS_LEDGER, SCORES, ENTRIES_REJECTED, NOTIFICATIONS)
        }
        self._encode = OutputEncoder(self.codec)
        self.stop = asyncio.Event()

    # -- the loop -------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        """Settle until ``stop`` is set or the task is cancelled.

        A broker error (an aborted transaction, a missing topic, a stalled read) restarts
        the clients and rebuilds the state from Kafka; being fenced (another instance took
        these partitions) ends the task; anything else is a bug and ends the process
        (crash-only: the restart rebuilds the state from the log).
        """
        try:
            while not stop.is_set():
                try:
                    await self._run(stop)
                except ProducerFenced:
                    log.error("settlement.fenced", transactional_id=self.transactional_id)
                    return
                except (KafkaError, TimeoutError) as e:
                    log.warning("settlement.restart", error=type(e).__name__, detail=str(e))
                    await asyncio.sleep(RESTART_BACKOFF_S)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            log.critical("settlement.crash", error=type(e).__name__, detail=str(e), exc_info=e)
            os._exit(70)
        finally:
            self.codec.close()

    async def _run(self, stop: asyncio.Event) -> None:
        out = producer(
            self.settings,
            transactional_id=self.transactional_id,
            linger_ms=20,
            max_batch_size=1 << 20,  # whole batches from BatchSender
        )
        bets = consumer(self.settings, max_partition_fetch_bytes=8 * 1024 * 1024)
        markets = consumer(self.settings)
        admin = admin_client(self.settings)
        try:
            await out.start()  # init_transactions: fences an older instance, aborts its txn
            await bets.start()
            await markets.start()
            await admin.start()
            await self._restore(out, bets, markets, admin)
            await self._loop(out, bets, markets, stop)
        finally:
            await bets.stop()
            await markets.stop()
            await out.stop()
            await admin.close()

    async def _loop(
        self,
        out: AIOKafkaProducer,
        bets: AIOKafkaConsumer,
        markets: AIOKafkaConsumer,
        stop: asyncio.Event,
    ) -> None:
        while not stop.is_set():
            batch = await bets.getmany(timeout_ms=100, max_records=MAX_BATCH)
            # The market rule: the table reaches the end offsets taken after the fetch.
            events = await self._catch_up(markets)
            if events or any(batch.values()):
                await self._process(out, events, batch)

    async def _catch_up(self, markets: AIOKafkaConsumer) -> list[_Read]:
        """The market records up to the end offsets as of now, merged by event time."""
        ends = await markets.end_offsets(self.market_tps)
        lagging = [tp for tp in self.market_tps if await markets.position(tp) < ends[tp]]
        read: dict[int, list[_Read]] = {}
        deadline = time.monotonic() + CATCH_UP_TIMEOUT_S
        while lagging:
            batch = await markets.getmany(*lagging, timeout_ms=200, max_records=10_000)
            for tp, records in batch.items():
                found = read.setdefault(tp.partition, [])
                found += [
                    (tp.partition, r.offset, r.key, r.value, self._market_event(r.value))
                    for r in records
                ]
            lagging = [tp for tp in lagging if await markets.position(tp) < ends[tp]]
            if lagging and time.monotonic() > deadline:
                raise KafkaError(f"fixtures.markets did not reach {ends} in time")
        if read:
            RECORDS_IN.labels(FIXTURES_MARKETS).inc(sum(map(len, read.values())))
        return list(heapq.merge(*read.values(), key=_read_time))

    async def _process(
        self,
        out: AIOKafkaProducer,
        events: Sequence[_Read],
        batch: dict[TopicPartition, list[Any]],
    ) -> None:
        """One transaction (more when a resolution commits in chunks)."""
        resolved: list[float] = []
        async with out.transaction():
            sender = await self._sender(out)
            sender = await self._settle_pending(out, sender)  # under way after a restart
            for partition, offset, key, value, event in events:
                position = (partition, offset)
                if isinstance(event, SchemaDecodeError):
                    passed = [pass_position(state, position) for state in self.states.values()]
                    if any(passed):
                        tp = TopicPartition(self.markets_topic, partition)
                        await dead_letter(out, self.prefix, tp, offset, key, value, event)
                    continue
                if isinstance(event, MarketResolved):
                    resolved.append(time.monotonic())
                for state in self.states.values():
                    with gc_paused():
                        _, outputs = on_market_event(state, event, position, chunk=SETTLE_SLICE)
                        self._append(sender, outputs)
                    if state.pending is not None:
                        await self._settle_chunk(sender, state, SETTLE_SLICE)
                sender = await self._settle_pending(out, sender)
            for tp, records in batch.items():
                await self._judge(out, sender, tp, records)
            await self._commit_open(out, sender)
        now = time.monotonic()
        for started in resolved:
            SETTLE_SECONDS.observe(now - started)

    async def _settle_pending(self, out: AIOKafkaProducer, sender: BatchSender) -> BatchSender:
        """While a settlement is under way: commit, then the next chunk of each partition."""
        while any(state.pending is not None for state in self.states.values()):
            await self._commit_open(out, sender)
            await out.commit_transaction()
            await out.begin_transaction()
            sender = await self._sender(out)
            for state in self.states.values():
                if state.pending is None:
                    continue
                log.info(
                    "settlement.chunk_committed",
                    partition=state.partition,
                    market_id=state.pending.market_id,
                    done=state.pending.done,
                )
                await self._settle_chunk(sender, state)
        return sender

    async def _settle_chunk(self, sender: BatchSender, state: SettlingState, done: int = 0) -> None:
        """Settle up to :data:`SETTLE_CHUNK` bets of the settlement under way, a slice at a
        time: each slice goes to the producer, which sends it while the next is settled."""
        await sender.flush()
        await asyncio.sleep(0)  # the producer's sender task runs
        while state.pending is not None and done < SETTLE_CHUNK:
            with gc_paused():
                _, outputs = resume(state, SETTLE_SLICE)
                self._append(sender, outputs)
            done += SETTLE_SLICE
            await sender.flush()
            await asyncio.sleep(0)

    async def _judge(
        self, out: AIOKafkaProducer, sender: BatchSender, tp: TopicPartition, records: list[Any]
    ) -> None:
        state = self.states[tp.partition]
        poison: list[tuple[Any, SchemaDecodeError]] = []
        with gc_paused():
            for record in records:
                bet = self._bet(record.value)
                if isinstance(bet, SchemaDecodeError):
                    poison.append((record, bet))
                    continue
                _, outputs = on_bet(state, bet, record.offset)
                self._append(sender, outputs)
        for record, error in poison:
            await dead_letter(out, self.prefix, tp, record.offset, record.key, record.value, error)
        if records:
            self.positions[tp] = records[-1].offset + 1
            RECORDS_IN.labels(ENTRIES_BETS).inc(len(records))

    async def _commit_open(self, out: AIOKafkaProducer, sender: BatchSender) -> None:
        """Put the state and the offsets in the open transaction (the caller commits it)."""
        await sender.flush()
        for partition, state in self.states.items():
            # Whole batches to the partition's own changelog partition (one record per bet).
            builder = out.create_batch()
            for key, value in drain_changelog(state):
                if builder.append(key=key.encode(), value=value, timestamp=None) is None:
                    await out.send_batch(builder, self.state_topic, partition=partition)
                    builder = out.create_batch()
                    builder.append(key=key.encode(), value=value, timestamp=None)
            if builder.record_count():
                await out.send_batch(builder, self.state_topic, partition=partition)
        await out.send_offsets_to_transaction(dict(self.positions), self.group_id)

    # -- output ---------------------------------------------------------------------
    async def _sender(self, out: AIOKafkaProducer) -> BatchSender:
        sender = BatchSender(out)
        for name in self._topics.values():
            await sender.open(name)
        return sender

    def _append(self, sender: BatchSender, outputs: Sequence[Output]) -> None:
        names, encode = self._topics, self._encode
        counts: dict[str, int] = {}
        for output in outputs:
            name, key, value = encode(output)
            sender.append(names[name], key, value)
            counts[name] = counts.get(name, 0) + 1
        for name, count in counts.items():
            RECORDS_OUT.labels(name).inc(count)

    # -- state ----------------------------------------------------------------------
    async def _restore(
        self,
        out: AIOKafkaProducer,
        bets: AIOKafkaConsumer,
        markets: AIOKafkaConsumer,
        admin: AIOKafkaAdminClient,
    ) -> None:
        started = time.perf_counter()
        states: dict[int, SettlingState] = {}
        for partition in self.partitions:
            changelog = TopicPartition(self.state_topic, partition)
            records = [
                (key.decode(), value)
                async for _offset, key, value in read_partition(bets, changelog, None)
                if key is not None
            ]
            states[partition] = restore(partition, records)
        replayed = 0
        for tp in self.market_tps:
            until = max(s.market_positions.get(tp.partition, 0) for s in states.values())
            if until == 0:
                continue
            async for offset, _key, value in read_partition(markets, tp, until):
                event = self._market_event(value)
                if not isinstance(event, SchemaDecodeError):
                    for state in states.values():
                        replayed += replay_market_event(state, event, (tp.partition, offset))
        self.states = states
        self.positions = {
            tp: await committed_offset(admin, self.group_id, tp) for tp in self.bets_tps
        }
        bets.assign(self.bets_tps)
        for tp, offset in self.positions.items():
            bets.seek(tp, offset)
        markets.assign(self.market_tps)
        for tp in self.market_tps:
            markets.seek(tp, min(s.market_positions.get(tp.partition, 0) for s in states.values()))
        log.info(
            "settlement.restored",
            partitions=self.partitions,
            bets=sum(len(s.verdicts) for s in states.values()),
            accepted=sum(len(s.accepted) for s in states.values()),
            market_events=replayed,
            positions={tp.partition: o for tp, o in self.positions.items()},
            seconds=round(time.perf_counter() - started, 3),
        )
        if any(s.pending is not None for s in states.values()):
            await self._process(out, [], {})  # finish a settlement under way first

    def _market_event(self, value: bytes | None) -> MarketEvent | SchemaDecodeError:
        record = self._decoded(value)
        if isinstance(record, MarketUpdated | MarketResolved | SchemaDecodeError):
            return record
        return SchemaDecodeError(f"{record.schema_name} is not a value of {self.markets_topic}")

    def _bet(self, value: bytes | None) -> BetPlaced | SchemaDecodeError:
        record = self._decoded(value)
        if isinstance(record, BetPlaced | SchemaDecodeError):
            return record
        return SchemaDecodeError(f"{record.schema_name} is not a value of {self.bets_topic}")

    def _decoded(self, value: bytes | None) -> AvroRecord | SchemaDecodeError:
        try:
            return self.decode(value or b"")
        except SchemaDecodeError as e:
            return e


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off for a CPU-bound slice (no await inside).

    Settling allocates a few records per bet while the state holds every bet: the full
    collections that the allocations trigger scan the whole state, about 40% of the time
    of a big settlement. Reference counting frees these records (they form no cycles);
    the collector runs again after the slice.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def register(app: Any, settings: Settings) -> SettlementProcessor:
    """Run the settlement as a task of the worker's Faust app (``scoreline worker``).

    It stops when the worker cancels its tasks; ``processor.stop`` stops it earlier.
    """
    processor = SettlementProcessor(settings)

    async def settlement() -> None:
        await processor.run(processor.stop)

    app.task(settlement)
    return processor


def _read_time(read: _Read) -> datetime:
    event = read[4]
    return _EPOCH if isinstance(event, SchemaDecodeError) else event_time(event)


class OutputEncoder:
    """(catalog topic, key, value bytes) of each output, byte for byte what the codec writes.

    The per-bet records (BetSettled, LedgerEntryPosted, ScoreAwarded: hundreds of thousands
    when a big market resolves) go through the compiled encoders of
    :mod:`schemas.fast_encode`; the other records through the codec.
    ``tests/unit/test_settling.py`` checks the bytes against the codec.
    """

    def __init__(self, codec: AvroCodec) -> None:
        self.codec = codec
        now, zero = datetime.now(UTC), Decimal("0.00")
        settled = BetSettled(
            bet_id="b",
            member_id="m",
            status=SettlementStatus.LOST,
            stake=zero,
            payout=zero,
            version=1,
            idempotency_key="k",
            settled_at=now,
        )
        entry = LedgerEntryPosted(
            idempotency_key="k", member_id="m", kind="", amount=zero, posted_at=now
        )
        award = ScoreAwarded(
            member_id="m",
            board_ids=(),
            points_delta=zero,
            reason="",
            source="",
            rule_version=0,
            result_version=0,
            idempotency_key="k",
            awarded_at=now,
        )
        self._settled = RecordEncoder(codec, "BetSettled", SETTLEMENTS, settled).encode
        self._entry = RecordEncoder(codec, "LedgerEntryPosted", CREDITS_LEDGER, entry).encode
        self._award = RecordEncoder(codec, "ScoreAwarded", SCORES, award).encode

    def __call__(self, output: Output) -> tuple[str, bytes, bytes]:
        if isinstance(output, LedgerEntryPosted):
            return CREDITS_LEDGER, output.member_id.encode(), self._entry(output)
        if isinstance(output, BetSettled):
            return SETTLEMENTS, output.bet_id.encode(), self._settled(output)
        if isinstance(output, ScoreAwarded):
            return SCORES, output.member_id.encode(), self._award(output)
        name = ENTRIES_REJECTED if isinstance(output, EntryRejected) else NOTIFICATIONS
        return name, output.member_id.encode(), self.codec.encode(output, name)
