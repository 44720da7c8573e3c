"""The simulated upstream app: members, leagues, guesses with their warts, and the oracle."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

from producers.season import Season, final_score, first_final_score
from producers.simulator import (
    GUESS_WINDOW,
    LATE_WINDOW,
    SimulatedEntries,
    generate_entries,
    oracle_for,
)
from schemas.records import Game, PredictionPlaced, RejectionReason
from streams.rules.boards import league_board_id, tournament_board_id
from streams.rules.predictions import (
    MatchResult,
    PredictionRules,
    Score,
    check_placement,
    oracle_totals,
)
from tests.builders import a_season

OPTIONS: dict[str, Any] = {
    "members": 1200,
    "leagues": 12,
    "seed": 5,
    "late_rate": 0.05,
    "duplicate_rate": 0.05,
    "regues_rate": 0.05,
}


@pytest.fixture(scope="module")
def season() -> Season:
    return a_season(seed=11, teams=10, rounds=2, corrections_at_least=2)


@pytest.fixture(scope="module")
def entries(season: Season) -> SimulatedEntries:
    return generate_entries(season, **OPTIONS)


def test_the_same_seed_gives_the_same_entries(season: Season, entries: SimulatedEntries) -> None:
    assert generate_entries(season, **OPTIONS) == entries
    other = generate_entries(season, members=1200, leagues=12, seed=6)
    assert other.predictions != entries.predictions


def test_members_and_leagues(entries: SimulatedEntries) -> None:
    member_ids = [m.member_id for m in entries.members]
    assert member_ids[:2] == ["m00001", "m00002"] and member_ids[-1] == "m01200"
    assert member_ids == sorted(member_ids), "string order is numeric order"
    league_ids = [lg.league_id for lg in entries.leagues]
    assert league_ids[:3] == ["l001", "l002", "l003"] and len(league_ids) == 12
    private = [lg for lg in entries.leagues if lg.private]
    assert len(private) == 3, "a quarter of the leagues are private"
    assert all(lg.access_token for lg in private)
    assert all(lg.access_token is None for lg in entries.leagues if not lg.private)
    assert len({lg.access_token for lg in private}) == 3
    assert {lg.tournament_id for lg in entries.leagues} == {"17"}
    for member in entries.members:
        assert 1 <= len(member.league_ids) <= 3
        assert set(member.league_ids) <= set(league_ids)
    by_member = {m.member_id: m.league_ids for m in entries.members}
    assert all(p.league_ids == by_member[p.member_id] for p in entries.predictions)


def test_entry_ids_are_unique_but_for_redeliveries(entries: SimulatedEntries) -> None:
    first_seen: dict[str, PredictionPlaced] = {}
    copies = Counter(p.entry_id for p in entries.predictions)
    for record in entries.predictions:
        assert record.entry_id.startswith(f"e-{record.match_id}-{record.member_id}-")
        if record.entry_id in first_seen:
            assert record == first_seen[record.entry_id], "a redelivery is the same entry"
        first_seen.setdefault(record.entry_id, record)
    assert {e for e, n in copies.items() if n == 2} == entries.duplicated_entry_ids
    assert max(copies.values()) == 2


def test_placed_at_is_utc_with_millisecond_precision(entries: SimulatedEntries) -> None:
    for record in entries.predictions:
        assert record.placed_at.utcoffset() == timedelta(0)
        assert record.placed_at.microsecond % 1000 == 0


def test_late_guesses_are_at_or_after_kickoff_and_the_rest_before(
    season: Season, entries: SimulatedEntries
) -> None:
    kickoffs = season.kickoffs()
    assert entries.late_entry_ids
    for record in entries.predictions:
        kickoff = kickoffs[record.match_id]
        rejection = check_placement(record.placed_at, kickoff)
        if record.entry_id in entries.late_entry_ids:
            assert rejection is RejectionReason.AFTER_KICKOFF
            assert record.placed_at - kickoff <= LATE_WINDOW
        else:
            assert rejection is None
            assert kickoff - record.placed_at <= GUESS_WINDOW
    at_kickoff = [p for p in entries.predictions if p.placed_at == kickoffs[p.match_id]]
    assert at_kickoff, "the boundary (placed exactly at kick-off) is exercised"


def test_reguesses_supersede_with_a_new_entry_placed_later(entries: SimulatedEntries) -> None:
    by_pair: dict[tuple[str, str], dict[str, PredictionPlaced]] = defaultdict(dict)
    for record in entries.predictions:
        by_pair[(record.match_id, record.member_id)][record.entry_id] = record
    assert entries.superseded_entry_ids
    for entry_id in entries.superseded_entry_ids:
        first = next(p for p in entries.predictions if p.entry_id == entry_id)
        pair = by_pair[(first.match_id, first.member_id)]
        (later,) = (p for p in pair.values() if p.entry_id != entry_id)
        assert later.placed_at > first.placed_at
        assert (later.home_goals, later.away_goals) != (first.home_goals, first.away_goals)
        assert later.entry_id not in entries.late_entry_ids


def test_counts_roughly_match_the_rates(season: Season, entries: SimulatedEntries) -> None:
    pairs = {(p.match_id, p.member_id) for p in entries.predictions}
    possible = len(season.matches) * len(entries.members)
    assert 0.87 < len(pairs) / possible < 0.93
    assert 0.035 < len(entries.late_entry_ids) / len(pairs) < 0.065
    on_time = len(pairs) - len(entries.late_entry_ids)
    assert 0.035 < len(entries.superseded_entry_ids) / on_time < 0.065
    distinct = len({p.entry_id for p in entries.predictions})
    assert 0.035 < len(entries.duplicated_entry_ids) / distinct < 0.065
    assert len(entries.predictions) == distinct + len(entries.duplicated_entry_ids)


def test_only_chosen_rounds_are_guessed(season: Season) -> None:
    some = generate_entries(season, members=50, leagues=2, seed=1, rounds={2})
    round_two = {m.match_id for m in season.round_matches(2)}
    assert some.predictions
    assert {p.match_id for p in some.predictions} <= round_two


def test_the_rule_set(entries: SimulatedEntries, season: Season) -> None:
    ruleset = entries.ruleset
    assert (ruleset.ruleset_id, ruleset.game, ruleset.version) == (
        "predictions:17",
        Game.PREDICTIONS,
        1,
    )
    assert ruleset.params == PredictionRules("predictions:17", 1).to_params()
    assert ruleset.effective_from < min(p.placed_at for p in entries.predictions)


def test_the_oracle_ignores_late_duplicate_and_superseded_guesses(
    season: Season, entries: SimulatedEntries
) -> None:
    clean = [
        p
        for p in dict((p.entry_id, p) for p in entries.predictions).values()
        if p.entry_id not in entries.late_entry_ids | entries.superseded_entry_ids
    ]
    assert len({(p.match_id, p.member_id) for p in clean}) == len(clean)
    expected: dict[str, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    rules = entries.rules
    for p in clean:
        plan = season.match(int(p.match_id))
        assert plan is not None
        result = Score(*final_score(plan))
        guess = Score(p.home_goals, p.away_goals)
        points = rules.exact_score if guess == result else None
        if points is None and guess.goal_difference == result.goal_difference:
            points = rules.goal_difference
        if points is None and guess.outcome is result.outcome:
            points = rules.outcome
        for board in (tournament_board_id("17"), *map(league_board_id, p.league_ids)):
            expected[board][p.member_id] += points or Decimal(0)

    oracle = oracle_for(season, entries)
    assert {b: {m: line.total for m, line in lines.items()} for b, lines in oracle.items()} == (
        expected
    )


def test_the_oracle_uses_the_corrected_result(season: Season, entries: SimulatedEntries) -> None:
    corrected = [m for m in season.matches if m.correction is not None]
    assert corrected
    uncorrected_results = {
        m.match_id: MatchResult(m.match_id, "17", Score(*first_final_score(m)), 1, m.kickoff)
        for m in season.matches
    }
    before_correction = oracle_totals(entries.predictions, uncorrected_results, entries.rules)
    assert oracle_for(season, entries) != before_correction

    match = corrected[0]
    on_match = tuple(p for p in entries.predictions if p.match_id == match.match_id)
    only = replace(entries, predictions=on_match)
    at_full_time = oracle_for(season, only, when=match.full_time)
    assert at_full_time == oracle_totals(
        only.predictions, {match.match_id: uncorrected_results[match.match_id]}, only.rules
    )
    assert match.corrected_at is not None
    assert oracle_for(season, only, when=match.corrected_at) == oracle_for(season, only)
    assert at_full_time != oracle_for(season, only)
    assert oracle_for(season, entries, when=min(m.kickoff for m in season.matches)) == {}


def test_rates_are_checked(season: Season) -> None:
    with pytest.raises(ValueError, match="late_rate"):
        generate_entries(season, members=1, leagues=1, seed=1, late_rate=1.5)
