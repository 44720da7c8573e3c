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

A promotion (``scoreline reprocess --promote``) moves the totals of every match scored
before it to the promoted rules, by deltas on ``scores``, while the match states still
name the rules each match was scored with. The rule book hands the promoted rules in with
the rules in force (:class:`RulesInForce`), and a match state is rebased onto them
(:func:`reflected`) before a correction or a late entry is scored: the rule change counts
once.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from schemas.fast_decode import builder
from schemas.records import (
    EntryRejected,
    MatchStatus,
    MatchUpdated,
    PredictionPlaced,
    RejectionReason,
    ResultCorrected,
    ScoreAwarded,
)
from schemas.records.base import on_the_wire
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


@dataclass(frozen=True, slots=True)
class RulesInForce(PredictionRules):
    """The newest rules of a rule set, with the newest rules promoted by a reprocess.

    ``promoted``: the totals of every match scored before the promotion reflect these
    rules (``scoreline reprocess --promote`` published the deltas), whatever rules its
    match state names. None when no version of the rule set was promoted.
    """

    promoted: PredictionRules | None = None

    @classmethod
    def of(cls, rules: PredictionRules, promoted: PredictionRules | None) -> RulesInForce:
        return cls(
            rules.ruleset_id,
            rules.version,
            exact_score=rules.exact_score,
            goal_difference=rules.goal_difference,
            outcome=rules.outcome,
            exact_bonus=rules.exact_bonus,
            promoted=None if promoted is None else plain_rules(promoted),
        )


def plain_rules(rules: PredictionRules) -> PredictionRules:
    """The rules alone (a :class:`RulesInForce` without what was promoted)."""
    if type(rules) is PredictionRules:
        return rules
    return PredictionRules(
        rules.ruleset_id,
        rules.version,
        exact_score=rules.exact_score,
        goal_difference=rules.goal_difference,
        outcome=rules.outcome,
        exact_bonus=rules.exact_bonus,
    )


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
    #: The units of the scoring under way (see ``_units``), computed once per scoring.
    units: dict[tuple[str, int, datetime, bool], list[tuple[IndexedEntry, str | None]]] = field(
        default_factory=dict
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

    def effective(
        self, match_id: str, kickoff_at: datetime, before_offset: int | None = None
    ) -> list[IndexedEntry]:
        """Each member's guess that counts, by member id (entries before ``before_offset``)."""
        return self.judged(match_id, kickoff_at, before_offset)[1]

    def rejected(
        self, match_id: str, kickoff_at: datetime, before_offset: int | None = None
    ) -> list[tuple[IndexedEntry, str]]:
        """The entries to reject, with the reason, by member id (before ``before_offset``)."""
        return self.judged(match_id, kickoff_at, before_offset)[0]

    def judged(
        self, match_id: str, kickoff_at: datetime, before_offset: int | None = None
    ) -> tuple[list[tuple[IndexedEntry, str]], list[IndexedEntry]]:
        """(rejected entries with the reason, each member's guess that counts), by member id.

        One pass over the match's members, each entry judged once: a marquee match holds
        hundreds of thousands, and this runs before its first award goes out.
        """
        members = self.by_match.get(match_id)
        rejected: list[tuple[IndexedEntry, str]] = []
        effective: list[IndexedEntry] = []
        for member in sorted(members) if members is not None else []:
            best: IndexedEntry | None = None
            for indexed in members[member]:  # type: ignore[index]
                if before_offset is not None and indexed.offset >= before_offset:
                    continue
                reason = check_entry(indexed.entry, kickoff_at)
                if reason is not None:
                    rejected.append((indexed, reason))
                elif best is None or supersedes(indexed.entry, best.entry):
                    best = indexed
            if best is not None:
                effective.append(best)
        return rejected, effective

    def entries_from(self, match_id: str, offset: int) -> list[IndexedEntry]:
        """The match's entries read at or after ``offset``, in offset order."""
        members = self.by_match.get(match_id)
        found = [
            indexed
            for entries in (members.values() if members is not None else ())
            for indexed in entries
            if indexed.offset >= offset
        ]
        return sorted(found, key=lambda indexed: indexed.offset)


@dataclass(frozen=True, slots=True)
class ScoredResult:
    """The result and rules a match was last scored with."""

    result_version: int
    score: Score
    rules: PredictionRules

    def to_json(self) -> dict[str, Any]:
        return {
            "result_version": self.result_version,
            "home": self.score.home,
            "away": self.score.away,
            "ruleset_id": self.rules.ruleset_id,
            "rule_version": self.rules.version,
            "params": self.rules.to_params(),
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> ScoredResult:
        rules = PredictionRules.from_params(raw["ruleset_id"], raw["rule_version"], raw["params"])
        return cls(raw["result_version"], Score(raw["home"], raw["away"]), rules)


@dataclass(frozen=True, slots=True)
class ScoringProgress:
    """A scoring under way, committed chunk by chunk.

    Its units are, in a fixed order, the rejections (first scoring only) and then each
    member's effective entry, among the entries read before ``through``; ``done`` of
    them have gone out in committed transactions. A worker that crashes resumes at
    ``done`` when the result's event is delivered again, so no unit goes out twice.
    """

    result: ScoredResult
    previous: ScoredResult | None
    through: int
    done: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "result": self.result.to_json(),
            "previous": None if self.previous is None else self.previous.to_json(),
            "through": self.through,
            "done": self.done,
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> ScoringProgress:
        previous = raw["previous"]
        return cls(
            ScoredResult.from_json(raw["result"]),
            None if previous is None else ScoredResult.from_json(previous),
            raw["through"],
            raw["done"],
        )


@dataclass(frozen=True, slots=True)
class MatchState:
    match_id: str
    tournament_id: str
    kickoff_at: datetime
    status: str
    provider_version: int
    scored: ScoredResult | None = None
    scored_through: int = 0
    scoring: ScoringProgress | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "match_id": self.match_id,
            "tournament_id": self.tournament_id,
            "kickoff_at_ms": int(self.kickoff_at.timestamp() * 1000),
            "status": self.status,
            "provider_version": self.provider_version,
            "scored": None if self.scored is None else self.scored.to_json(),
            "scored_through": self.scored_through,
            "scoring": None if self.scoring is None else self.scoring.to_json(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> MatchState:
        scored, scoring = data.get("scored"), data.get("scoring")
        return cls(
            match_id=data["match_id"],
            tournament_id=data["tournament_id"],
            kickoff_at=datetime.fromtimestamp(data["kickoff_at_ms"] / 1000, tz=UTC),
            status=data["status"],
            provider_version=data["provider_version"],
            scored=None if scored is None else ScoredResult.from_json(scored),
            scored_through=data["scored_through"],
            scoring=None if scoring is None else ScoringProgress.from_json(scoring),
        )


def reflected(scored: ScoredResult, rules: PredictionRules | None) -> ScoredResult:
    """``scored`` with the rules the totals of its match reflect now.

    The match's own rules, unless ``rules`` (the rules in force) carry a promoted version
    of the same rule set newer than them: a promotion moved the totals to that version.
    """
    promoted = rules.promoted if isinstance(rules, RulesInForce) else None
    if (
        promoted is None
        or promoted.ruleset_id != scored.rules.ruleset_id
        or promoted.version <= scored.rules.version
    ):
        return scored
    return replace(scored, rules=promoted)


def _rebased(state: MatchState, rules: PredictionRules | None) -> MatchState:
    """The state with its result on the rules its totals reflect (none under way)."""
    if state.scored is None or state.scoring is not None:
        return state
    scored = reflected(state.scored, rules)
    return state if scored is state.scored else replace(state, scored=scored)


def on_match_update(
    state: MatchState | None,
    update: MatchUpdated,
    index: EntryIndex,
    rules: PredictionRules,
    now: datetime,
    *,
    chunk: int | None = None,
) -> tuple[MatchState, list[Output]]:
    """Apply a MatchUpdated; score the match when a new final result arrives.

    With ``chunk``, at most that many units (entries scored or rejected) go out per call:
    while ``state.scoring`` is set the scoring is under way, and the caller commits the
    outputs with the state and calls again with the same update until it is done. A
    result's event delivered again after a crash resumes where the committed state
    stopped. ``rules`` may be a :class:`RulesInForce`: a match scored before a promotion
    is rebased onto the promoted rules first, so a correction emits new - promoted.
    """
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
    state = _rebased(state, rules)
    progress = state.scoring
    if progress is None:
        scored_version = state.scored.result_version if state.scored else 0
        if update.status != MatchStatus.FINISHED or update.result_version <= scored_version:
            return state, []  # not a result, or one already scored (a duplicate or replay)
        score = Score(update.home_score, update.away_score)
        result = ScoredResult(update.result_version, score, plain_rules(rules))
        progress = ScoringProgress(result, state.scored, index.next_offset)
    elif update.result_version != progress.result.result_version:
        return state, []  # the scoring under way resumes when its own result comes again
    return _score_units(state, progress, index, now, chunk)


def entries_covered(matches: Iterable[MatchState]) -> int:
    """The furthest entries offset the match states say was scored, or is being scored.

    After an operator rewinds the group, the index must hold the entries up to here
    before anything is processed again (``streams.state.load_partition``).
    """
    return max(
        (max(m.scored_through, m.scoring.through if m.scoring is not None else 0) for m in matches),
        default=0,
    )


def scoring_under_way(state: MatchState, update: MatchUpdated) -> bool:
    """Whether ``update`` started (or resumed) a scoring that has chunks left."""
    progress = state.scoring
    return progress is not None and progress.result.result_version == update.result_version


def _score_units(
    state: MatchState,
    progress: ScoringProgress,
    index: EntryIndex,
    now: datetime,
    chunk: int | None,
) -> tuple[MatchState, list[Output]]:
    units = _units(index, state, progress)
    end = len(units) if chunk is None else min(len(units), progress.done + chunk)
    scorer = _Scorer(state, progress, now)
    outputs: list[Output] = []
    for indexed, reason in units[progress.done : end]:
        if reason is None:
            outputs += scorer.award(indexed.entry)
        else:
            outputs += _rejections([(indexed, reason)], now)
    if end < len(units):
        return replace(state, scoring=replace(progress, done=end)), outputs
    index.units.clear()
    state = replace(
        state,
        scored=progress.result,
        scored_through=max(state.scored_through, progress.through),
        scoring=None,
    )
    # Entries read after the scoring began (delivered again before a resumed scoring's
    # event): each as it would have been on arrival, in offset order.
    for indexed in index.entries_from(state.match_id, state.scored_through):
        late = _on_late_entry(state, index, indexed.entry, indexed.offset, now)
        if late:
            state = replace(state, scored_through=indexed.offset + 1)
            outputs += late
    return state, outputs


def _units(
    index: EntryIndex, state: MatchState, progress: ScoringProgress
) -> list[tuple[IndexedEntry, str | None]]:
    """The scoring's units in their fixed order (computed once per scoring)."""
    key = (state.match_id, progress.through, state.kickoff_at, progress.previous is None)
    units = index.units.get(key)
    if units is None:
        rejected, effective = index.judged(state.match_id, state.kickoff_at, progress.through)
        units = list(rejected) if progress.previous is None else []
        units += [(indexed, None) for indexed in effective]
        index.units = {key: units}
    return units


class _Scorer:
    """Awards of one scoring, with what repeats across entries computed once."""

    def __init__(self, state: MatchState, progress: ScoringProgress, now: datetime) -> None:
        self.state, self.progress, self.now = state, progress, now
        self._awards: dict[tuple[ScoredResult, int, int], Award] = {}
        self._boards: dict[tuple[str, ...], tuple[str, ...]] = {}

    def _award_of(self, result: ScoredResult, entry: PredictionPlaced) -> Award:
        key = (result, entry.home_goals, entry.away_goals)
        award = self._awards.get(key)
        if award is None:
            award = self._awards[key] = score_prediction(
                guess_of(entry), result.score, result.rules
            )
        return award

    def award(self, entry: PredictionPlaced) -> list[Output]:
        result, previous = self.progress.result, self.progress.previous
        new = self._award_of(result, entry)
        boards = self._boards.get(entry.league_ids)
        if boards is None:
            boards = self._boards[entry.league_ids] = board_ids(entry, self.state.tournament_id)
        if previous is None:
            return [_score_awarded(self.state, entry, result, None, new, self.now, None, boards)]
        old = self._award_of(previous, entry)
        if old == new:
            return []
        award = _score_awarded(self.state, entry, result, old, new, self.now, "correction", boards)
        notice = ResultCorrected(
            member_id=entry.member_id,
            subject=f"match:{self.state.match_id}",
            old_result=str(previous.score),
            new_result=str(result.score),
            delta=award.points_delta,
            version=result.result_version,
            corrected_at=self.now,
        )
        return [award, notice]


def on_entry(
    state: MatchState | None,
    index: EntryIndex,
    entry: PredictionPlaced,
    offset: int,
    now: datetime,
    rules: PredictionRules | None = None,
) -> tuple[MatchState | None, list[Output]]:
    """Index an entry; score or reject it at once if its match was already scored.

    An entry handled on arrival moves the match's ``scored_through`` past it (the new
    state is returned, to be saved with the outputs), so an entry replayed after an
    operator rewound the group is recognised as handled and emits nothing twice.
    ``rules``, the rules in force for the match's tournament, rebase a match scored before
    a promotion (see :func:`reflected`) before a late entry is scored against it.
    """
    if state is not None and rules is not None:
        state = _rebased(state, rules)
    if not index.add(entry, offset):
        return state, []  # a redelivery: the entry_id counted already
    if state is None or state.scored is None or state.scoring is not None:
        return state, []  # not scored yet, or a scoring under way will take it
    if offset < state.scored_through:
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
    current = index.effective_for(
        entry.match_id, entry.member_id, state.kickoff_at, before_offset=offset + 1
    )
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


def _score_awarded(
    state: MatchState,
    entry: PredictionPlaced,
    result: ScoredResult,
    old: Award | None,
    new: Award,
    now: datetime,
    reason: str | None,
    boards: tuple[str, ...] | None = None,
) -> ScoreAwarded:
    old_points = old.points if old else Decimal(0)
    old_exact = int(old.exact) if old else 0
    # Built without __init__ when ``now`` is what the wire holds already (UTC, whole
    # milliseconds; the scorer's clock is): 0.5 us instead of 2.5 us, per guess scored.
    build = _build_award if on_the_wire(now) else ScoreAwarded
    return build(
        member_id=entry.member_id,
        board_ids=boards if boards is not None else board_ids(entry, state.tournament_id),
        points_delta=new.points - old_points,
        exact_delta=int(new.exact) - old_exact,
        reason=reason or new.reason,
        source=f"prediction:{state.match_id}:{entry.entry_id}",
        rule_version=result.rules.version,
        result_version=result.result_version,
        idempotency_key=idempotency_key(
            state.match_id, entry.entry_id, result.result_version, result.rules.version
        ),
        total=None,
        awarded_at=now,
    )


_build_award = builder(ScoreAwarded)


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
