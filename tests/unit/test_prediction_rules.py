"""Guess the score: awards, rule sets, kick-off, duplicates, supersession, corrections, oracle."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.exceptions import PoisonRecordError
from schemas.records import (
    CENTS,
    Game,
    MatchStatus,
    MatchUpdated,
    PredictionPlaced,
    RejectionReason,
    RuleSet,
)
from streams.exceptions import RuleSetError
from streams.rules import predictions
from streams.rules.boards import BoardLine
from streams.rules.predictions import (
    DEFAULT_POINTS,
    Award,
    MatchResult,
    Outcome,
    PredictionRules,
    Score,
    board_ids,
    check_entry,
    check_placement,
    correction_delta,
    effective_entries,
    guess_of,
    idempotency_key,
    latest_results,
    oracle_totals,
    score_prediction,
    supersedes,
)

KICKOFF = datetime(2025, 3, 1, 15, 0, tzinfo=UTC)
RULES = PredictionRules("predictions:epl", 1)
MS = timedelta(milliseconds=1)


def a_prediction(
    entry_id: str = "e1",
    *,
    member_id: str = "m1",
    match_id: str = "x1",
    guess: tuple[int, int] = (1, 0),
    placed_at: datetime = KICKOFF - timedelta(hours=1),
    league_ids: tuple[str, ...] = (),
) -> PredictionPlaced:
    return PredictionPlaced(
        entry_id=entry_id,
        member_id=member_id,
        match_id=match_id,
        league_ids=league_ids,
        home_goals=guess[0],
        away_goals=guess[1],
        placed_at=placed_at,
    )


def a_match(
    match_id: str = "x1",
    *,
    score: tuple[int, int] = (1, 0),
    status: MatchStatus = MatchStatus.FINISHED,
    result_version: int = 1,
    provider_version: int = 1,
    tournament_id: str = "epl",
    kickoff_at: datetime = KICKOFF,
) -> MatchUpdated:
    return MatchUpdated(
        match_id=match_id,
        tournament_id=tournament_id,
        home_team_id="h",
        home_team_name="Home",
        away_team_id="a",
        away_team_name="Away",
        status=status,
        home_score=score[0],
        away_score=score[1],
        kickoff_at=kickoff_at,
        provider="sim",
        provider_version=provider_version,
        result_version=result_version,
        updated_at=kickoff_at + timedelta(hours=2, minutes=result_version),
    )


def a_result(
    match_id: str = "x1", score: tuple[int, int] = (1, 0), version: int = 1
) -> MatchResult:
    return MatchResult(match_id, "epl", Score(*score), version, KICKOFF)


def award(guess: tuple[int, int], result: tuple[int, int], rules: PredictionRules = RULES) -> Award:
    return score_prediction(Score(*guess), Score(*result), rules)


# --- the rules, by example -------------------------------------------------------------


def test_cents_is_the_one_from_schemas() -> None:
    assert predictions.CENTS is CENTS


def test_exact_score() -> None:
    assert award((2, 1), (2, 1)) == Award(Decimal("5.00"), "exact_score", exact=True)
    assert award((0, 0), (0, 0)).reason == "exact_score"


def test_goal_difference() -> None:
    assert award((3, 2), (2, 1)) == Award(Decimal("3.00"), "goal_difference", exact=False)
    assert award((0, 2), (1, 3)).reason == "goal_difference"


def test_a_draw_guessed_with_the_wrong_score_is_the_goal_difference() -> None:
    assert award((1, 1), (2, 2)) == Award(Decimal("3.00"), "goal_difference", exact=False)


def test_outcome() -> None:
    assert award((2, 0), (3, 2)) == Award(Decimal("2.00"), "outcome", exact=False)
    assert award((0, 1), (0, 4)).reason == "outcome"


def test_miss() -> None:
    assert award((0, 1), (2, 1)) == Award(Decimal("0.00"), "miss", exact=False)
    assert award((1, 1), (1, 0)).reason == "miss"
    assert award((2, 0), (1, 1)).reason == "miss"


def test_exact_bonus_adds_to_an_exact_score_only() -> None:
    rules = PredictionRules.from_params("r", 2, {"exact_bonus": "2"})
    assert award((2, 1), (2, 1), rules).points == Decimal("7.00")
    assert award((3, 2), (2, 1), rules).points == Decimal("3.00")


def test_custom_params() -> None:
    rules = PredictionRules.from_params(
        "predictions:office", 3, {"exact_score": "10", "goal_difference": "4.5", "outcome": "1"}
    )
    assert (rules.exact_score, rules.goal_difference, rules.outcome, rules.exact_bonus) == (
        Decimal("10.00"),
        Decimal("4.50"),
        Decimal("1.00"),
        Decimal("0.00"),
    )
    assert award((1, 1), (2, 2), rules).points == Decimal("4.50")
    assert str(award((1, 0), (2, 0), rules).points) == "1.00"


def test_defaults() -> None:
    rules = PredictionRules.from_params("predictions:epl", 1, {})
    assert rules == RULES
    assert rules.to_params() == {
        "exact_score": "5.00",
        "goal_difference": "3.00",
        "outcome": "2.00",
        "exact_bonus": "0.00",
    }


def test_from_ruleset_record() -> None:
    record = RuleSet(
        ruleset_id="predictions:epl",
        game=Game.PREDICTIONS,
        version=4,
        params={"outcome": "1"},
        effective_from=KICKOFF,
    )
    assert PredictionRules.from_ruleset(record) == PredictionRules(
        "predictions:epl", 4, outcome=Decimal(1)
    )
    with pytest.raises(RuleSetError, match="betting"):
        PredictionRules.from_ruleset(
            RuleSet(ruleset_id="b", game=Game.BETTING, version=1, params={}, effective_from=KICKOFF)
        )


@pytest.mark.parametrize(
    "params",
    [
        {"exact_score": "-1"},
        {"outcome": "two"},
        {"outcome": ""},
        {"outcome": "NaN"},
        {"exact_bonus": "Infinity"},
        {"exact_bonus": "-0.01"},
        {"outcome": "1.005"},
        {"exact_score": "1e20"},
        {"exact_scroe": "5"},
        {"goal_difference": "6"},
        {"outcome": "4"},
        {"outcome": 2},
    ],
)
def test_bad_rule_sets_are_poison(params: dict[str, str]) -> None:
    with pytest.raises(RuleSetError) as caught:
        PredictionRules.from_params("predictions:bad", 7, params)
    assert isinstance(caught.value, PoisonRecordError)
    assert "predictions:bad" in str(caught.value)


def test_bad_version_is_poison() -> None:
    with pytest.raises(RuleSetError):
        PredictionRules("r", -1)


def test_negative_zero_is_zero() -> None:
    rules = PredictionRules.from_params("r", 1, {"exact_bonus": "-0"})
    assert rules.to_params()["exact_bonus"] == "0.00"


def test_score_and_outcome() -> None:
    assert Outcome.of(Score(2, 1)) is Outcome.HOME
    assert Score(1, 1).outcome is Outcome.DRAW
    assert Score(0, 3).outcome is Outcome.AWAY
    assert Score(0, 3).goal_difference == -3
    assert str(Score(2, 1)) == "2-1"
    for home, away in [(-1, 0), (0, -1)]:
        with pytest.raises(ValueError):
            Score(home, away)
    with pytest.raises(ValueError):
        Score(True, 0)


# --- the rules, as properties ------------------------------------------------------------

goals = st.integers(0, 12)
scores = st.builds(Score, goals, goals)


def _rules(cents: list[int], bonus: int, version: int) -> PredictionRules:
    outcome, goal_difference, exact_score = (Decimal(c).scaleb(-2) for c in sorted(cents))
    return PredictionRules(
        "r",
        version,
        exact_score=exact_score,
        goal_difference=goal_difference,
        outcome=outcome,
        exact_bonus=Decimal(bonus).scaleb(-2),
    )


cents = st.integers(0, 100_000)
rule_sets = st.builds(_rules, st.lists(cents, min_size=3, max_size=3), cents, st.integers(0, 99))


def check_award(guess: Score, result: Score, rules: PredictionRules) -> None:
    got = score_prediction(guess, result, rules)
    assert got.points >= 0
    assert got.points == got.points.quantize(CENTS)
    assert got.exact == (guess == result) == (got.reason == "exact_score")
    assert got.points <= score_prediction(result, result, rules).points
    assert score_prediction(guess, result, rules) == got  # deterministic
    paid = {
        "exact_score": rules.exact_score + rules.exact_bonus,
        "goal_difference": rules.goal_difference,
        "outcome": rules.outcome,
        "miss": Decimal(0),
    }
    assert got.points == paid[got.reason]
    if got.reason == "goal_difference":
        assert guess.goal_difference == result.goal_difference
    if got.reason in ("exact_score", "goal_difference", "outcome"):
        assert guess.outcome is result.outcome
    if got.reason == "miss":
        assert guess.outcome is not result.outcome


@settings(max_examples=1000)
@given(scores, scores, rule_sets)
def test_awards_are_never_negative_and_exact_pays_the_most(
    guess: Score, result: Score, rules: PredictionRules
) -> None:
    check_award(guess, result, rules)


SMALL = [Score(home, away) for home in range(7) for away in range(7)]


@pytest.mark.parametrize(
    "rules",
    [
        RULES,
        PredictionRules("bonus", 2, exact_bonus=Decimal("2.5")),
        PredictionRules("flat", 3, *(Decimal(1),) * 3),
        PredictionRules("nothing", 4, *(Decimal(0),) * 4),
    ],
    ids=["defaults", "bonus", "flat", "nothing"],
)
def test_awards_on_every_small_score(rules: PredictionRules) -> None:
    """Every guess against every result from 0-0 to 6-6: 2,401 pairs per rule set."""
    for guess in SMALL:
        for result in SMALL:
            check_award(guess, result, rules)


@settings(max_examples=500)
@given(rule_sets)
def test_params_round_trip(rules: PredictionRules) -> None:
    assert PredictionRules.from_params(rules.ruleset_id, rules.version, rules.to_params()) == rules


# --- kick-off ------------------------------------------------------------------------


def test_a_guess_at_kickoff_is_rejected_one_millisecond_before_is_accepted() -> None:
    assert check_placement(KICKOFF, KICKOFF) is RejectionReason.AFTER_KICKOFF
    assert check_placement(KICKOFF + MS, KICKOFF) is RejectionReason.AFTER_KICKOFF
    assert check_placement(KICKOFF - MS, KICKOFF) is None


def test_placement_compares_across_time_zones() -> None:
    paris = timezone(timedelta(hours=1))
    assert check_placement(datetime(2025, 3, 1, 16, 0, tzinfo=paris), KICKOFF) is not None
    assert check_placement(datetime(2025, 3, 1, 15, 59, tzinfo=paris), KICKOFF) is None


def test_naive_datetimes_are_refused() -> None:
    naive = datetime(2025, 3, 1, 14, 0)  # naive on purpose
    with pytest.raises(ValueError, match="placed_at"):
        check_placement(naive, KICKOFF)
    with pytest.raises(ValueError, match="kickoff_at"):
        check_placement(KICKOFF, naive)


def test_check_entry() -> None:
    assert check_entry(a_prediction(), KICKOFF) is None
    assert check_entry(a_prediction(placed_at=KICKOFF), KICKOFF) is RejectionReason.AFTER_KICKOFF
    assert check_entry(a_prediction(guess=(-1, 0)), KICKOFF) is RejectionReason.MALFORMED
    assert guess_of(a_prediction(guess=(3, 1))) == Score(3, 1)


# --- duplicates and supersession -----------------------------------------------------

KICKOFFS = {"x1": KICKOFF, "x2": KICKOFF + timedelta(days=1)}


def test_a_redelivered_entry_counts_once() -> None:
    entry = a_prediction("e1")
    assert effective_entries([entry, entry, entry], KICKOFFS) == {("x1", "m1"): entry}
    assert not supersedes(entry, entry)
    # An entry id is the entry: a later record reusing it changes nothing, whatever it holds.
    reused = a_prediction("e1", guess=(4, 4), placed_at=KICKOFF - MS)
    assert effective_entries([entry, reused], KICKOFFS) == {("x1", "m1"): entry}


def test_the_last_guess_placed_before_kickoff_counts() -> None:
    early = a_prediction("e1", guess=(1, 0), placed_at=KICKOFF - timedelta(hours=2))
    later = a_prediction("e2", guess=(2, 0), placed_at=KICKOFF - MS)
    late = a_prediction("e3", guess=(3, 0), placed_at=KICKOFF)
    for order in ([early, later, late], [late, later, early], [later, early, late]):
        assert effective_entries(order, KICKOFFS) == {("x1", "m1"): later}


def test_a_tie_on_placed_at_goes_to_the_greater_entry_id() -> None:
    a = a_prediction("a", guess=(1, 0))
    b = a_prediction("b", guess=(0, 1))
    assert effective_entries([b, a], KICKOFFS)[("x1", "m1")] is b
    assert supersedes(b, a)
    assert not supersedes(a, b)


def test_members_and_matches_are_apart() -> None:
    entries = [
        a_prediction("e1", member_id="m1", match_id="x1"),
        a_prediction("e2", member_id="m2", match_id="x1"),
        a_prediction("e3", member_id="m1", match_id="x2"),
        a_prediction("e4", member_id="m1", match_id="unknown"),
        a_prediction("e5", member_id="m3", guess=(-1, 2)),
    ]
    assert set(effective_entries(entries, KICKOFFS)) == {("x1", "m1"), ("x1", "m2"), ("x2", "m1")}


guesses = st.tuples(st.integers(0, 3), st.integers(0, 3))
offsets_ms = st.integers(-5, 2)  # a few ms around kick-off: ties and late entries are common


@st.composite
def entry_logs(draw: st.DrawFn) -> list[PredictionPlaced]:
    """Entries in log order, unique entry ids, then some redelivered later."""
    rows = draw(
        st.lists(
            st.tuples(
                st.sampled_from(["m1", "m2", "m3"]),
                st.sampled_from(["x1", "x2", "x3"]),
                guesses,
                offsets_ms,
                st.lists(st.sampled_from(["a", "b"]), max_size=2),
            ),
            max_size=15,
        )
    )
    log = [
        a_prediction(
            f"e{i:02d}",
            member_id=member,
            match_id=match,
            guess=guess,
            placed_at=KICKOFF + offset * MS,
            league_ids=tuple(leagues),
        )
        for i, (member, match, guess, offset, leagues) in enumerate(rows)
    ]
    if log:
        log += draw(st.lists(st.sampled_from(log), max_size=5))
    return log


SAME_KICKOFF = {"x1": KICKOFF, "x2": KICKOFF, "x3": KICKOFF}


@settings(max_examples=250)
@given(entry_logs(), st.randoms(use_true_random=False))
def test_effective_entries_are_the_last_on_time_guess_whatever_the_order(
    log: list[PredictionPlaced], rnd: random.Random
) -> None:
    effective = effective_entries(log, SAME_KICKOFF)
    for (match_id, member_id), chosen in effective.items():
        assert (chosen.match_id, chosen.member_id) == (match_id, member_id)
        assert chosen.placed_at < KICKOFF
        rivals = [e for e in log if (e.match_id, e.member_id) == (match_id, member_id)]
        assert all(not supersedes(e, chosen) for e in rivals if e.placed_at < KICKOFF)
    on_time = {(e.match_id, e.member_id) for e in log if e.placed_at < KICKOFF}
    assert set(effective) == on_time
    shuffled = list(log)
    rnd.shuffle(shuffled)
    assert effective_entries(shuffled, SAME_KICKOFF) == effective


# --- corrections, idempotency --------------------------------------------------------


def test_idempotency_key() -> None:
    assert idempotency_key("x1", "e1", 2, 3) == "score:x1:e1:2:3"


def test_a_correction_is_the_delta_new_minus_old() -> None:
    guess = Score(2, 1)
    first = score_prediction(guess, Score(2, 1), RULES)  # 5
    second = score_prediction(guess, Score(1, 0), RULES)  # 3
    third = score_prediction(guess, Score(0, 0), RULES)  # 0
    assert correction_delta(None, first) == Decimal("5.00")
    assert correction_delta(first, second) == Decimal("-2.00")
    assert correction_delta(second, third) == Decimal("-3.00")
    assert correction_delta(third, third) == 0


@settings(max_examples=300)
@given(scores, st.lists(scores, min_size=1, max_size=5), rule_sets)
def test_the_deltas_of_a_result_history_add_up_to_the_final_award(
    guess: Score, history: list[Score], rules: PredictionRules
) -> None:
    old: Award | None = None
    total = Decimal(0)
    for result in history:
        new = score_prediction(guess, result, rules)
        total += correction_delta(old, new)
        old = new
    assert total == score_prediction(guess, history[-1], rules).points


# --- results and the oracle ----------------------------------------------------------


def test_latest_results_take_the_highest_finished_version() -> None:
    updates = [
        a_match("x1", score=(0, 0), status=MatchStatus.INPROGRESS, result_version=0),
        a_match("x1", score=(1, 0), result_version=1),
        a_match("x1", score=(2, 0), result_version=3),
        a_match("x1", score=(9, 9), result_version=2),
        a_match("x2", score=(0, 0), status=MatchStatus.HALFTIME),
        a_match("x3", score=(1, 1), result_version=1, provider_version=1),
        a_match("x3", score=(2, 2), result_version=1, provider_version=2),
    ]
    results = latest_results(updates)
    assert results == {
        "x1": MatchResult("x1", "epl", Score(2, 0), 3, KICKOFF),
        "x3": MatchResult("x3", "epl", Score(2, 2), 1, KICKOFF),
    }


def test_board_ids() -> None:
    entry = a_prediction(league_ids=("office", "family", "office"))
    assert board_ids(entry, "epl") == ("tournament:epl", "league:family", "league:office")


def test_oracle_counts_effective_on_time_entries_against_the_latest_result() -> None:
    entries = [
        a_prediction("e1", member_id="ann", guess=(2, 1), league_ids=("office",)),
        a_prediction("e1", member_id="ann", guess=(2, 1), league_ids=("office",)),  # again
        a_prediction("e2", member_id="bob", guess=(1, 0), placed_at=KICKOFF - timedelta(days=1)),
        a_prediction("e3", member_id="bob", guess=(3, 0), placed_at=KICKOFF - MS),  # supersedes
        a_prediction("e4", member_id="cat", guess=(2, 1), placed_at=KICKOFF),  # late
        a_prediction("e5", member_id="cat", guess=(0, 3), league_ids=("office",)),
        a_prediction("e6", member_id="ann", match_id="x2", guess=(0, 0)),  # not finished
        a_prediction("e7", member_id="ann", match_id="x3", guess=(1, 1), league_ids=("office",)),
    ]
    updates = [
        a_match("x1", score=(1, 0), result_version=1),
        a_match("x1", score=(2, 1), result_version=2),  # corrected: counts once, at 2-1
        a_match("x2", score=(0, 0), status=MatchStatus.INPROGRESS),
        a_match("x3", score=(1, 1), result_version=1),
    ]
    totals = oracle_totals(entries, latest_results(updates), RULES)
    assert totals == {
        "tournament:epl": {
            "ann": BoardLine("ann", Decimal("10.00"), 2),
            "bob": BoardLine("bob", Decimal("2.00"), 0),
            "cat": BoardLine("cat", Decimal("0.00"), 0),
        },
        "league:office": {
            "ann": BoardLine("ann", Decimal("10.00"), 2),
            "cat": BoardLine("cat", Decimal("0.00"), 0),
        },
    }


def test_oracle_with_rules_per_board() -> None:
    entries = [a_prediction("e1", guess=(1, 0), league_ids=("office",))]
    rules = {
        "tournament:epl": RULES,
        "league:office": PredictionRules("predictions:office", 2, exact_bonus=Decimal("1.5")),
    }
    totals = oracle_totals(entries, {"x1": a_result("x1", (1, 0))}, rules)
    assert totals["tournament:epl"]["m1"].total == Decimal("5.00")
    assert totals["league:office"]["m1"].total == Decimal("6.50")
    with pytest.raises(KeyError):
        oracle_totals(entries, {"x1": a_result("x1", (1, 0))}, {"tournament:epl": RULES})


@st.composite
def result_histories(draw: st.DrawFn) -> list[MatchResult]:
    """Result versions in arrival order, each match corrected zero to three times."""
    history: list[MatchResult] = []
    for match_id in draw(st.lists(st.sampled_from(["x1", "x2", "x3"]), unique=True)):
        for version in range(1, draw(st.integers(1, 4)) + 1):
            history.append(a_result(match_id, draw(guesses), version))
    return draw(st.permutations(history).map(lambda h: sorted(h, key=lambda r: r.result_version)))


@settings(max_examples=200)
@given(entry_logs(), result_histories(), rule_sets)
def test_incremental_scoring_with_corrections_matches_the_oracle(
    log: list[PredictionPlaced], history: list[MatchResult], rules: PredictionRules
) -> None:
    """Apply each result version as the pipeline does (deltas, once per key): same totals."""
    kickoffs = {r.match_id: r.kickoff_at for r in history}
    effective = effective_entries(log, kickoffs)
    applied: set[str] = set()
    last: dict[tuple[str, str], Award] = {}
    boards: dict[str, dict[str, tuple[Decimal, int]]] = {}
    for result in history + history:  # everything redelivered: must change nothing
        for (match_id, member_id), entry in effective.items():
            if match_id != result.match_id:
                continue
            key = idempotency_key(match_id, entry.entry_id, result.result_version, rules.version)
            if key in applied:
                continue
            applied.add(key)
            new = score_prediction(guess_of(entry), result.score, rules)
            old = last.get((match_id, member_id))
            delta = correction_delta(old, new)
            exact_delta = int(new.exact) - int(old.exact if old else False)
            last[(match_id, member_id)] = new
            for board_id in board_ids(entry, result.tournament_id):
                total, exact = boards.setdefault(board_id, {}).get(member_id, (Decimal(0), 0))
                boards[board_id][member_id] = (total + delta, exact + exact_delta)
    final = {r.match_id: r for r in history}  # the latest version of each match
    expected = oracle_totals(log, final, rules)
    got = {
        board_id: {m: BoardLine(m, total, exact) for m, (total, exact) in members.items()}
        for board_id, members in boards.items()
    }
    assert got == expected
    assert all(line.total >= 0 for board in expected.values() for line in board.values())
    assert set(DEFAULT_POINTS) == set(rules.to_params())
