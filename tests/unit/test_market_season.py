"""The replay provider's market season: deterministic, scripted, rendered from state alone."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

from producers.market_feed import gamma_market, odds_event
from producers.market_season import (
    DRAW,
    RESOLUTION_WINDOW,
    MarketPlan,
    MarketSeason,
    Quote,
    Resolution,
    generate_market_season,
    state_at,
)
from producers.season import Correction, Season, final_score, first_final_score
from schemas.records.fixtures import MarketKind
from tests.builders import KICKOFF, a_match_plan, a_season

FIRST_OPEN = KICKOFF - timedelta(days=1)
HOUR = timedelta(hours=1)


def a_market_season(seed: int = 5, **overrides: Any) -> MarketSeason:
    """12 binary markets opening within 6 hours of FIRST_OPEN, and a_season()'s matches."""
    options: dict[str, Any] = {
        "first_open": FIRST_OPEN,
        "football": a_season(),
        "binary_markets": 12,
        "open_spread": timedelta(hours=6),
        "duration": (timedelta(hours=6), timedelta(hours=12)),
        "corrections_at_least": 2,
        "voids_at_least": 2,
    }
    options.update(overrides)
    return generate_market_season(seed, **options)


def binary(season: MarketSeason) -> list[MarketPlan]:
    return [m for m in season.markets if m.kind is MarketKind.BINARY]


def matches(season: MarketSeason) -> list[MarketPlan]:
    return [m for m in season.markets if m.kind is MarketKind.MATCH_1X2]


def test_the_same_seed_gives_the_same_season() -> None:
    assert a_market_season(5) == a_market_season(5)
    assert a_market_season(5).markets != a_market_season(6).markets


def test_binary_and_match_markets_are_generated_with_their_ids() -> None:
    season = a_market_season()
    assert [m.id for m in binary(season)] == list(range(510_001, 510_013))
    football = a_season()
    assert [m.match_id for m in matches(season)] == [p.match_id for p in football.matches]
    assert [m.id for m in matches(season)] == list(range(520_001, 520_001 + 8))
    for market in binary(season):
        assert len(market.outcomes) == 2 and len(market.token_ids) == 2
        assert FIRST_OPEN <= market.opens_at <= FIRST_OPEN + 6 * HOUR
        assert 6 * HOUR <= market.end_date - market.opens_at <= 12 * HOUR
    assert len({t for m in binary(season) for t in m.token_ids}) == 24, "token ids are unique"


def test_at_least_the_asked_corrections_and_voids() -> None:
    season = a_market_season(
        corrections_at_least=3, voids_at_least=4, correction_rate=0.0, void_rate=0.0
    )
    plans = binary(season)
    corrected = [m for m in plans if len(m.resolutions) == 2]
    voided = [m for m in plans if m.resolutions[0].outcome is None]
    assert len(corrected) == 3 and len(voided) == 4
    for market in corrected:
        first, second = market.resolutions
        assert first.outcome != second.outcome and None not in (first.outcome, second.outcome)
        assert first.at < second.at < first.at + RESOLUTION_WINDOW


def test_a_binary_market_opens_moves_closes_and_resolves() -> None:
    season = a_market_season()
    market = next(m for m in binary(season) if len(m.resolutions) == 2 and len(m.quotes) > 2)
    early = market.opens_at - timedelta(minutes=1)
    assert not state_at(market, early).listed
    assert market not in [s.plan for s in season.listed(early)]
    assert market in [s.plan for s in season.listed(market.opens_at)]

    for quote in market.quotes:
        state = state_at(market, quote.at)
        assert state.listed and not state.closed and state.resolution is None
        assert state.prices == quote.values and sum(state.prices) == 1
        assert all(Decimal("0.01") <= p <= Decimal("0.99") for p in state.prices)
        assert state.odds is None
    second = market.quotes[1]
    assert state_at(market, second.at - timedelta(seconds=1)).quote == market.quotes[0]
    assert [q.values for q in market.quotes] == sorted(
        {q.values for q in market.quotes}, key=[q.values for q in market.quotes].index
    ), "every quote is a move"

    closed = state_at(market, market.end_date)
    assert closed.closed and closed.quote == market.quotes[-1] and closed.resolution is None
    first, correction = market.resolutions
    assert state_at(market, first.at).resolution == first
    assert state_at(market, first.at).resolution_version == 1
    corrected = state_at(market, correction.at)
    assert (corrected.resolution, corrected.resolution_version) == (correction, 2)


def test_match_markets_follow_the_football_season() -> None:
    football = a_season()
    season = a_market_season(football=football, odds_interval=timedelta(hours=12))
    for market, plan in zip(matches(season), football.matches, strict=True):
        assert market.outcomes == (plan.home.name, DRAW, plan.away.name)
        assert market.end_date == plan.kickoff and market.token_ids == ()
        assert market.opens_at == plan.kickoff - timedelta(days=6)
        assert all(o > 1 for q in market.quotes for o in q.values)
        assert all(q.at < plan.kickoff for q in market.quotes)
        home, away = first_final_score(plan)
        expected = plan.home.name if home > away else plan.away.name if away > home else DRAW
        assert market.resolutions[0] == Resolution(plan.full_time, expected)
        state = state_at(market, plan.kickoff - timedelta(minutes=1))
        assert state.odds == market.quotes[-1].values
        assert state.prices == tuple(
            (1 / odds).quantize(Decimal("0.0001")) for odds in market.quotes[-1].values
        )
        assert state_at(market, plan.kickoff).closed


def test_a_correction_that_changes_the_result_resolves_the_match_market_again() -> None:
    plan = a_match_plan(correction=Correction(timedelta(minutes=6), "away", 1))  # 2-1, then 2-2
    football = Season(0, plan.competition, (plan.home, plan.away), (plan,))
    (market,) = a_market_season(football=football).markets[12:]
    assert (first_final_score(plan), final_score(plan)) == ((2, 1), (2, 2))
    assert market.resolutions == (
        Resolution(plan.full_time, plan.home.name),
        Resolution(plan.full_time + timedelta(minutes=6), DRAW),
    )

    unchanged = a_match_plan(correction=Correction(timedelta(minutes=6), "home", 1))  # 3-1
    football = Season(0, plan.competition, (plan.home, plan.away), (unchanged,))
    (market,) = a_market_season(football=football).markets[12:]
    assert market.resolutions == (Resolution(unchanged.full_time, plan.home.name),)


def test_the_gamma_object_is_rendered_from_the_state_alone() -> None:
    season = a_market_season()
    market = next(m for m in binary(season) if m.resolutions[0].outcome is not None)
    at = market.quotes[0].at
    state = state_at(market, at)
    assert gamma_market(state) == gamma_market(state_at(market, at + timedelta(seconds=59)))
    listed = gamma_market(state)
    assert listed["id"] == str(market.id) and listed["question"] == market.question
    assert json.loads(listed["outcomes"]) == list(market.outcomes)
    assert json.loads(listed["outcomePrices"]) == [str(v) for v in market.quotes[0].values]
    assert json.loads(listed["clobTokenIds"]) == list(market.token_ids)
    assert (listed["active"], listed["closed"], listed["umaResolutionStatus"]) == (
        True,
        False,
        None,
    )
    assert listed["endDate"].endswith("Z") and "sportsMarketType" not in listed

    first = market.resolutions[0]
    resolved = gamma_market(state_at(market, first.at))
    assert resolved["closed"] and resolved["umaResolutionStatus"] == "resolved"
    assert json.loads(resolved["outcomePrices"]) == [
        "1" if name == first.outcome else "0" for name in market.outcomes
    ]
    voided = next(m for m in binary(season) if m.resolutions[0].outcome is None)
    void = gamma_market(state_at(voided, voided.resolutions[0].at))
    assert json.loads(void["outcomePrices"]) == ["0.5", "0.5"]

    match = matches(season)[0]
    rendered = gamma_market(state_at(match, match.opens_at))
    assert (rendered["sportsMarketType"], rendered["gameId"]) == ("1x2", int(match.match_id or 0))


def test_the_odds_event() -> None:
    season = a_market_season()
    market = matches(season)[0]
    state = state_at(market, market.opens_at)
    event = odds_event(state)
    assert event["id"] == market.match_id
    (bookmaker,) = event["bookmakers"]
    (h2h,) = bookmaker["markets"]
    home, draw, away = market.quotes[0].values
    assert h2h["key"] == "h2h"
    assert h2h["outcomes"] == [
        {"name": market.outcomes[0], "price": float(home)},
        {"name": market.outcomes[2], "price": float(away)},
        {"name": DRAW, "price": float(draw)},
    ]
    with pytest.raises(ValueError, match="not a match market"):
        odds_event(state_at(binary(season)[0], FIRST_OPEN))


def test_what_each_feed_shows() -> None:
    season = a_market_season()
    market = next(m for m in binary(season) if len(m.resolutions) == 2)
    tokens = market.token_ids
    during = market.opens_at + timedelta(minutes=1)
    assert season.midpoints([*tokens, "unknown"], during) == dict(
        zip(tokens, state_at(market, during).quote.values, strict=True)
    )
    assert season.midpoints(tokens, market.end_date) == {}, "a closed market has no midpoint"
    assert season.market_of_token(tokens[1]) == market and season.market_of_token("x") is None

    def in_view(when: Any) -> bool:
        return market in [s.plan for s in season.resolution_view(when)]

    assert not in_view(market.end_date - timedelta(seconds=1))
    assert in_view(market.end_date)
    last = market.resolutions[-1].at
    assert in_view(last + RESOLUTION_WINDOW - timedelta(seconds=1))
    assert not in_view(last + RESOLUTION_WINDOW)

    match = matches(season)[0]
    assert match in [s.plan for s in season.odds_board(match.opens_at)]
    assert match not in [s.plan for s in season.odds_board(match.end_date)]


def a_plan(**overrides: Any) -> MarketPlan:
    options: dict[str, Any] = {
        "id": 1,
        "kind": MarketKind.BINARY,
        "question": "Q?",
        "outcomes": ("Yes", "No"),
        "opens_at": FIRST_OPEN,
        "end_date": FIRST_OPEN + HOUR,
        "quotes": (Quote(FIRST_OPEN, (Decimal("0.4"), Decimal("0.6"))),),
        "resolutions": (Resolution(FIRST_OPEN + 2 * HOUR, "Yes"),),
    }
    options.update(overrides)
    return MarketPlan(**options)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"outcomes": ("Yes", "Yes")}, "distinct outcomes"),
        ({"end_date": FIRST_OPEN}, "opens at or after"),
        ({"match_id": "1001"}, "match id"),
        ({"quotes": ()}, "quotes must start"),
        ({"quotes": (Quote(FIRST_OPEN + HOUR, (Decimal("0.4"), Decimal("0.6"))),)}, "start"),
        ({"quotes": (Quote(FIRST_OPEN, (Decimal("1"), Decimal("0"))),)}, "bad quote"),
        ({"resolutions": (Resolution(FIRST_OPEN, "Yes"),)}, "before the end"),
        ({"resolutions": (Resolution(FIRST_OPEN + HOUR, "Maybe"),)}, "unknown outcome"),
        (
            {
                "resolutions": (
                    Resolution(FIRST_OPEN + HOUR, "Yes"),
                    Resolution(FIRST_OPEN + 2 * HOUR, "Yes"),
                )
            },
            "change the outcome",
        ),
    ],
)
def test_a_bad_plan_is_refused(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        a_plan(**overrides)


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="more corrections and voids"):
        a_market_season(binary_markets=2, corrections_at_least=2, voids_at_least=1)
    with pytest.raises(ValueError, match="RESOLUTION_WINDOW"):
        a_market_season(correction_delay=(HOUR, RESOLUTION_WINDOW))
    with pytest.raises(ValueError, match="correction_rate"):
        a_market_season(correction_rate=0.7, void_rate=0.5)
