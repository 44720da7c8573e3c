"""The predictions state machine against the oracle, under any interleaving and crashes.

A partition's two topics (matches and entries) are consumed in a random interleaving; at
random points the worker commits (outputs, state and both offsets together, as one Kafka
transaction) or crashes (everything since the last commit is lost, the entry index is
rebuilt from the entries topic up to the committed offset, the match states from the
committed changelog) and resumes with a new interleaving. The committed awards must add
up to the oracle's totals, with no idempotency key twice.
"""

from __future__ import annotations

import random
from collections import Counter
from copy import deepcopy
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.records import EntryRejected, MatchStatus, MatchUpdated, PredictionPlaced, ScoreAwarded
from streams.rules.boards import BoardLine
from streams.rules.predictions import PredictionRules, latest_results, oracle_totals
from streams.scoring import (
    EntryIndex,
    MatchState,
    Output,
    entries_covered,
    on_entry,
    on_match_update,
    scoring_under_way,
)
from tests.builders import a_match

KICKOFF = datetime(2026, 11, 22, 15, 0, tzinfo=UTC)
RULES = PredictionRules("predictions:t1", 1, exact_bonus=Decimal("1"))


def a_update(
    match: str, status: MatchStatus, home: int, away: int, rv: int, pv: int
) -> MatchUpdated:
    return a_match(
        match,
        score=(home, away),
        status=status,
        result_version=rv,
        provider_version=pv,
        tournament_id="t1",
        kickoff_at=KICKOFF,
        updated_at=KICKOFF,
    )


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[list[MatchUpdated], list[PredictionPlaced], int]:
    matches = [f"x{i}" for i in range(draw(st.integers(1, 3)))]
    updates: list[MatchUpdated] = []
    for match in matches:
        updates.append(a_update(match, MatchStatus.NOTSTARTED, 0, 0, 0, 1))
        score = (draw(st.integers(0, 3)), draw(st.integers(0, 3)))
        updates.append(a_update(match, MatchStatus.FINISHED, *score, 1, 2))
        if draw(st.booleans()):
            updates.append(a_update(match, MatchStatus.FINISHED, *score, 1, 3))  # duplicate
        if draw(st.booleans()):
            corrected = (score[0] + 1, score[1])
            updates.append(a_update(match, MatchStatus.FINISHED, *corrected, 2, 4))
    entries: list[PredictionPlaced] = []
    for n in range(draw(st.integers(0, 25))):
        member = f"m{draw(st.integers(0, 6))}"
        minutes = draw(st.sampled_from([-120, -60, -1, 0, 5]))  # 0 and 5: late
        entry = PredictionPlaced(
            entry_id=f"e{n}",
            member_id=member,
            match_id=draw(st.sampled_from(matches)),
            league_ids=tuple(draw(st.sets(st.sampled_from(["l1", "l2"]), max_size=2))),
            home_goals=draw(st.integers(0, 3)),
            away_goals=draw(st.integers(0, 3)),
            placed_at=KICKOFF + timedelta(minutes=minutes),
        )
        entries.append(entry)
        if draw(st.integers(0, 9)) == 0:
            entries.append(entry)  # a redelivery
    return updates, entries, draw(st.integers(0, 2**32 - 1))


def replay(
    updates: list[MatchUpdated], entries: list[PredictionPlaced], seed: int, rewinds: bool = False
) -> list[Output]:
    """Process both topics with random interleavings, commits and crashes.

    With ``rewinds``, a crash may also be an operator rewinding the group's offsets (each
    topic to an earlier point of its own) while the match-state changelog stays as it is.
    """
    rng = random.Random(seed)
    committed: list[Output] = []
    committed_states: dict[str, MatchState] = {}
    committed_offsets = [0, 0]  # matches, entries
    while True:
        # As streams.state.load_partition: index up to the committed offset, or further
        # when a match state says entries beyond it were scored (after a rewind).
        until = max(committed_offsets[1], entries_covered(committed_states.values()))
        index = EntryIndex()
        for offset, entry in enumerate(entries[:until]):
            index.add(entry, offset)
        index.next_offset = until
        states = deepcopy(committed_states)
        offsets = list(committed_offsets)
        pending: list[Output] = []
        crashed = False
        while offsets[0] < len(updates) or offsets[1] < len(entries):
            topic = rng.choice([t for t in (0, 1) if offsets[t] < len((updates, entries)[t])])
            if topic == 0:
                update = updates[offsets[0]]
                chunk = rng.choice([None, 1, 2, 3])
                state, out = on_match_update(
                    states.get(update.match_id), update, index, RULES, KICKOFF, chunk=chunk
                )
                states[update.match_id] = state
                while scoring_under_way(state, update):  # committed chunk by chunk
                    pending += out
                    if rng.random() < 0.2:  # kill -9 between two chunks
                        crashed = True
                        break
                    committed += pending  # the chunk's outputs, its state, the offsets
                    pending = []  # before the result's own (it is delivered again)
                    committed_states = deepcopy(states)
                    committed_offsets = list(offsets)
                    state, out = on_match_update(state, update, index, RULES, KICKOFF, chunk=chunk)
                    states[update.match_id] = state
                if crashed:
                    if rewinds and rng.random() < 0.5:
                        committed_offsets = [rng.randint(0, n) for n in committed_offsets]
                    break
            else:
                entry = entries[offsets[1]]
                after, out = on_entry(states.get(entry.match_id), index, entry, offsets[1], KICKOFF)
                if after is not None:
                    states[entry.match_id] = after
            pending += out
            offsets[topic] += 1
            roll = rng.random()
            if roll < 0.15:  # commit
                committed += pending
                pending = []
                committed_states = deepcopy(states)
                committed_offsets = list(offsets)
            elif roll < 0.25:  # kill -9: lose everything since the last commit
                crashed = True
                if rewinds and rng.random() < 0.5:  # and the operator rewinds the group
                    committed_offsets = [rng.randint(0, n) for n in committed_offsets]
                break
        if not crashed:
            return committed + pending


def totals(outputs: list[Output]) -> dict[str, dict[str, BoardLine]]:
    sums: dict[str, dict[str, tuple[Decimal, int]]] = {}
    for award in outputs:
        if not isinstance(award, ScoreAwarded):
            continue
        for board in award.board_ids:
            total, exact = sums.setdefault(board, {}).get(award.member_id, (Decimal(0), 0))
            sums[board][award.member_id] = (total + award.points_delta, exact + award.exact_delta)
    return {
        board: {m: BoardLine(m, t, e) for m, (t, e) in lines.items()}
        for board, lines in sums.items()
    }


def nonzero(boards: dict[str, dict[str, BoardLine]]) -> dict[str, dict[str, BoardLine]]:
    kept = {
        board: {m: line for m, line in lines.items() if line.total or line.exact_count}
        for board, lines in boards.items()
    }
    return {board: lines for board, lines in kept.items() if lines}


@settings(max_examples=300, deadline=None)
@given(scenarios())
def test_committed_awards_equal_the_oracle_under_crashes_and_interleavings(
    scenario: tuple[list[MatchUpdated], list[PredictionPlaced], int],
) -> None:
    updates, entries, seed = scenario
    outputs = replay(updates, entries, seed, rewinds=False)
    assert_equals_oracle(outputs, updates, entries)


@settings(max_examples=300, deadline=None)
@given(scenarios())
def test_a_rewound_group_emits_nothing_twice(
    scenario: tuple[list[MatchUpdated], list[PredictionPlaced], int],
) -> None:
    updates, entries, seed = scenario
    outputs = replay(updates, entries, seed, rewinds=True)
    assert_equals_oracle(outputs, updates, entries)


def assert_equals_oracle(
    outputs: list[Output], updates: list[MatchUpdated], entries: list[PredictionPlaced]
) -> None:
    keys = Counter(o.idempotency_key for o in outputs if isinstance(o, ScoreAwarded))
    assert [k for k, n in keys.items() if n > 1] == []
    expected = oracle_totals(entries, latest_results(updates), RULES)
    # A guess superseded after its match was scored leaves a 0 line on a league its
    # successor does not count in; the oracle has no line there. Zero lines compare equal.
    assert nonzero(totals(outputs)) == nonzero(expected)
    rejected = Counter(o.entry_id for o in outputs if isinstance(o, EntryRejected))
    assert all(n == 1 for n in rejected.values()), "each late entry is rejected once"
    late = {e.entry_id for e in entries if e.placed_at >= KICKOFF}
    assert set(rejected) == late


def test_a_duplicate_result_changes_nothing() -> None:
    index = EntryIndex()
    entry = PredictionPlaced(
        entry_id="e1",
        member_id="m1",
        match_id="x",
        league_ids=(),
        home_goals=2,
        away_goals=1,
        placed_at=KICKOFF - timedelta(hours=1),
    )
    assert on_entry(None, index, entry, 0, KICKOFF) == (None, [])
    final = a_update("x", MatchStatus.FINISHED, 2, 1, 1, 2)
    state, first = on_match_update(None, final, index, RULES, KICKOFF)
    assert [o.points_delta for o in first if isinstance(o, ScoreAwarded)] == [Decimal("6.00")]
    again, second = on_match_update(state, final, index, RULES, KICKOFF)
    assert second == []
    assert again == state


def test_awards_built_without_init_equal_the_constructed_ones() -> None:
    """A clock at whole milliseconds takes the fast path (no ``__init__``); one with
    microseconds takes the constructor, which truncates to the same millisecond."""
    index = EntryIndex()
    for i, (home, away) in enumerate([(2, 1), (1, 1), (0, 3)]):
        entry = PredictionPlaced(
            entry_id=f"e{i}",
            member_id=f"m{i}",
            match_id="x",
            league_ids=("l1",),
            home_goals=home,
            away_goals=away,
            placed_at=KICKOFF - timedelta(hours=1),
        )
        on_entry(None, index, entry, i, KICKOFF)
    final = a_update("x", MatchStatus.FINISHED, 2, 1, 1, 2)
    _, fast = on_match_update(None, final, index, RULES, KICKOFF)
    _, constructed = on_match_update(
        None, final, index, RULES, KICKOFF + timedelta(microseconds=999)
    )
    awards = [o for o in fast if isinstance(o, ScoreAwarded)]
    assert len(awards) == 3
    assert fast == constructed
    assert [hash(o) for o in fast] == [hash(o) for o in constructed]
    assert all(type(o) is ScoreAwarded and o.awarded_at == KICKOFF for o in awards)
