"""The simulated season: deterministic schedules and the provider JSON along a timeline."""

from __future__ import annotations

import json
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from producers.clock import ManualClock, SimClock
from producers.season import (
    LIVE_WINDOW,
    Correction,
    MatchPlan,
    epoch_seconds,
    event_at,
    final_score,
    first_final_score,
    status_at,
)
from tests.builders import KICKOFF, a_match_plan, a_season

MIN = timedelta(minutes=1)
SECOND = timedelta(seconds=1)


def test_the_same_seed_gives_the_same_season_and_another_seed_another() -> None:
    assert a_season(seed=3) == a_season(seed=3)
    assert a_season(seed=3).matches != a_season(seed=4).matches


def test_schedule_shape() -> None:
    season = a_season(teams=8, rounds=9, matches_per_round=None, kickoff_spread=timedelta(hours=2))
    assert [m.id for m in season.matches] == list(range(1001, 1001 + 9 * 4))
    assert season.rounds == tuple(range(1, 10))
    pairs: Counter[frozenset[int]] = Counter()
    for round_ in season.rounds:
        matches = season.round_matches(round_)
        assert len(matches) == 4
        teams = [t.id for m in matches for t in (m.home, m.away)]
        assert len(set(teams)) == 8, "each team plays once per round"
        start = KICKOFF + (round_ - 1) * timedelta(days=7)
        for m in matches:
            assert start <= m.kickoff <= start + timedelta(hours=2)
            assert m.kickoff.second == 0
            pairs[frozenset((m.home.id, m.away.id))] += 1
    assert len(pairs) == 28, "a round robin: every pair of 8 teams meets"
    assert len({t.name for t in season.teams}) == 8


def test_matches_per_round_and_team_count_are_checked() -> None:
    assert len(a_season(teams=20, rounds=1, matches_per_round=3).matches) == 3
    with pytest.raises(ValueError, match="matches_per_round"):
        a_season(teams=8, matches_per_round=5)
    with pytest.raises(ValueError, match="even"):
        a_season(teams=7)
    with pytest.raises(ValueError, match="decimal"):
        a_season(tournament_id="epl")


def test_corrections_at_least_and_rate() -> None:
    assert sum(m.correction is not None for m in a_season(corrections_at_least=0).matches) == 0
    assert sum(m.correction is not None for m in a_season(corrections_at_least=3).matches) == 3
    assert all(m.correction is not None for m in a_season(correction_rate=1.0).matches)


def test_timeline_from_kickoff_to_correction() -> None:
    plan = a_match_plan(correction=Correction(timedelta(minutes=5), "away", 1))
    half_time = KICKOFF + 47 * MIN
    second_half = half_time + 15 * MIN
    full_time = second_half + 49 * MIN
    assert (plan.half_time, plan.second_half_start, plan.full_time) == (
        half_time,
        second_half,
        full_time,
    )

    before = event_at(plan, KICKOFF - SECOND)
    assert before["status"] == {"code": 0, "type": "notstarted", "description": "Not started"}
    assert before["homeScore"] == {} and before["awayScore"] == {}
    assert "time" not in before
    assert before["startTimestamp"] == epoch_seconds(KICKOFF)

    kicked_off = event_at(plan, KICKOFF)
    assert kicked_off["status"] == {"code": 6, "type": "inprogress", "description": "1st half"}
    assert kicked_off["homeScore"] == {"current": 0, "display": 0, "period1": 0}
    assert kicked_off["time"] == {"currentPeriodStartTimestamp": epoch_seconds(KICKOFF)}
    assert "status.code" in kicked_off["changes"]["changes"]

    goal = event_at(plan, KICKOFF + 20 * MIN)
    assert goal["homeScore"] == {"current": 1, "display": 1, "period1": 1}
    assert goal["changes"] == {
        "changes": ["homeScore.current", "homeScore.display", "homeScore.period1"],
        "changeTimestamp": epoch_seconds(KICKOFF + 20 * MIN),
    }

    ht = event_at(plan, half_time)
    assert ht["status"] == {"code": 31, "type": "inprogress", "description": "Halftime"}
    assert ht["time"] == {"currentPeriodStartTimestamp": epoch_seconds(half_time)}

    second = event_at(plan, second_half + 20 * MIN)
    assert second["status"]["code"] == 7 and second["status"]["description"] == "2nd half"
    assert second["homeScore"] == {"current": 1, "display": 1, "period1": 1, "period2": 0}
    assert second["awayScore"] == {"current": 1, "display": 1, "period1": 0, "period2": 1}

    ended = event_at(plan, full_time)
    assert ended["status"] == {"code": 100, "type": "finished", "description": "Ended"}
    assert "time" not in ended
    assert (ended["homeScore"]["current"], ended["awayScore"]["current"]) == (2, 1)
    assert event_at(plan, full_time + 4 * MIN) == ended, "nothing changes until the correction"

    corrected = event_at(plan, full_time + 5 * MIN)
    assert corrected["status"]["code"] == 100, "a correction keeps the match finished"
    assert corrected["awayScore"] == {"current": 2, "display": 2, "period1": 0, "period2": 2}
    assert corrected["changes"] == {
        "changes": ["awayScore.current", "awayScore.display", "awayScore.period2"],
        "changeTimestamp": epoch_seconds(full_time + 5 * MIN),
    }
    assert event_at(plan, full_time + timedelta(days=3)) == corrected
    assert first_final_score(plan) == (2, 1)
    assert final_score(plan) == (2, 2)


def test_event_json_shape_has_int_ids() -> None:
    event = event_at(a_match_plan(id=1234, round=3), KICKOFF)
    json.dumps(event)  # serializable as is
    assert event["id"] == 1234
    assert event["slug"] == "home-united-away-city"
    assert event["tournament"]["id"] == 17
    assert event["tournament"]["uniqueTournament"] == {"id": 17, "name": "Test League"}
    assert event["season"] == {"id": 2026, "year": "26/27"}
    assert event["roundInfo"] == {"round": 3}
    assert event["homeTeam"]["id"] == 1 and event["awayTeam"]["shortName"] == "Away"


def test_a_correction_may_remove_a_goal_but_not_one_that_never_was() -> None:
    removed = a_match_plan(correction=Correction(timedelta(minutes=3), "home", -1))
    assert (first_final_score(removed), final_score(removed)) == ((2, 1), (1, 1))
    with pytest.raises(ValueError, match="never was"):
        a_match_plan(goals=((10, "home"),), correction=Correction(MIN, "home", -1))


def test_live_window_and_current_round() -> None:
    season = a_season(kickoff_spread=timedelta(0), corrections_at_least=0)
    first, second = season.round_matches(1), season.round_matches(2)
    assert season.live(KICKOFF - SECOND) == ()
    assert season.current_round(KICKOFF - SECOND) == 1
    assert season.live(KICKOFF) == first
    full_time = max(m.full_time for m in first)
    assert season.live(full_time + LIVE_WINDOW - SECOND)
    assert season.live(full_time + LIVE_WINDOW) == ()
    assert season.current_round(full_time) == 2
    assert season.live(second[0].kickoff) == second
    assert season.current_round(KICKOFF + timedelta(days=60)) == 2


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**32))
def test_every_match_runs_forwards_and_a_correction_moves_one_goal(seed: int) -> None:
    season = a_season(seed=seed, correction_rate=0.5)
    for plan in season.matches:
        codes, totals = [], []
        when = plan.kickoff - MIN
        while when <= plan.settled_at + MIN:
            event = event_at(plan, when)
            codes.append(event["status"]["code"])
            totals.append(_total(event))
            when += MIN
        assert _collapse(codes) == [0, 6, 31, 7, 100]
        to_full_time = totals[: codes.index(100) + 1]
        assert to_full_time == sorted(to_full_time), "no goal is taken back during play"
        assert totals[codes.index(100)] == sum(first_final_score(plan))
        assert totals[-1] == sum(final_score(plan))
        _check_correction(plan)


def _check_correction(plan: MatchPlan) -> None:
    first, final = first_final_score(plan), final_score(plan)
    if plan.correction is None:
        assert first == final
        return
    assert abs(sum(final) - sum(first)) == 1
    assert status_at(plan, plan.settled_at).code == 100
    assert plan.settled_at - plan.full_time < LIVE_WINDOW


def _total(event: dict[str, Any]) -> int:
    return int(event["homeScore"].get("current", 0) + event["awayScore"].get("current", 0))


def _collapse(codes: list[int]) -> list[int]:
    return [c for i, c in enumerate(codes) if i == 0 or codes[i - 1] != c]


def test_clocks() -> None:
    manual = ManualClock(KICKOFF)
    assert manual.now() == KICKOFF
    assert manual.advance(MIN) == KICKOFF + MIN
    assert manual.set(KICKOFF - MIN) == KICKOFF - MIN
    with pytest.raises(ValueError):
        manual.advance(-MIN)
    ticks = iter([100.0, 102.5])
    sim = SimClock(KICKOFF, speed=60, monotonic=lambda: next(ticks))
    now = sim.now()
    assert now == KICKOFF + timedelta(seconds=150)
    assert now.utcoffset() == timedelta(0)
