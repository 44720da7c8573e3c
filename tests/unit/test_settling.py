"""The settlement state machine against the oracle, under any interleaving and crashes.

A simulated season (``producers.bets_simulator``) is published as the upstream app and the
market poller would: in time order, market events on 3 partitions of ``fixtures.markets``
(by market), bets on 2 partitions of ``entries.bets`` (by member). A worker holding both
bets partitions runs rounds as :mod:`streams.settlement` does: fetch some bets, catch the
market table up to "now" (every event published before the fetch, the market rule) in a
random interleaving of the market partitions, apply the events (a resolution settles in
random chunks, committed one by one), judge the bets. At random points it commits
(outputs, changelog records and bets offsets together, as one Kafka transaction) or
crashes (everything since the last commit is lost; the state is restored from the
committed changelog and the market events below its positions). With rewinds, a crash
may also be an operator moving the bets offsets back. The committed outputs must equal
``streams.rules.markets.oracle``: settlements, ledger, balances, rejections,
notifications and PnL boards, with no idempotency key twice.
"""

from __future__ import annotations

import random
import zlib
from collections import Counter
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from producers.bets_simulator import generate_bets, generate_markets
from schemas.codec import AvroCodec
from schemas.records import (
    BetKind,
    BetLeg,
    BetPlaced,
    BetSettled,
    EntryRejected,
    MarketOutcome,
    MarketResolved,
    MarketUpdated,
    RejectionReason,
    ResultCorrected,
    ScoreAwarded,
    SettlementStatus,
)
from schemas.records.outputs import LedgerEntryPosted
from streams.rules.boards import BoardLine
from streams.rules.markets import MarketEvent, correction_notice, next_settlement, oracle
from streams.settlement import OutputEncoder
from streams.settling import (
    Output,
    SettlingState,
    drain_changelog,
    event_time,
    first_settlement,
    ledger_posted,
    on_bet,
    on_market_event,
    pnl_award,
    replay_market_event,
    restore,
    resume,
)

MARKET_PARTITIONS = 3
BET_PARTITIONS = 2
#: A run crashes at most this often (each restart replays the market table).
MAX_CRASHES = 12
T0 = datetime(2026, 8, 3, tzinfo=UTC)


@dataclass(frozen=True)
class Published:
    """The two topics as published: per partition, (publish index, record) in log order."""

    markets: tuple[tuple[tuple[int, MarketEvent], ...], ...]
    bets: tuple[tuple[tuple[int, BetPlaced], ...], ...]
    events: tuple[MarketEvent, ...]
    bets_log: tuple[BetPlaced, ...]

    @property
    def end(self) -> int:
        return len(self.events) + len(self.bets_log)


def publish(events: tuple[MarketEvent, ...], bets: tuple[BetPlaced, ...]) -> Published:
    """Market events in time order, each bet after every event up to its ``placed_at``."""
    markets: list[list[tuple[int, MarketEvent]]] = [[] for _ in range(MARKET_PARTITIONS)]
    by_member: list[list[tuple[int, BetPlaced]]] = [[] for _ in range(BET_PARTITIONS)]
    index, pending = 0, list(events)

    def put(event: MarketEvent) -> None:
        nonlocal index
        markets[zlib.crc32(event.market_id.encode()) % MARKET_PARTITIONS].append((index, event))
        index += 1

    for bet in bets:  # bets in log order (redeliveries come later than their placement)
        while pending and event_time(pending[0]) <= bet.placed_at:
            put(pending.pop(0))
        by_member[zlib.crc32(bet.member_id.encode()) % BET_PARTITIONS].append((index, bet))
        index += 1
    for event in pending:
        put(event)
    return Published(
        tuple(tuple(p) for p in markets), tuple(tuple(p) for p in by_member), events, bets
    )


class Crash(Exception):
    """kill -9: what was not committed is lost."""


class Worker:
    """The I/O shell's rounds over the published topics, with commits and crashes."""

    def __init__(self, published: Published, seed: int, rewinds: bool) -> None:
        self.log = published
        self.rng = random.Random(seed)
        self.rewinds = rewinds
        self.committed: list[Output] = []
        self.changelog: dict[int, list[tuple[str, bytes | None]]] = {
            p: [] for p in range(BET_PARTITIONS)
        }
        self.committed_offsets = [0] * BET_PARTITIONS
        self.crashes = 0
        self.out: list[Output] = []
        self.states: dict[int, SettlingState] = {}
        self.offsets: list[int] = []

    def run(self) -> list[Output]:
        while True:
            try:
                self._attempt()
                return self.committed
            except Crash:
                self.crashes += 1
                if self.rewinds and self.rng.random() < 0.5:  # an operator rewinds the group
                    self.committed_offsets = [
                        self.rng.randint(0, o) for o in self.committed_offsets
                    ]

    def _crash(self, probability: float) -> None:
        if self.crashes < MAX_CRASHES and self.rng.random() < probability:
            raise Crash

    def _maybe(self, p_commit: float = 0.15, p_crash: float = 0.03) -> None:
        self._crash(p_crash)
        if self.rng.random() < p_commit:
            self._commit()

    def _commit(self) -> None:
        self.committed += self.out
        self.out = []
        for p, state in self.states.items():
            self.changelog[p] += drain_changelog(state)
        self.committed_offsets = list(self.offsets)

    def _attempt(self) -> None:
        # Restore: the changelog, then the market events below each state's positions.
        self.states = {p: restore(p, self.changelog[p]) for p in range(BET_PARTITIONS)}
        for mp, events in enumerate(self.log.markets):
            for offset, (_, event) in enumerate(events):
                for state in self.states.values():
                    replay_market_event(state, event, (mp, offset))
        self.offsets = list(self.committed_offsets)
        market_cursor = [
            min(s.market_positions.get(mp, 0) for s in self.states.values())
            for mp in range(MARKET_PARTITIONS)
        ]
        self.out = []
        for state in self.states.values():  # a settlement under way: finished first
            self._settle_pending(state)
        clock = 0
        while clock <= self.log.end or any(
            self.offsets[p] < len(self.log.bets[p]) for p in range(BET_PARTITIONS)
        ):
            clock += self.rng.randint(1, 6)
            # Fetch some bets published before now.
            fetched: dict[int, list[tuple[int, BetPlaced]]] = {}
            for p, log in enumerate(self.log.bets):
                take = self.rng.randint(0, 4)
                batch = [b for b in log[self.offsets[p] : self.offsets[p] + take] if b[0] < clock]
                fetched[p] = batch
            # The market rule: the table reaches every event published before the fetch.
            readable = [
                [e for e in log[market_cursor[mp] :] if e[0] < clock]
                for mp, log in enumerate(self.log.markets)
            ]
            if not any(readable) and not any(fetched.values()):
                continue
            while any(readable):
                mp = self.rng.choice([i for i, r in enumerate(readable) if r])
                _, event = readable[mp].pop(0)
                position = (mp, market_cursor[mp])
                market_cursor[mp] += 1
                for state in self.states.values():
                    chunk = self.rng.choice([None, 1, 2, 3])
                    _, outputs = on_market_event(state, event, position, chunk=chunk)
                    self.out += outputs
                    self._settle_pending(state)
                self._maybe(p_commit=0.05, p_crash=0.01)
            for p, batch in fetched.items():
                for _, bet in batch:
                    _, outputs = on_bet(self.states[p], bet, self.offsets[p])
                    self.out += outputs
                    self.offsets[p] += 1
            self._maybe()
        self._commit()

    def _settle_pending(self, state: SettlingState) -> None:
        while state.pending is not None:
            self._commit()  # each chunk commits with its progress
            self._crash(0.1)  # between two chunks
            _, outputs = resume(state, self.rng.choice([1, 2, 3]))
            self.out += outputs


@st.composite
def seasons(draw: st.DrawFn) -> tuple[Published, int]:
    markets = generate_markets(
        seed=draw(st.integers(0, 2**32 - 1)),
        binary=draw(st.integers(3, 7)),
        rounds=draw(st.integers(1, 2)),
        matches_per_round=draw(st.integers(2, 5)),
        void_rate=0.15,
        unresolved_rate=0.1,
    )
    bets = generate_bets(
        markets.events,
        members=draw(st.integers(1, 6)),
        bets=draw(st.integers(0, 60)),
        seed=draw(st.integers(0, 2**32 - 1)),
        invalid_rate=0.2,
        duplicate_rate=0.1,
    )
    return publish(markets.events, bets.bets), draw(st.integers(0, 2**32 - 1))


def assert_equals_oracle(outputs: list[Output], published: Published) -> None:
    expected = oracle(published.events, published.bets_log)
    keys = Counter(
        o.idempotency_key
        for o in outputs
        if isinstance(o, BetSettled | LedgerEntryPosted | ScoreAwarded)
    )
    assert [k for k, n in keys.items() if n > 1] == [], "an idempotency key twice"
    settled = [o for o in outputs if isinstance(o, BetSettled)]
    assert sorted(settled, key=_settlement_order) == list(expected.settlements)
    ledger = {o.idempotency_key: o for o in outputs if isinstance(o, LedgerEntryPosted)}
    assert ledger == {key: ledger_posted(entry) for key, entry in expected.ledger.items()}
    balances: dict[str, Decimal] = {}
    for entry in ledger.values():
        balances[entry.member_id] = balances.get(entry.member_id, Decimal(0)) + entry.amount
    assert balances == dict(expected.balances)
    rejected = [o for o in outputs if isinstance(o, EntryRejected)]
    assert len(rejected) == len(expected.rejected)
    assert {r.entry_id: r for r in rejected} == dict(expected.rejected)
    notices = [o for o in outputs if isinstance(o, ResultCorrected)]
    assert sorted(notices, key=repr) == sorted(expected.notifications, key=repr)
    assert pnl_boards(outputs) == expected.boards


def _settlement_order(s: BetSettled) -> tuple[datetime, str, int]:
    return (s.settled_at, s.bet_id, s.version)


def pnl_boards(outputs: list[Output]) -> dict[str, dict[str, BoardLine]]:
    sums: dict[str, dict[str, Decimal]] = {}
    for award in outputs:
        if isinstance(award, ScoreAwarded):
            for board in award.board_ids:
                line = sums.setdefault(board, {})
                line[award.member_id] = line.get(award.member_id, Decimal("0.00")) + (
                    award.points_delta
                )
    return {b: {m: BoardLine(m, t, 0) for m, t in lines.items()} for b, lines in sums.items()}


@settings(max_examples=150, deadline=None)
@given(seasons())
def test_committed_outputs_equal_the_oracle_under_crashes_and_interleavings(
    season: tuple[Published, int],
) -> None:
    published, seed = season
    assert_equals_oracle(Worker(published, seed, rewinds=False).run(), published)


@settings(max_examples=100, deadline=None)
@given(seasons())
def test_a_rewound_group_settles_nothing_twice(season: tuple[Published, int]) -> None:
    published, seed = season
    assert_equals_oracle(Worker(published, seed, rewinds=True).run(), published)


def test_a_season_with_every_case_equals_the_oracle_despite_crashes() -> None:
    markets = generate_markets(seed=5, binary=12, rounds=2, matches_per_round=5)
    bets = generate_bets(markets.events, members=25, bets=600, seed=6, invalid_rate=0.1)
    published = publish(markets.events, bets.bets)
    worker = Worker(published, seed=7, rewinds=False)
    outputs = worker.run()
    assert worker.crashes > 10
    assert_equals_oracle(outputs, published)
    expected = oracle(published.events, published.bets_log)
    # What the season covers: resettlements, parlays, voids, rejections.
    assert markets.reresolved and expected.notifications
    assert any(s.version > 1 for s in expected.settlements)
    assert any(b.kind is BetKind.PARLAY for b in expected.accepted.values())
    assert any(s.status is SettlementStatus.VOID for s in expected.settlements)
    assert len({r.reason for r in expected.rejected.values()}) >= 5


# --- single behaviours -------------------------------------------------------------------


def a_market(market_id: str = "pm-1", *, at: datetime = T0, closed: bool = False) -> MarketUpdated:
    return MarketUpdated(
        market_id=market_id,
        question="?",
        outcomes=(
            MarketOutcome(name="Yes", price=Decimal("0.4000")),
            MarketOutcome(name="No", price=Decimal("0.6000")),
        ),
        active=not closed,
        closed=closed,
        end_date=T0 + timedelta(days=10),
        version=1,
        updated_at=at,
    )


def a_bet(bet_id: str = "b1", *, member: str = "m1", hours: int = 1) -> BetPlaced:
    return BetPlaced(
        bet_id=bet_id,
        member_id=member,
        kind=BetKind.CREDIT,
        stake=Decimal("100.00"),
        legs=(BetLeg(market_id="pm-1", selection="Yes", price=Decimal("0.4000")),),
        placed_at=T0 + timedelta(hours=hours),
    )


def a_resolution(outcome: str | None, version: int = 1, days: int = 11) -> MarketResolved:
    return MarketResolved(
        market_id="pm-1",
        outcome=outcome,
        void=outcome is None,
        version=version,
        resolved_at=T0 + timedelta(days=days),
    )


def test_a_bet_judged_before_its_market_is_read_is_an_unknown_market() -> None:
    state, outputs = on_bet(SettlingState(0), a_bet(), 0)
    assert [type(o).__name__ for o in outputs] == ["LedgerEntryPosted", "EntryRejected"]
    assert isinstance(outputs[1], EntryRejected)
    assert outputs[1].reason is RejectionReason.UNKNOWN_MARKET
    on_market_event(state, a_market(), (0, 0))
    _, again = on_bet(state, a_bet("b2"), 1)
    assert [o.kind for o in again if isinstance(o, LedgerEntryPosted)] == ["stake"]


def test_duplicates_and_replays_change_nothing() -> None:
    state = SettlingState(0)
    on_market_event(state, a_market(), (0, 0))
    on_bet(state, a_bet(), 0)
    _, redelivered = on_bet(state, a_bet(), 1)
    assert redelivered == []
    _, settled = on_market_event(state, a_resolution("Yes"), (0, 1))
    assert [o.payout for o in settled if isinstance(o, BetSettled)] == [Decimal("250.00")]
    assert on_market_event(state, a_resolution("Yes"), (0, 1))[1] == []  # replayed position
    assert on_market_event(state, a_resolution("No"), (0, 2))[1] == []  # same version again
    _, corrected = on_market_event(state, a_resolution("No", version=2, days=12), (0, 3))
    assert [(type(o).__name__, getattr(o, "version", None)) for o in corrected] == [
        ("BetSettled", 2),
        ("LedgerEntryPosted", 2),
        ("ScoreAwarded", None),
        ("ResultCorrected", 2),
    ]
    award = next(o for o in corrected if isinstance(o, ScoreAwarded))
    moment = int((T0 + timedelta(days=12)).timestamp() * 1000)
    assert (award.points_delta, award.reason, award.idempotency_key) == (
        Decimal("-250.00"),
        "resettlement",
        f"pnl:pm-1:r2@0:m1:resettlement:v2:{moment}",
    )


def test_a_member_gets_one_pnl_award_per_slice_of_a_resolution() -> None:
    state = SettlingState(0)
    on_market_event(state, a_market(), (0, 0))
    for n, (bet_id, member) in enumerate([("b1", "m1"), ("b2", "m2"), ("b3", "m1"), ("b4", "m1")]):
        on_bet(state, a_bet(bet_id, member=member, hours=n + 1), n)
    # Settled by member, then bet id: b1, b3, b4 (m1) in the first slice, b2 (m2) next.
    _, first = on_market_event(state, a_resolution("Yes"), (0, 1), chunk=3)
    _, rest = resume(state, 3)
    awards = [o for o in first + rest if isinstance(o, ScoreAwarded)]
    moment = int((T0 + timedelta(days=11)).timestamp() * 1000)
    # Each winning 100.00 at 0.4000 pays 250.00: PnL +150.00 per bet.
    assert [(a.member_id, a.points_delta, a.idempotency_key) for a in awards] == [
        ("m1", Decimal("450.00"), f"pnl:pm-1:r1@0:m1:settlement:v1:{moment}"),
        ("m2", Decimal("150.00"), f"pnl:pm-1:r1@3:m2:settlement:v1:{moment}"),
    ]
    assert {a.source for a in awards} == {"market:pm-1:r1"}
    settled = [o for o in first + rest if isinstance(o, BetSettled)]
    assert [s.bet_id for s in settled] == ["b1", "b3", "b4", "b2"]  # one per bet, as before


def test_a_late_bet_on_a_resolved_market_settles_on_arrival() -> None:
    state = SettlingState(0)
    on_market_event(state, a_market(), (0, 0))
    on_market_event(state, a_resolution(None), (0, 1))  # void, before the bet is read
    _, outputs = on_bet(state, a_bet(), 0)
    kinds = [o.kind for o in outputs if isinstance(o, LedgerEntryPosted)]
    assert kinds == ["grant", "stake", "refund"]


def test_the_changelog_restores_the_state_and_a_chunk_under_way() -> None:
    state = SettlingState(1)
    on_market_event(state, a_market(), (2, 5))
    for n in range(5):
        on_bet(state, a_bet(f"b{n}", member=f"m{n % 2}"), n)
    on_bet(state, a_bet("bad", hours=24 * 20), 5)  # expired: rejected
    _, first = on_market_event(state, a_resolution("Yes"), (2, 6), chunk=2)
    assert state.pending is not None and state.pending.done == 2
    records = drain_changelog(state)
    assert drain_changelog(state) == []
    restored = restore(1, records)
    assert replay_market_event(restored, a_market(), (2, 5))
    assert replay_market_event(restored, a_resolution("Yes"), (2, 6))
    assert not replay_market_event(restored, a_resolution("No", 2), (2, 7))
    for name in ("accepted", "verdicts", "budgets", "by_market", "market_positions", "pending"):
        assert getattr(restored, name) == getattr(state, name), name
    assert restored.markets == state.markets
    _, rest = resume(restored, None)
    settled = [o.bet_id for o in first + rest if isinstance(o, BetSettled)]
    assert settled == ["b0", "b2", "b4", "b1", "b3"]  # by member (m0, m1), each once


def test_first_settlement_is_next_settlement() -> None:
    markets = generate_markets(seed=3, binary=10, rounds=2, matches_per_round=4)
    bets = generate_bets(markets.events, members=20, bets=400, seed=4)
    resolutions = [e for e in markets.events if isinstance(e, MarketResolved)]
    compared = 0
    for bet in bets.bets:
        for r in resolutions:
            if r.market_id in {leg.market_id for leg in bet.legs}:
                expected = next_settlement(bet, None, {r.market_id: r}, r.resolved_at)
                assert first_settlement(bet, r) == expected
                compared += 1
    assert compared > 300


@pytest.mark.parametrize("previous", [None, Decimal("12.50")])
def test_the_output_encoder_writes_what_the_codec_writes(previous: Decimal | None) -> None:
    codec = AvroCodec()
    encode = OutputEncoder(codec)
    at = T0 + timedelta(milliseconds=123)
    settled = BetSettled(
        bet_id="b-m00001-001",
        member_id="m00001",
        status=SettlementStatus.VOID,
        stake=Decimal("10000.00"),
        payout=Decimal("0.00"),
        version=2,
        idempotency_key="bet:b-m00001-001:settlement:v2",
        settled_at=at,
        previous_payout=previous,
        board_ids=("pnl:markets:overall", "pnl:markets:week:2026-W32"),
    )
    entry = LedgerEntryPosted(
        idempotency_key="k",
        member_id="m00001",
        kind="reversal",
        amount=Decimal("-99999999.99"),
        bet_id=None if previous is None else "b",
        version=None if previous is None else 3,
        posted_at=at,
    )
    rejected = EntryRejected(
        entry_topic="entries.bets",
        entry_id="b-1",
        member_id="m00001",
        reason=RejectionReason.PAYOUT_LIMIT,
        detail="x",
        rejected_at=at,
    )
    records: list[tuple[Output, str, str]] = [
        (settled, "settlements", "b-m00001-001"),
        (entry, "credits.ledger", "m00001"),
        (pnl_award(settled), "scores", "m00001"),
        (rejected, "entries.rejected", "m00001"),
    ]
    if previous is not None:
        notice = correction_notice(replace(settled, version=1, payout=previous), settled)
        records.append((notice, "notifications", "m00001"))
    for record, name, key in records:
        assert encode(record) == (name, key.encode(), codec.encode(record, name))
        assert codec.decode(encode(record)[2]) == record


_money = st.decimals(
    min_value=Decimal("-99999999999999.99"),
    max_value=Decimal("99999999999999.99"),
    places=2,
    allow_nan=False,
    allow_infinity=False,
)
_text = st.text(max_size=70)
_times = st.datetimes(
    min_value=datetime(1971, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)


@settings(max_examples=300, deadline=None)
@given(
    _text,
    _text,
    st.sampled_from(SettlementStatus),
    _money,
    _money,
    st.integers(1, 2**31 - 1),
    st.none() | _money,
    st.lists(_text, max_size=3),
    _times,
    st.none() | st.integers(0, 2**31 - 1),
)
def test_the_output_encoder_writes_any_value_as_the_codec(
    bet_id: str,
    member_id: str,
    status: SettlementStatus,
    stake: Decimal,
    payout: Decimal,
    version: int,
    previous: Decimal | None,
    boards: list[str],
    at: datetime,
    entry_version: int | None,
) -> None:
    codec = AvroCodec()
    encode = OutputEncoder(codec)
    settled = BetSettled(
        bet_id=bet_id,
        member_id=member_id,
        status=status,
        stake=stake,
        payout=payout,
        version=version,
        idempotency_key=f"{bet_id}:{version}",
        settled_at=at,
        previous_payout=previous,
        board_ids=tuple(boards),
    )
    entry = LedgerEntryPosted(
        idempotency_key=bet_id + member_id,
        member_id=member_id,
        kind=member_id[:5],
        amount=payout,
        bet_id=None if entry_version is None else bet_id,
        version=entry_version,
        posted_at=at,
    )
    award = replace(pnl_award(settled), total=previous, exact_delta=-version)
    for record, name in ((settled, "settlements"), (entry, "credits.ledger"), (award, "scores")):
        assert encode(record)[2] == codec.encode(record, name)
        assert encode(record)[2] == codec.encode(record, name)  # from the caches
