"""The predictions game as a state machine per partition: pure, so tests drive it directly.

A partition of ``fixtures.matches`` and the same partition of ``entries.predictions`` (both
keyed by match_id, so co-partitioned) are processed together. The state of a partition:

- an :class:`EntryIndex`: every entry read so far, by match and member, each with its
  offset (rebuilt after a restart by reading ``entries.predictions`` up to the committed
  offset, so it needs no changelog of its own);
- a :class:`MatchState` per match (kept in a changelog topic): kick-off, status, and the
  result and rules it was last scored with, plus ``scored_through``: the entries offset
  up to which that scoring covered the index.

:func:`on_match_update` scores every effective entry of a match when its result first
arrives, and emits the deltas (new - old) when a corrected result arrives.
:func:`on_entry` indexes an entry; an entry that arrives after its match was scored is
scored (or rejected) on arrival. Which path scores an entry is decided by its offset
against ``scored_through``, so after a crash and a replay each entry is scored once per
result version, whatever order the two topics interleave in.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from schemas.records import (
    EntryRejected,
    MatchStatus,
    MatchUpdated,
    PredictionPlaced,
    RejectionReason,
    ResultCorrected,
    ScoreAwarded,
)
from streams.rules.predictions import (
    Award,
    PredictionRules,
    Score,
    board_ids,
    check_entry,
    guess_of,
    idempotency_key,
    score_prediction,
    supersedes,
)

Output = ScoreAwarded | EntryRejected | ResultCorrected

#: What a guess that no longer counts is worth.
ZERO_AWARD = Award(Decimal("0.00"), "miss", exact=False)


@dataclass(slots=True)
class IndexedEntry:
    entry: PredictionPlaced
    offset: int


@dataclass(slots=True)
class EntryIndex:
    """Every entry of one partition, by match and member; an entry_id counts once."""

    next_offset: int = 0
    seen: set[str] = field(default_factory=set)
    by_match: defaultdict[str, defaultdict[str, list[IndexedEntry]]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(list))
    )

    def add(self, entry: PredictionPlaced, offset: int) -> bool:
        """Index an entry read at ``offset``; False for a redelivered entry_id."""
        self.next_offset = max(self.next_offset, offset + 1)
        if entry.entry_id in self.seen:
            return False
        self.seen.add(entry.entry_id)
        self.by_match[entry.match_id][entry.member_id].append(IndexedEntry(entry, offset))
        return True

    def effective_for(
        self, match_id: str, member_id: str, kickoff_at: datetime, before_offset: int | None = None
    ) -> IndexedEntry | None:
        """The member's guess that counts (among entries read before ``before_offset``)."""
        best: IndexedEntry | None = None
        members = self.by_match.get(match_id)
        for indexed in members.get(member_id, []) if members is not None else []:
            if before_offset is not None and indexed.offset >= before_offset:
                continue
            if check_entry(indexed.entry, kickoff_at) is not None:
                continue
            if best is None or supersedes(indexed.entry, best.entry):
                best = indexed
        return best

    def effective(self, match_id: str, kickoff_at: datetime) -> list[IndexedEntry]:
        members = sorted(self.by_match[match_id]) if match_id in self.by_match else []
        found = (self.effective_for(match_id, member, kickoff_at) for member in members)
        return [indexed for indexed in found if indexed is not None]

    def rejected(self, match_id: str, kickoff_at: datetime) -> list[tuple[IndexedEntry, str]]:
        out: list[tuple[IndexedEntry, str]] = []
        members = sorted(self.by_match[match_id]) if match_id in self.by_match else []
        for member in members:
            for indexed in self.by_match[match_id][member]:
                reason = check_entry(indexed.entry, kickoff_at)
                if reason is not None:
                    out.append((indexed, reason))
        return out


@dataclass(frozen=True, slots=True)
class ScoredResult:
    """The result and rules a match was last scored with."""

    result_version: int
    score: Score
    rules: PredictionRules


@dataclass(frozen=True, slots=True)
class MatchState:
    match_id: str
    tournament_id: str
    kickoff_at: datetime
    status: str
    provider_version: int
    scored: ScoredResult | None = None
    scored_through: int = 0

    def to_json(self) -> dict[str, Any]:
        scored = None
        if self.scored is not None:
            rules = self.scored.rules
            scored = {
                "result_version": self.scored.result_version,
                "home": self.scored.score.home,
                "away": self.scored.score.away,
                "ruleset_id": rules.ruleset_id,
                "rule_version": rules.version,
                "params": rules.to_params(),
            }
        return {
            "match_id": self.match_id,
            "tournament_id": self.tournament_id,
            "kickoff_at_ms": int(self.kickoff_at.timestamp() * 1000),
            "status": self.status,
            "provider_version": self.provider_version,
            "scored": scored,
            "scored_through": self.scored_through,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> MatchState:
        raw = data.get("scored")
        scored = None
        if raw is not None:
            rules = PredictionRules.from_params(
                raw["ruleset_id"], raw["rule_version"], raw["params"]
            )
            scored = ScoredResult(raw["result_version"], Score(raw["home"], raw["away"]), rules)
        return cls(
            match_id=data["match_id"],
            tournament_id=data["tournament_id"],
            kickoff_at=datetime.fromtimestamp(data["kickoff_at_ms"] / 1000, tz=UTC),
            status=data["status"],
            provider_version=data["provider_version"],
            scored=scored,
            scored_through=data["scored_through"],
        )


def on_match_update(
    state: MatchState | None,
    update: MatchUpdated,
    index: EntryIndex,
    rules: PredictionRules,
    now: datetime,
) -> tuple[MatchState, list[Output]]:
    """Apply a MatchUpdated; score the match when a new final result arrives."""
    if state is None:
        state = MatchState(
            update.match_id,
            update.tournament_id,
            update.kickoff_at,
            str(update.status),
            update.provider_version,
        )
    elif update.provider_version >= state.provider_version:
        state = replace(
            state,
            kickoff_at=update.kickoff_at,
            status=str(update.status),
            provider_version=update.provider_version,
        )
    scored_version = state.scored.result_version if state.scored else 0
    if update.status != MatchStatus.FINISHED or update.result_version <= scored_version:
        return state, []  # not a result, or one already scored (a duplicate or replay)
    result = ScoredResult(update.result_version, Score(update.home_score, update.away_score), rules)
    outputs: list[Output] = []
    if state.scored is None:
        outputs += _rejections(index.rejected(state.match_id, state.kickoff_at), now)
    for indexed in index.effective(state.match_id, state.kickoff_at):
        outputs += _award(state, indexed.entry, state.scored, result, now)
    scored_through = max(state.scored_through, index.next_offset)
    return replace(state, scored=result, scored_through=scored_through), outputs


def on_entry(
    state: MatchState | None,
    index: EntryIndex,
    entry: PredictionPlaced,
    offset: int,
    now: datetime,
) -> tuple[MatchState | None, list[Output]]:
    """Index an entry; score or reject it at once if its match was already scored.

    An entry handled on arrival moves the match's ``scored_through`` past it (the new
    state is returned, to be saved with the outputs), so an entry replayed after an
    operator rewound the group is recognised as handled and emits nothing twice.
    """
    if not index.add(entry, offset):
        return state, []  # a redelivery: the entry_id counted already
    if state is None or state.scored is None or offset < state.scored_through:
        return state, []  # scored (or rejected) with its match
    outputs = _on_late_entry(state, index, entry, offset, now)
    if outputs:
        state = replace(state, scored_through=offset + 1)
    return state, outputs


def _on_late_entry(
    state: MatchState, index: EntryIndex, entry: PredictionPlaced, offset: int, now: datetime
) -> list[Output]:
    scored = state.scored
    if scored is None:
        return []
    reason = check_entry(entry, state.kickoff_at)
    if reason is not None:
        return _rejections([(IndexedEntry(entry, offset), reason)], now)
    current = index.effective_for(entry.match_id, entry.member_id, state.kickoff_at)
    if current is None or current.entry.entry_id != entry.entry_id:
        return []  # an earlier-placed guess than the one that counts: superseded at once
    # The guess that counted before this one: among the entries read before it.
    previous = index.effective_for(
        entry.match_id, entry.member_id, state.kickoff_at, before_offset=offset
    )
    new = score_prediction(guess_of(entry), scored.score, scored.rules)
    outputs: list[Output] = [_score_awarded(state, entry, scored, None, new, now, None)]
    if previous is not None:
        # The earlier guess stops counting: take back what it was awarded, on its own
        # boards (the two guesses may count on different leagues).
        old = score_prediction(guess_of(previous.entry), scored.score, scored.rules)
        back = _score_awarded(state, previous.entry, scored, old, ZERO_AWARD, now, "superseded")
        outputs.append(replace(back, idempotency_key=back.idempotency_key + ":superseded"))
    return outputs


def _award(
    state: MatchState,
    entry: PredictionPlaced,
    old_result: ScoredResult | None,
    result: ScoredResult,
    now: datetime,
) -> list[Output]:
    new = score_prediction(guess_of(entry), result.score, result.rules)
    if old_result is None:
        return [_score_awarded(state, entry, result, None, new, now, None)]
    old = score_prediction(guess_of(entry), old_result.score, old_result.rules)
    if old == new:
        return []
    award = _score_awarded(state, entry, result, old, new, now, "correction")
    notice = ResultCorrected(
        member_id=entry.member_id,
        subject=f"match:{state.match_id}",
        old_result=str(old_result.score),
        new_result=str(result.score),
        delta=award.points_delta,
        version=result.result_version,
        corrected_at=now,
    )
    return [award, notice]


def _score_awarded(
    state: MatchState,
    entry: PredictionPlaced,
    result: ScoredResult,
    old: Award | None,
    new: Award,
    now: datetime,
    reason: str | None,
) -> ScoreAwarded:
    old_points = old.points if old else Decimal(0)
    old_exact = int(old.exact) if old else 0
    return ScoreAwarded(
        member_id=entry.member_id,
        board_ids=board_ids(entry, state.tournament_id),
        points_delta=new.points - old_points,
        exact_delta=int(new.exact) - old_exact,
        reason=reason or new.reason,
        source=f"prediction:{state.match_id}:{entry.entry_id}",
        rule_version=result.rules.version,
        result_version=result.result_version,
        idempotency_key=idempotency_key(
            state.match_id, entry.entry_id, result.result_version, result.rules.version
        ),
        awarded_at=now,
    )


def _rejections(rejected: list[tuple[IndexedEntry, str]], now: datetime) -> list[Output]:
    return [
        EntryRejected(
            entry_topic="entries.predictions",
            entry_id=indexed.entry.entry_id,
            member_id=indexed.entry.member_id,
            reason=RejectionReason(reason),
            detail=f"match {indexed.entry.match_id}: {reason}",
            rejected_at=now,
        )
        for indexed, reason in rejected
    ]
