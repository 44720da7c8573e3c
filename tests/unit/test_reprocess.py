"""Reprocess, the pure parts: promotion deltas, progress text, params, the rule book, and the
correction rule (a match scored before a promotion counts the rule change once)."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.ops.exceptions import OperatorError
from core.ops.reprocess import (
    Boards,
    format_eta,
    format_rate,
    parse_params,
    rescore_deltas,
    rescore_key,
    rescore_notices,
    rules_from,
)
from schemas.records import Game, MatchStatus, MatchUpdated, PredictionPlaced, RuleSet
from streams.reprocess import ReprocessJob, fold
from streams.rulebook import RuleBook, is_promotion, promotion_key
from streams.rules.boards import BoardLine
from streams.rules.predictions import PredictionRules, latest_results, oracle_totals
from streams.scoring import (
    EntryIndex,
    MatchState,
    Output,
    RulesInForce,
    on_entry,
    on_match_update,
    plain_rules,
)
from tests.unit.test_scoring import KICKOFF, a_update, nonzero, scenarios, totals

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
OLD = PredictionRules("predictions:t1", 1, exact_bonus=Decimal("1"))
NEW = PredictionRules("predictions:t1", 2, exact_score=Decimal("10"), exact_bonus=Decimal("1"))


def line(member: str, total: str, exact: int = 0) -> BoardLine:
    return BoardLine(member, Decimal(total), exact)


# -- deltas ------------------------------------------------------------------------------


def test_deltas_are_new_minus_old_per_line_that_differs() -> None:
    old: Boards = {
        "tournament:t1": {
            "m1": line("m1", "6.00", 1),
            "m2": line("m2", "3.00"),
            "m3": line("m3", "2.00"),
        },
        "league:l1": {"m1": line("m1", "6.00", 1)},
    }
    new: Boards = {
        "tournament:t1": {
            "m1": line("m1", "11.00", 1),
            "m2": line("m2", "3.00"),
            "m4": line("m4", "1.50"),
        },
        "league:l1": {"m1": line("m1", "11.00", 1)},
    }
    deltas = rescore_deltas(old, new, ruleset_id="predictions:t1", version=2, now=NOW)
    got = [(d.board_ids, d.member_id, d.points_delta, d.exact_delta) for d in deltas]
    assert got == [
        (("league:l1",), "m1", Decimal("5.00"), 0),
        (("tournament:t1",), "m1", Decimal("5.00"), 0),
        (("tournament:t1",), "m3", Decimal("-2.00"), 0),  # a line gone under the new rules
        (("tournament:t1",), "m4", Decimal("1.50"), 0),  # a line new under the new rules
    ]
    assert [d.idempotency_key for d in deltas] == [
        "rescore:2:league:l1:m1",
        "rescore:2:tournament:t1:m1",
        "rescore:2:tournament:t1:m3",
        "rescore:2:tournament:t1:m4",
    ]
    assert {(d.reason, d.rule_version, d.source) for d in deltas} == {
        ("rescore", 2, "rescore:predictions:t1:v2")
    }


def test_an_exact_count_change_alone_is_a_delta() -> None:
    deltas = rescore_deltas(
        {"b": {"m": line("m", "5.00", 1)}},
        {"b": {"m": line("m", "5.00", 0)}},
        ruleset_id="r",
        version=3,
        now=NOW,
    )
    assert [(d.points_delta, d.exact_delta) for d in deltas] == [(Decimal("0.00"), -1)]


board_lines = st.dictionaries(
    st.sampled_from(["m1", "m2", "m3", "m4"]),
    st.tuples(st.integers(-500, 5000), st.integers(0, 5)),
    max_size=4,
)
boards = st.dictionaries(st.sampled_from(["tournament:t1", "league:a", "league:b"]), board_lines)


def as_boards(raw: dict[str, dict[str, tuple[int, int]]]) -> Boards:
    return {
        b: {m: BoardLine(m, Decimal(c).scaleb(-2), e) for m, (c, e) in ls.items()}
        for b, ls in raw.items()
    }


def flat(boards: Boards) -> dict[tuple[str, str], tuple[Decimal, int]]:
    return {
        (b, m): (x.total, x.exact_count) for b, lines in boards.items() for m, x in lines.items()
    }


@settings(max_examples=200, deadline=None)
@given(boards, boards)
def test_old_plus_the_deltas_is_new(
    old_raw: dict[str, dict[str, tuple[int, int]]], new_raw: dict[str, dict[str, tuple[int, int]]]
) -> None:
    old, new = as_boards(old_raw), as_boards(new_raw)
    deltas = rescore_deltas(old, new, ruleset_id="r", version=7, now=NOW)
    assert len({d.idempotency_key for d in deltas}) == len(deltas)
    summed: dict[tuple[str, str], tuple[Decimal, int]] = flat(old)
    fold(deltas, summed)
    expected = flat(new)
    assert {k: v for k, v in summed.items() if v != (Decimal(0), 0)} == {
        k: v for k, v in expected.items() if v != (Decimal(0), 0)
    }


def test_notices_go_to_members_whose_tournament_line_moved() -> None:
    deltas = rescore_deltas(
        {"tournament:t1": {"m1": line("m1", "1.00")}, "league:l1": {"m2": line("m2", "1.00")}},
        {"tournament:t1": {"m1": line("m1", "4.00")}, "league:l1": {"m2": line("m2", "3.00")}},
        ruleset_id="predictions:t1",
        version=2,
        now=NOW,
    )
    notices = rescore_notices(
        deltas, "tournament:t1", ruleset_id="predictions:t1", previous=1, now=NOW
    )
    assert [(n.member_id, n.delta, n.old_result, n.new_result, n.subject) for n in notices] == [
        ("m1", Decimal("3.00"), "rules v1", "rules v2", "rules:predictions:t1")
    ]
    assert rescore_key(2, "tournament:t1", "m1") == "rescore:2:tournament:t1:m1"


# -- progress, params ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("done", "total", "elapsed", "rate", "eta"),
    [
        (0, 100, 0.0, "-", "-:--:--"),
        (0, 100, 3.0, "0/s", "-:--:--"),
        (50, 100, 10.0, "5/s", "0:00:10"),
        (1_000, 3_601_000, 1.0, "1,000/s", "1:00:00"),
        (100, 100, 4.0, "25/s", "0:00:00"),
        (120, 100, 4.0, "30/s", "0:00:00"),
    ],
)
def test_rate_and_eta(done: int, total: int, elapsed: float, rate: str, eta: str) -> None:
    assert format_rate(done, elapsed) == rate
    assert format_eta(done, total, elapsed) == eta


def test_params_from_pairs_and_a_file(tmp_path: Path) -> None:
    assert parse_params([]) is None
    assert parse_params(["exact_score=10", " outcome = 1 "]) == {
        "exact_score": "10",
        "outcome": "1",
    }
    path = tmp_path / "rules.json"
    path.write_text(json.dumps({"params": {"exact_score": 8, "exact_bonus": "1.5"}}))
    assert parse_params(["exact_score=9"], str(path)) == {
        "exact_score": "9",  # a pair overrides the file
        "exact_bonus": "1.5",
    }
    with pytest.raises(OperatorError, match="NAME=VALUE"):
        parse_params(["exact_score"])
    with pytest.raises(OperatorError, match="unknown params"):
        rules_from("predictions:t1", 2, {"exact_scor": "10"})


def test_a_run_is_named_by_game_tournament_and_version() -> None:
    job = ReprocessJob("17", PredictionRules("predictions:17", 4))
    assert job.consumer("t1.") == "t1.scoreline-reprocess-predictions-17-v4"


# -- the rule book ------------------------------------------------------------------------


def a_ruleset(rules: PredictionRules) -> RuleSet:
    return RuleSet(
        ruleset_id=rules.ruleset_id,
        game=Game.PREDICTIONS,
        version=rules.version,
        params=rules.to_params(),
        effective_from=NOW,
    )


def test_the_rule_book_carries_the_newest_promoted_version() -> None:
    book = RuleBook()
    book.apply(a_ruleset(OLD))
    assert type(book.for_tournament("t1")) is PredictionRules
    book.apply(a_ruleset(NEW), promoted=True)
    rules = book.for_tournament("t1")
    assert isinstance(rules, RulesInForce) and rules.promoted == NEW
    assert plain_rules(rules) == NEW
    later = PredictionRules("predictions:t1", 3, exact_score=Decimal("12"))
    book.apply(a_ruleset(later))  # a newer version, published the ordinary way
    rules = book.for_tournament("t1")
    assert isinstance(rules, RulesInForce)
    assert (plain_rules(rules), rules.promoted) == (later, NEW)
    assert book.newest("predictions:t1") == later and book.promoted("predictions:t1") == NEW
    assert promotion_key("predictions:t1") == "promoted:predictions:t1"
    assert is_promotion([("scoreline-promoted", b"2")]) and not is_promotion(None)


# -- the correction rule ------------------------------------------------------------------


def a_guess(
    entry: str, member: str, guess: tuple[int, int], minutes: int = -60
) -> PredictionPlaced:
    return PredictionPlaced(
        entry_id=entry,
        member_id=member,
        match_id="x0",
        league_ids=("l1",),
        home_goals=guess[0],
        away_goals=guess[1],
        placed_at=KICKOFF + timedelta(minutes=minutes),
    )


def test_a_correction_after_a_promotion_counts_the_rule_change_once() -> None:
    entries = [a_guess("e1", "m1", (2, 1)), a_guess("e2", "m2", (3, 1))]
    result = a_update("x0", MatchStatus.FINISHED, 2, 1, 1, 2)
    corrected = a_update("x0", MatchStatus.FINISHED, 3, 1, 2, 3)
    live = EntryIndex()
    for offset, entry in enumerate(entries):
        live.add(entry, offset)
    state, outputs = on_match_update(None, result, live, OLD, KICKOFF)
    # The reprocess under NEW, and the promotion: new - old on every line that differs.
    shadow = EntryIndex()
    for offset, entry in enumerate(entries):
        shadow.add(entry, offset)
    _, rescored = on_match_update(None, result, shadow, NEW, KICKOFF)
    deltas = rescore_deltas(
        totals(outputs), totals(list(rescored)), ruleset_id="r", version=2, now=NOW
    )
    assert [(d.member_id, d.points_delta) for d in deltas] == [
        ("m1", Decimal("5.00")),
        ("m1", Decimal("5.00")),
    ]
    # The correction arrives after the promotion: the worker's rule book says NEW, promoted.
    in_force = RulesInForce.of(NEW, NEW)
    after, corrections = on_match_update(state, corrected, live, in_force, KICKOFF)
    expected = oracle_totals(entries, latest_results([result, corrected]), NEW)
    assert nonzero(totals([*outputs, *deltas, *corrections])) == nonzero(expected)
    assert after.scored is not None and after.scored.rules == NEW  # saved plain
    # Without the promoted rules the correction takes back the OLD award: m1 counted twice.
    _, naive = on_match_update(state, corrected, live, NEW, KICKOFF)
    assert nonzero(totals([*outputs, *deltas, *naive])) != nonzero(expected)


def test_a_late_guess_after_a_promotion_is_scored_and_superseded_under_the_promoted_rules() -> None:
    first = a_guess("e1", "m1", (2, 1))
    live = EntryIndex()
    live.add(first, 0)
    result = a_update("x0", MatchStatus.FINISHED, 2, 1, 1, 2)
    state, outputs = on_match_update(None, result, live, OLD, KICKOFF)
    shadow = EntryIndex()
    shadow.add(first, 0)
    _, rescored = on_match_update(None, result, shadow, NEW, KICKOFF)
    deltas = rescore_deltas(
        totals(outputs), totals(list(rescored)), ruleset_id="r", version=2, now=NOW
    )
    # Delivered late (placed on time, read after the result): it supersedes the first guess.
    second = a_guess("e2", "m1", (1, 0), minutes=-30)
    after, late = on_entry(state, live, second, 1, KICKOFF, rules=RulesInForce.of(NEW, NEW))
    expected = oracle_totals([first, second], latest_results([result]), NEW)
    assert nonzero(totals([*outputs, *deltas, *late])) == nonzero(expected)
    assert after is not None and after.scored is not None and after.scored.rules == NEW


def interleave(
    updates: list[MatchUpdated],
    entries: list[PredictionPlaced],
    rng: random.Random,
) -> list[tuple[int, int]]:
    """A random order of (topic, index) over both topics, each topic in its own order."""
    order = [0] * len(updates) + [1] * len(entries)
    rng.shuffle(order)
    seen = [0, 0]
    out = []
    for t in order:
        out.append((t, seen[t]))
        seen[t] += 1
    return out


def run(
    events: list[tuple[int, int]],
    updates: list[MatchUpdated],
    entries: list[PredictionPlaced],
    rules: PredictionRules,
    index: EntryIndex,
    states: dict[str, MatchState],
) -> list[Output]:
    outputs: list[Output] = []
    for t, i in events:
        if t == 0:
            update = updates[i]
            state, out = on_match_update(states.get(update.match_id), update, index, rules, KICKOFF)
            states[update.match_id] = state
        else:
            entry = entries[i]
            after, out = on_entry(states.get(entry.match_id), index, entry, i, KICKOFF, rules=rules)
            if after is not None:
                states[entry.match_id] = after
        outputs += out
    return outputs


@settings(max_examples=300, deadline=None)
@given(scenarios(), st.floats(0, 1))
def test_scored_promoted_then_corrected_equals_the_oracle_under_the_new_rules(
    scenario: tuple[list[MatchUpdated], list[PredictionPlaced], int], cut_at: float
) -> None:
    updates, entries, seed = scenario
    rng = random.Random(seed)
    events = interleave(updates, entries, rng)
    cut = int(len(events) * cut_at)
    before = events[:cut]
    # Live under OLD up to the promotion.
    live_index, live_states = EntryIndex(), dict[str, MatchState]()
    live = run(before, updates, entries, OLD, live_index, live_states)
    # The reprocess reads the same records, in an order of its own, under NEW.
    shadow_order = sorted(before, key=lambda e: (-e[0], e[1]))  # entries first, then matches
    shadow = run(shadow_order, updates, entries, NEW, EntryIndex(), {})
    deltas = rescore_deltas(totals(live), totals(shadow), ruleset_id="r", version=2, now=NOW)
    # After the promotion the live worker's rule book says NEW, promoted.
    after = run(events[cut:], updates, entries, RulesInForce.of(NEW, NEW), live_index, live_states)
    expected = oracle_totals(entries, latest_results(updates), NEW)
    assert nonzero(totals([*live, *deltas, *after])) == nonzero(expected)
