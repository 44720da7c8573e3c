"""Bet settlement as a state machine per ``entries.bets`` partition: pure, so tests drive it.

The state of partition ``p`` (:class:`SettlingState`):

- the **market table**: a :class:`~streams.rules.markets.MarketTimeline` per market, from
  every partition of ``fixtures.markets`` (a global table: each partition's state sees every
  market event), and ``market_positions``, the next offset of each ``fixtures.markets``
  partition this state has applied;
- the **members** (a :class:`~streams.rules.markets.Budget` each) and the **verdicts** of
  every bet judged (bet_id: accepted or not), the accepted bets, indexed by market;
- ``pending``: a settlement under way, committed in chunks (:func:`resume`).

The settlement versions emitted for a bet are not stored: they are
``settlement_history(bet, the resolutions of its markets this state applied)``, so they
follow from the applied market events alone (a chunk under way counts for the bets it
covered). On a new resolution the versions of that history not emitted yet go out.

**Processing order** (``streams.rules.markets``): a market's events in partition order; a
member's bets in log order (``entries.bets`` is keyed by member_id). **The market rule**: a
bet must not be judged before the market table has read ``fixtures.markets`` up to the end
offsets (read_committed) taken *after* the bet was read; the I/O shell
(:mod:`streams.settlement`) reads those offsets after each fetch of bets and catches the
table up before it judges them. The upstream app publishes a bet only after the market
events its member saw, so every event before ``placed_at`` is in the table when the bet is
judged, and :meth:`MarketTimeline.at` ignores the ones after. A market not listed then is
``unknown_market``.

**Idempotency**: a market event at a position below ``market_positions`` (or a resolution
whose market and version are known) changes nothing; a bet_id already judged changes
nothing (the first read stands). The state is saved as changelog records
(:func:`drain_changelog`, :func:`restore`) in the same transaction as the outputs: one
record per judged bet (``bet:{bet_id}``, written once) and one ``progress:{p}`` record
(positions and the pending chunk). After a restore the market events below the positions
are put back with :func:`replay_market_event`, which emits nothing.

**Known limit** (as in ``streams.rules.markets``): versions follow the resolutions in event
time, so a parlay whose market is re-resolved, read after a resolution of another of its
markets that is later in event time, would need a history that is not an extension of the
one emitted. The shell merges each catch-up of the market table by event time, so that
takes the two resolutions read in different catch-ups, the later one first.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from schemas.catalog import ENTRIES_BETS
from schemas.fast_decode import builder
from schemas.records import (
    BetKind,
    BetLeg,
    BetPlaced,
    BetSettled,
    EntryRejected,
    Game,
    MarketResolved,
    MarketUpdated,
    ResultCorrected,
    ScoreAwarded,
)
from schemas.records.outputs import LedgerEntryPosted
from streams.rules.markets import (
    Budget,
    LedgerEntry,
    MarketEvent,
    MarketTimeline,
    correction_notice,
    game_of,
    grant_entry,
    pnl_board_ids,
    pnl_delta,
    rejection_record,
    settle,
    settlement_entries,
    settlement_history,
    settlement_key,
    stake_entry,
    validate,
    views_at,
)

__all__ = [
    "PROGRESS_KEY",
    "Output",
    "Pending",
    "Position",
    "SettlingState",
    "drain_changelog",
    "event_time",
    "first_settlement",
    "ledger_posted",
    "on_bet",
    "on_market_event",
    "pass_position",
    "pnl_award",
    "pnl_by_member",
    "replay_market_event",
    "restore",
    "resume",
    "settlement_outputs",
]

Output = BetSettled | LedgerEntryPosted | ScoreAwarded | EntryRejected | ResultCorrected
#: Where a market event is: (``fixtures.markets`` partition, offset).
Position = tuple[int, int]
#: The changelog key of partition p's progress record is ``progress:{p}``; a bet's ``bet:{bet_id}``.
PROGRESS_KEY = "progress:"
_BET_PREFIX = "bet:"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


@dataclass(frozen=True, slots=True)
class Pending:
    """A resolution being settled: ``done`` of the market's accepted bets are out."""

    market_id: str
    version: int
    done: int = 0


@dataclass(slots=True)
class SettlingState:
    """One ``entries.bets`` partition: updated in place and returned by the functions."""

    partition: int
    markets: dict[str, MarketTimeline] = field(default_factory=dict)
    market_positions: dict[int, int] = field(default_factory=dict)
    next_offset: int = 0
    budgets: dict[str, Budget] = field(default_factory=dict)
    verdicts: dict[str, bool] = field(default_factory=dict)
    accepted: dict[str, BetPlaced] = field(default_factory=dict)
    by_market: dict[str, list[str]] = field(default_factory=dict)
    pending: Pending | None = None
    #: Changelog records not drained yet (:func:`drain_changelog`).
    unsaved: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    progress_changed: bool = False
    #: The settling order of the resolution under way, by (market, version, bets): not
    #: saved, a function of the bets alone (:func:`_by_member`), computed again after a
    #: restore; kept so the slices of a resolution do not sort its bets again each.
    order: tuple[tuple[str, int, int], list[str]] | None = field(default=None, compare=False)

    def applied(self, position: Position) -> bool:
        """Whether the market event at ``position`` is in this state already."""
        return position[1] < self.market_positions.get(position[0], 0)


# --- bets --------------------------------------------------------------------------------


def on_bet(state: SettlingState, bet: BetPlaced, offset: int) -> tuple[SettlingState, list[Output]]:
    """Judge a bet read at ``offset`` against the market table as of its ``placed_at``.

    The member's first bet posts the grant; an accepted bet posts its stake and, when its
    markets are resolved already, its settlement versions; a rejected one an EntryRejected.
    The caller must have applied the market rule (module docstring) first.
    """
    outputs = _finish_pending(state)
    state.next_offset = max(state.next_offset, offset + 1)
    state.progress_changed = True
    if bet.bet_id in state.verdicts:
        return state, outputs  # a redelivery: the first read stands
    budget = state.budgets.get(bet.member_id)
    if budget is None:
        budget = Budget()
        outputs.append(ledger_posted(grant_entry(bet.member_id, bet.placed_at)))
    rejection = validate(bet, views_at(bet, state.markets), budget)
    record: dict[str, Any] = {"member": bet.member_id, "offset": offset}
    if rejection is not None:
        state.budgets[bet.member_id] = budget
        state.verdicts[bet.bet_id] = False
        state.unsaved.append((_BET_PREFIX + bet.bet_id, record | {"rejected": rejection.reason}))
        outputs.append(rejection_record(bet, rejection, ENTRIES_BETS))
        return state, outputs
    _accept(state, bet, budget)
    state.unsaved.append((_BET_PREFIX + bet.bet_id, record | {"bet": _bet_json(bet)}))
    outputs.append(ledger_posted(stake_entry(bet)))
    outputs += settlement_outputs(settlement_history(bet, _resolutions(state, bet)), None)
    return state, outputs


def _accept(state: SettlingState, bet: BetPlaced, budget: Budget) -> None:
    state.budgets[bet.member_id] = budget.accept(bet)
    state.verdicts[bet.bet_id] = True
    state.accepted[bet.bet_id] = bet
    for leg in bet.legs:
        state.by_market.setdefault(leg.market_id, []).append(bet.bet_id)


def _resolutions(state: SettlingState, bet: BetPlaced) -> list[MarketResolved]:
    found: list[MarketResolved] = []
    for leg in bet.legs:
        timeline = state.markets.get(leg.market_id)
        if timeline is not None:
            found += timeline.resolutions
    return found


# --- market events -----------------------------------------------------------------------


def on_market_event(
    state: SettlingState, event: MarketEvent, position: Position, *, chunk: int | None = None
) -> tuple[SettlingState, list[Output]]:
    """Apply a market event read at ``position``; a resolution settles the bets on its market.

    With ``chunk``, at most that many bets are settled per call: while ``state.pending`` is
    set, the caller commits the outputs with the state and calls :func:`resume`.
    """
    outputs = _finish_pending(state)
    if not pass_position(state, position):
        return state, outputs  # applied already (a replay after a crash)
    timeline = state.markets.get(event.market_id) or MarketTimeline(event.market_id)
    if isinstance(event, MarketResolved):
        if any(r.version == event.version for r in timeline.resolutions):
            return state, outputs  # a duplicate resolution: the first stands
        state.markets[event.market_id] = timeline.add(event)
        if state.by_market.get(event.market_id):
            state.pending = Pending(event.market_id, event.version)
            state, more = resume(state, chunk)
            outputs += more
        return state, outputs
    state.markets[event.market_id] = timeline.add(event)
    return state, outputs


def pass_position(state: SettlingState, position: Position) -> bool:
    """Mark ``position`` applied; False when it was already (for records that are no event)."""
    if state.applied(position):
        return False
    state.market_positions[position[0]] = position[1] + 1
    state.progress_changed = True
    return True


def replay_market_event(state: SettlingState, event: MarketEvent, position: Position) -> bool:
    """Put back an event this state applied before a restart (no outputs); False if it did not."""
    if not state.applied(position):
        return False
    timeline = state.markets.get(event.market_id) or MarketTimeline(event.market_id)
    if isinstance(event, MarketResolved) and any(
        r.version == event.version for r in timeline.resolutions
    ):
        return True
    state.markets[event.market_id] = timeline.add(event)
    return True


def resume(state: SettlingState, chunk: int | None = None) -> tuple[SettlingState, list[Output]]:
    """Settle the next ``chunk`` (None: all) bets of the resolution under way."""
    pending = state.pending
    if pending is None:
        return state, []
    units = _by_member(state, pending)
    end = len(units) if chunk is None else min(len(units), pending.done + chunk)
    resolution = _resolution(state, pending)
    outputs: list[Output] = []
    for bet_id in units[pending.done : end]:
        outputs += _resettle(state.accepted[bet_id], resolution, state)
    outputs = pnl_by_member(outputs, pending)
    state.pending = replace(pending, done=end) if end < len(units) else None
    state.progress_changed = True
    return state, outputs


def pnl_by_member(outputs: list[Output], pending: Pending) -> list[Output]:
    """The PnL awards of one slice of a resolution, one per member (and kind of change).

    A resolution settles every bet on its market; a member with many bets on it would get
    as many awards on ``scores``, each a line to fold, two board lines to project and rows
    to write downstream. One award per (member, boards, reason, settlement version,
    moment) carries their sum instead, and the boards hold the same totals (the
    benchmark's 100,000 bets of 20,000 members make about 20,000 awards, not 100,000).
    Its key, ``pnl:{market}:r{resolution}@{done}:{member}:{reason}:v{version}:{ms}``
    (``ms``: the moment, a parlay settles at its last leg's), names the slice (``done``:
    the bets of the resolution settled before it), which commits once with its progress,
    so a key never stands for other bets. Other outputs keep their place; the awards go
    out where their first one was.
    """
    groups: dict[tuple[Any, ...], list[ScoreAwarded]] = {}
    for output in outputs:
        if isinstance(output, ScoreAwarded):
            groups.setdefault(_pnl_group(output), []).append(output)
    if not groups:
        return outputs
    at = f"pnl:{pending.market_id}:r{pending.version}@{pending.done}"
    merged: dict[tuple[Any, ...], ScoreAwarded] = {}
    for group, awards in groups.items():
        member_id, board_ids, reason, version, awarded_at = group
        merged[group] = _build_award(
            member_id=member_id,
            board_ids=board_ids,
            points_delta=sum((a.points_delta for a in awards), Decimal("0.00")),
            exact_delta=0,
            total=None,
            reason=reason,
            source=f"market:{pending.market_id}:r{pending.version}",
            rule_version=0,
            result_version=version,
            idempotency_key=f"{at}:{member_id}:{reason}:v{version}:{_millis(awarded_at)}",
            awarded_at=awarded_at,
        )
    out: list[Output] = []
    for output in outputs:
        if not isinstance(output, ScoreAwarded):
            out.append(output)
            continue
        award = merged.pop(_pnl_group(output), None)
        if award is not None:
            out.append(award)
    return out


def _millis(moment: datetime) -> int:
    return (moment - _EPOCH) // _MS


def _pnl_group(award: ScoreAwarded) -> tuple[Any, ...]:
    return (award.member_id, award.board_ids, award.reason, award.result_version, award.awarded_at)


def _by_member(state: SettlingState, pending: Pending) -> list[str]:
    """A resolution's bets in the order they settle: by member, then bet id.

    A total order of the set alone, so the same after a restore, whatever order the state
    holds them in; and the set does not change while a resolution is under way (any other
    event finishes it first). A member's bets are then next to each other, and a slice
    makes one PnL award per member (:func:`pnl_by_member`).
    """
    units = state.by_market.get(pending.market_id, [])
    key = (pending.market_id, pending.version, len(units))
    if state.order is None or state.order[0] != key:
        accepted = state.accepted
        ordered = sorted(units, key=lambda bet_id: (accepted[bet_id].member_id, bet_id))
        state.order = (key, ordered)
    return state.order[1]


def _finish_pending(state: SettlingState) -> list[Output]:
    """A call that is not :func:`resume` first settles what is under way, all at once."""
    return resume(state)[1] if state.pending is not None else []


def _resolution(state: SettlingState, pending: Pending) -> MarketResolved:
    for r in state.markets[pending.market_id].resolutions:
        if r.version == pending.version:
            return r
    raise LookupError(f"resolution v{pending.version} of {pending.market_id} is not in the table")


def _resettle(bet: BetPlaced, resolution: MarketResolved, state: SettlingState) -> list[Output]:
    """The versions of ``bet`` that ``resolution`` adds to those emitted before it."""
    known = _resolutions(state, bet)
    if len(known) == 1:  # the common case: a single on its market's first resolution
        first = first_settlement(bet, resolution)
        return settlement_outputs([first] if first is not None else [], None)
    before = [r for r in known if r is not resolution]
    emitted = settlement_history(bet, before)
    history = settlement_history(bet, known)
    return settlement_outputs(history[len(emitted) :], emitted[-1] if emitted else None)


# --- outputs -----------------------------------------------------------------------------


def first_settlement(bet: BetPlaced, resolution: MarketResolved) -> BetSettled | None:
    """``next_settlement(bet, None, {market: resolution}, resolved_at)``, built faster.

    The hot path of a big market's resolution (one call per bet): the record is built
    without ``__post_init__`` (``resolved_at`` is a record's datetime, normalized already)
    and the PnL boards of an instant are computed once. Equal to the rules' result
    (``tests/unit/test_settling.py``).
    """
    result = settle(bet, {resolution.market_id: resolution})
    if result is None:
        return None
    at = resolution.resolved_at
    return _build_settled(
        bet_id=bet.bet_id,
        member_id=bet.member_id,
        status=result.status,
        stake=bet.stake,
        payout=result.payout,
        version=1,
        idempotency_key=settlement_key(bet.bet_id, 1),
        settled_at=at,
        previous_payout=None,
        board_ids=_board_ids(game_of(bet), at),
    )


_BOARD_IDS: dict[tuple[Game, datetime], tuple[str, str]] = {}


def _board_ids(game: Game, at: datetime) -> tuple[str, str]:
    found = _BOARD_IDS.get((game, at))
    if found is None:
        if len(_BOARD_IDS) > 10_000:
            _BOARD_IDS.clear()
        found = _BOARD_IDS[(game, at)] = pnl_board_ids(game, at)
    return found


#: Records built without ``__init__``/``__post_init__``, for values normalized already
#: (every datetime taken from another record): 0.45 us against 1.8 us per record with
#: ``object.__setattr__`` per field. Every field must be given.
_build_settled = builder(BetSettled)
_build_posted = builder(LedgerEntryPosted)
_build_award = builder(ScoreAwarded)


def settlement_outputs(versions: Sequence[BetSettled], previous: BetSettled | None) -> list[Output]:
    """Per version: the BetSettled, its ledger entries, its PnL award, and a ResultCorrected
    when it replaces ``previous`` (the version before it)."""
    outputs: list[Output] = []
    for settled in versions:
        outputs.append(settled)
        outputs += [ledger_posted(entry) for entry in settlement_entries(settled)]
        outputs.append(pnl_award(settled))
        if previous is not None:
            outputs.append(correction_notice(previous, settled))
        previous = settled
    return outputs


def ledger_posted(entry: LedgerEntry) -> LedgerEntryPosted:
    """The ``credits.ledger`` record of a ledger entry (its ``at`` comes from a record)."""
    return _build_posted(
        idempotency_key=entry.key,
        member_id=entry.member_id,
        kind=str(entry.kind),
        amount=entry.amount,
        bet_id=entry.bet_id,
        version=entry.version,
        posted_at=entry.at,
    )


def pnl_award(settled: BetSettled) -> ScoreAwarded:
    """The PnL of a settlement version as a ScoreAwarded on ``scores`` (the boards stage,
    sinks and API serve PnL boards like any other): key ``pnl:{bet_id}:v{n}``."""
    return _build_award(
        member_id=settled.member_id,
        board_ids=settled.board_ids,
        points_delta=pnl_delta(settled),
        exact_delta=0,
        total=None,
        reason="settlement" if settled.previous_payout is None else "resettlement",
        source=f"bet:{settled.bet_id}",
        rule_version=0,
        result_version=settled.version,
        idempotency_key=f"pnl:{settled.bet_id}:v{settled.version}",
        awarded_at=settled.settled_at,
    )


# --- the changelog -----------------------------------------------------------------------


def drain_changelog(state: SettlingState) -> list[tuple[str, bytes]]:
    """The changelog records (key, JSON) to write with the outputs since the last drain."""
    records = [(key, _dumps(value)) for key, value in state.unsaved]
    state.unsaved.clear()
    if state.progress_changed:
        pending = state.pending
        progress = {
            "next_offset": state.next_offset,
            "markets": {str(p): o for p, o in sorted(state.market_positions.items())},
            "pending": None
            if pending is None
            else {"market_id": pending.market_id, "version": pending.version, "done": pending.done},
        }
        records.append((f"{PROGRESS_KEY}{state.partition}", _dumps(progress)))
        state.progress_changed = False
    return records


def restore(partition: int, records: Iterable[tuple[str, bytes | None]]) -> SettlingState:
    """The state from its changelog records, in log order (market events: then
    :func:`replay_market_event` each event below ``market_positions``)."""
    state = SettlingState(partition)
    bets: dict[str, dict[str, Any]] = {}
    for key, value in records:
        if value is None:
            continue
        data = json.loads(value)
        if key.startswith(PROGRESS_KEY):
            state.next_offset = data["next_offset"]
            state.market_positions = {int(p): o for p, o in data["markets"].items()}
            pending = data["pending"]
            state.pending = None if pending is None else Pending(**pending)
        elif key.startswith(_BET_PREFIX):
            bets.setdefault(key.removeprefix(_BET_PREFIX), data)  # the first read stands
    for bet_id, data in sorted(bets.items(), key=lambda item: item[1]["offset"]):
        budget = state.budgets.get(data["member"]) or Budget()
        if "bet" in data:
            _accept(state, _bet_from_json(data["bet"]), budget)
        else:
            state.budgets[data["member"]] = budget
            state.verdicts[bet_id] = False
    return state


def _dumps(value: dict[str, Any]) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _bet_json(bet: BetPlaced) -> dict[str, Any]:
    return {
        "bet_id": bet.bet_id,
        "member_id": bet.member_id,
        "kind": str(bet.kind),
        "stake": str(bet.stake),
        "placed_at_ms": _millis(bet.placed_at),
        "legs": [
            [
                leg.market_id,
                leg.selection,
                None if leg.odds is None else str(leg.odds),
                None if leg.price is None else str(leg.price),
            ]
            for leg in bet.legs
        ],
    }


def _bet_from_json(data: dict[str, Any]) -> BetPlaced:
    return BetPlaced(
        bet_id=data["bet_id"],
        member_id=data["member_id"],
        kind=BetKind(data["kind"]),
        stake=Decimal(data["stake"]),
        legs=tuple(
            BetLeg(
                market_id=market_id,
                selection=selection,
                odds=None if odds is None else Decimal(odds),
                price=None if price is None else Decimal(price),
            )
            for market_id, selection, odds, price in data["legs"]
        ),
        placed_at=_EPOCH + data["placed_at_ms"] * _MS,
    )


def event_time(event: MarketEvent) -> datetime:
    """When a market event happened (the shell merges a catch-up by it)."""
    return event.updated_at if isinstance(event, MarketUpdated) else event.resolved_at
