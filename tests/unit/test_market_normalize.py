"""Market normalization: parsing, change detection, one update per market, versions."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from producers.exceptions import MalformedPayloadError
from producers.market_feed import gamma_market, odds_event
from producers.market_normalize import (
    ListedResolution,
    MarketListing,
    OddsQuote,
    ProviderMarketState,
    implied_price,
    listed_quotes,
    market_resolution,
    market_update,
    parse_array,
    parse_market,
    parse_midpoint_items,
    parse_odds_event,
    price,
    with_midpoints,
    with_odds,
)
from producers.market_season import generate_market_season, state_at
from schemas.records import MarketOutcome, MarketResolved, MarketUpdated
from schemas.records.fixtures import MarketKind
from tests.builders import KICKOFF, a_season

AT = datetime(2026, 8, 15, 12, 0, tzinfo=UTC)
PROVIDER = "markets-test"


def a_gamma_market(**overrides: Any) -> dict[str, Any]:
    """An open binary Gamma market, its lists JSON-encoded as Gamma sends them."""
    market: dict[str, Any] = {
        "id": "510001",
        "question": "Will it rain?",
        "conditionId": "0xabc",
        "slug": "will-it-rain",
        "endDate": "2026-08-16T12:00:00Z",
        "outcomes": '["Yes","No"]',
        "outcomePrices": '["0.55","0.45"]',
        "clobTokenIds": '["111","222"]',
        "active": True,
        "closed": False,
        "umaResolutionStatus": None,
        "resolvedAt": None,
        "updatedAt": "2026-08-15T11:00:00Z",
    }
    market.update(overrides)
    return market


def resolved(outcome_prices: str, at: str = "2026-08-16T13:00:00Z") -> MarketListing:
    return parse_market(
        a_gamma_market(
            closed=True,
            outcomePrices=outcome_prices,
            umaResolutionStatus="resolved",
            resolvedAt=at,
        )
    )


def update_of(
    listing: MarketListing, outcomes: Any = None, previous: ProviderMarketState | None = None
) -> tuple[MarketUpdated, ProviderMarketState] | None:
    quotes = listed_quotes(listing) if outcomes is None else outcomes
    return market_update(listing, quotes, provider=PROVIDER, previous=previous, at=AT)


def test_a_gamma_market_is_parsed() -> None:
    listing = parse_market(a_gamma_market())
    assert listing == MarketListing(
        market_id="510001",
        question="Will it rain?",
        slug="will-it-rain",
        kind=MarketKind.BINARY,
        match_id=None,
        outcomes=("Yes", "No"),
        prices=(Decimal("0.55"), Decimal("0.45")),
        token_ids=("111", "222"),
        active=True,
        closed=False,
        end_date=datetime(2026, 8, 16, 12, 0, tzinfo=UTC),
        resolution=None,
    )
    plain = a_gamma_market(outcomes=["Yes", "No"], outcomePrices=["0.55", "0.45"], id=510001)
    assert parse_market(plain) == listing, "plain lists and integer ids are accepted too"
    match = parse_market(a_gamma_market(sportsMarketType="1x2", gameId=1001, clobTokenIds="[]"))
    assert (match.kind, match.match_id, match.token_ids) == (MarketKind.MATCH_1X2, "1001", ())


def test_what_the_replay_provider_renders_is_parsed_back() -> None:
    season = generate_market_season(
        3, first_open=KICKOFF - timedelta(days=1), football=a_season(), binary_markets=4
    )
    for plan in season.markets:
        for when in (plan.opens_at, *(r.at for r in plan.resolutions)):
            state = state_at(plan, when)
            listing = parse_market(json.loads(json.dumps(gamma_market(state))))
            assert (listing.market_id, listing.outcomes) == (plan.market_id, plan.outcomes)
            assert (listing.closed, listing.end_date) == (state.closed, plan.end_date)
            expected = state.resolution
            assert (listing.resolution is None) == (expected is None)
            if listing.resolution is not None and expected is not None:
                assert listing.resolution == ListedResolution(expected.outcome, expected.at)
        if plan.match_id is not None:
            state = state_at(plan, plan.opens_at)
            quote = parse_odds_event(json.loads(json.dumps(odds_event(state))))
            outcomes = with_odds(parse_market(gamma_market(state)), quote)
            assert [o.odds for o in outcomes] == list(plan.quotes[0].values)
            assert [o.price for o in outcomes] == list(state.prices)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"id": None}, "market.id"),
        ({"question": ""}, "market.question"),
        ({"outcomes": '["Yes"]'}, "market.outcomes"),
        ({"outcomes": "Yes,No"}, "market.outcomes"),
        ({"outcomePrices": "n/a"}, "market.outcomePrices"),
        ({"outcomePrices": '["0.5"]'}, "market.outcomePrices"),
        ({"outcomePrices": '["1.5","0.5"]'}, "market.outcomePrices[0]"),
        ({"outcomePrices": "[0.55, true]"}, "market.outcomePrices[1]"),
        ({"clobTokenIds": '["111"]'}, "market.clobTokenIds"),
        ({"closed": "false"}, "market.closed"),
        ({"endDate": "tomorrow"}, "market.endDate"),
        ({"endDate": "2026-08-16T12:00:00"}, "market.endDate"),
        ({"sportsMarketType": "spread"}, "market.sportsMarketType"),
        ({"sportsMarketType": "1x2"}, "market.gameId"),
        ({"umaResolutionStatus": "resolved"}, "market.resolvedAt"),
        (
            {"umaResolutionStatus": "resolved", "resolvedAt": "2026-08-16T13:00:00Z"},
            "market.outcomePrices",
        ),
    ],
)
def test_a_malformed_market_names_the_field(overrides: dict[str, Any], field: str) -> None:
    with pytest.raises(MalformedPayloadError) as error:
        parse_market(a_gamma_market(**overrides))
    assert error.value.field == field


@pytest.mark.parametrize(
    ("body", "reason"),
    [(b'{"markets": []}', "expected a JSON array"), (b"[{", "not JSON"), (b"\xff", "not UTF-8")],
)
def test_a_body_that_is_not_a_json_array(body: bytes, reason: str) -> None:
    with pytest.raises(MalformedPayloadError, match=reason):
        parse_array(body)


def test_each_item_of_an_array_keeps_its_exact_bytes() -> None:
    body = b' [ {"id": "1",  "a": [1, 2]} ,{"id":"2"}\n]'
    items = parse_array(body)
    assert [i.raw for i in items] == [b'{"id": "1",  "a": [1, 2]}', b'{"id":"2"}']
    assert [i.payload["id"] for i in items] == ["1", "2"]


def test_prices_have_four_decimals_and_stay_inside_the_range() -> None:
    assert price("0.55555", "p") == Decimal("0.5556")
    assert price("0.55565", "p") == Decimal("0.5556"), "half-even"
    assert price("0", "p") == Decimal("0.0001") and price("1", "p") == Decimal("0.9999")
    assert price(Decimal("0.5"), "p") == Decimal("0.5000")
    assert price(0.1, "p") == Decimal("0.1000"), "a float is read as its shortest repr"
    for bad in ("1.01", "-0.1", "NaN", "abc", None, True, float("inf")):
        with pytest.raises(MalformedPayloadError):
            price(bad, "p")
    assert implied_price(Decimal("2.5")) == Decimal("0.4000")
    assert implied_price(Decimal("3")) == Decimal("0.3333")
    assert implied_price(Decimal("100000")) == Decimal("0.0001")


def test_the_first_update_is_version_1_and_the_same_content_publishes_nothing() -> None:
    listing = parse_market(a_gamma_market())
    first = update_of(listing)
    assert first is not None
    update, state = first
    assert update == MarketUpdated(
        market_id="510001",
        question="Will it rain?",
        outcomes=(
            MarketOutcome(name="Yes", price=Decimal("0.5500")),
            MarketOutcome(name="No", price=Decimal("0.4500")),
        ),
        active=True,
        closed=False,
        end_date=datetime(2026, 8, 16, 12, 0, tzinfo=UTC),
        version=1,
        updated_at=AT,
        kind=MarketKind.BINARY,
        slug="will-it-rain",
        match_id=None,
    )
    assert (state.version, state.provider, state.market_id) == (1, PROVIDER, "510001")
    assert update_of(listing, previous=state) is None
    cosmetic = a_gamma_market(conditionId="0xdef", updatedAt="2026-08-15T11:30:00Z")
    assert update_of(parse_market(cosmetic), previous=state) is None, "not carried: no change"
    json_spacing = a_gamma_market(outcomePrices='[ "0.550", "0.45" ]')
    assert update_of(parse_market(json_spacing), previous=state) is None


def test_a_price_move_of_both_outcomes_is_one_update_with_the_next_version() -> None:
    listing = parse_market(a_gamma_market())
    first = update_of(listing)
    assert first is not None
    moved = with_midpoints(
        listing, first[0].outcomes, {"111": Decimal("0.6100"), "222": Decimal("0.3900")}
    )
    second = update_of(listing, moved, first[1])
    assert second is not None
    assert [(o.name, o.price) for o in second[0].outcomes] == [
        ("Yes", Decimal("0.61")),
        ("No", Decimal("0.39")),
    ]
    assert second[0].version == second[1].version == 2
    one_side = with_midpoints(listing, moved, {"111": Decimal("0.6200")})
    assert [o.price for o in one_side] == [Decimal("0.62"), Decimal("0.39")]
    assert with_midpoints(listing, moved, {"999": Decimal("0.1")}) == moved


def test_closing_publishes_once_and_a_closed_markets_prices_are_frozen() -> None:
    listing = parse_market(a_gamma_market())
    first = update_of(listing)
    assert first is not None
    closing = parse_market(a_gamma_market(closed=True))
    closed = update_of(closing, first[0].outcomes, first[1])
    assert closed is not None
    assert (closed[0].active, closed[0].closed, closed[0].version) == (False, True, 2)
    assert closed[0].outcomes == first[0].outcomes
    assert update_of(resolved('["1","0"]'), previous=closed[1]) is None, "prices frozen"
    assert update_of(parse_market(a_gamma_market(active=False)), previous=first[1]) is not None


def test_resolutions_corrections_and_voids_are_versioned() -> None:
    unresolved = parse_market(a_gamma_market(closed=True))
    assert market_resolution(unresolved, provider=PROVIDER) is None

    yes = market_resolution(resolved('["1","0"]'), provider=PROVIDER)
    assert yes is not None
    assert yes[0] == MarketResolved(
        market_id="510001",
        outcome="Yes",
        void=False,
        version=1,
        resolved_at=datetime(2026, 8, 16, 13, 0, tzinfo=UTC),
        kind=MarketKind.BINARY,
        match_id=None,
    )
    again = resolved('["1","0"]', at="2026-08-16T14:00:00Z")
    assert market_resolution(again, provider=PROVIDER, previous=yes[1]) is None
    assert market_resolution(unresolved, provider=PROVIDER, previous=yes[1]) is None

    no = market_resolution(
        resolved('["0","1"]', "2026-08-16T15:00:00Z"), previous=yes[1], provider=PROVIDER
    )
    assert no is not None
    assert (no[0].outcome, no[0].void, no[0].version) == ("No", False, 2)

    void = market_resolution(resolved('["0.5","0.5"]'), provider=PROVIDER, previous=no[1])
    assert void is not None
    assert (void[0].outcome, void[0].void, void[0].version) == (None, True, 3)
    assert (
        market_resolution(resolved('["0.50","0.5"]'), previous=void[1], provider=PROVIDER) is None
    )


def test_an_update_keeps_the_resolution_state_and_the_other_way_round() -> None:
    listing = resolved('["1","0"]')
    update = update_of(listing)
    assert update is not None
    resolution = market_resolution(listing, provider=PROVIDER, previous=update[1])
    assert resolution is not None
    state = resolution[1]
    assert (state.version, state.resolution, state.resolution_version) == (1, "outcome:Yes", 1)
    assert update_of(listing, previous=state) is None


def test_odds_events() -> None:
    event = {
        "id": 1001,
        "bookmakers": [
            {
                "key": "replay",
                "markets": [
                    {"key": "totals", "outcomes": []},
                    {
                        "key": "h2h",
                        "outcomes": [
                            {"name": "Home", "price": Decimal("2.1")},
                            {"name": "Away", "price": 3},
                            {"name": "Draw", "price": "3.25"},
                        ],
                    },
                ],
            }
        ],
    }
    quote = parse_odds_event(event)
    assert quote == OddsQuote(
        "1001", {"Home": Decimal("2.1"), "Away": Decimal("3"), "Draw": Decimal("3.25")}
    )
    listing = parse_market(
        a_gamma_market(
            outcomes='["Home","Draw","Away"]',
            outcomePrices='["0.45","0.3","0.25"]',
            clobTokenIds="[]",
            sportsMarketType="1x2",
            gameId=1001,
        )
    )
    outcomes = with_odds(listing, quote)
    assert [(o.name, o.price, o.odds) for o in outcomes] == [
        ("Home", Decimal("0.4762"), Decimal("2.1")),
        ("Draw", Decimal("0.3077"), Decimal("3.25")),
        ("Away", Decimal("0.3333"), Decimal("3")),
    ]
    update = update_of(listing, outcomes)
    assert update is not None and update[0].match_id == "1001"
    assert update[0].kind is MarketKind.MATCH_1X2
    with pytest.raises(MalformedPayloadError, match="no odds for Draw"):
        with_odds(listing, OddsQuote("1001", {"Home": Decimal(2), "Away": Decimal(3)}))
    for broken, field in (
        ({**event, "bookmakers": "replay"}, "event.bookmakers"),
        ({**event, "bookmakers": [{"markets": []}]}, "event.bookmakers[0].markets"),
        ({**event, "id": None}, "event.id"),
    ):
        with pytest.raises(MalformedPayloadError) as error:
            parse_odds_event(broken)
        assert error.value.field == field
    with pytest.raises(MalformedPayloadError, match="above 1"):
        parse_odds_event(json.loads(json.dumps(event, default=str).replace('"3.25"', '"1.0"')))


def test_midpoints_are_an_object_of_tokens_each_with_its_exact_bytes() -> None:
    items = parse_midpoint_items(b'{"111": "0.55",  "222" : "n/a", "333": 0.5}')
    assert [i.payload for i in items] == [("111", "0.55"), ("222", "n/a"), ("333", Decimal("0.5"))]
    assert [i.raw for i in items] == [b'"0.55"', b'"n/a"', b"0.5"]
    with pytest.raises(MalformedPayloadError, match="expected an object"):
        parse_midpoint_items(b'["0.55"]')


def test_a_state_of_another_market_is_refused() -> None:
    listing = parse_market(a_gamma_market())
    other = ProviderMarketState(PROVIDER, "999")
    with pytest.raises(ValueError, match="999"):
        update_of(listing, previous=other)
    with pytest.raises(ValueError, match="999"):
        market_resolution(listing, provider=PROVIDER, previous=other)


PRICES = st.integers(min_value=1, max_value=9999).map(lambda n: Decimal(n) / 10000)
RESOLUTIONS = st.sampled_from([None, '["1","0"]', '["0","1"]', '["0.5","0.5"]'])


@given(st.lists(st.tuples(PRICES, st.booleans(), RESOLUTIONS), min_size=1, max_size=30))
def test_versions_increase_by_one_per_change_and_never_otherwise(
    polls: list[tuple[Decimal, bool, str | None]],
) -> None:
    state: ProviderMarketState | None = None
    contents: list[Any] = []
    resolutions: list[str] = []
    for yes, closed, outcome_prices in polls:
        overrides: dict[str, Any] = {
            "outcomePrices": json.dumps([str(yes), str(1 - yes)]),
            "closed": closed or outcome_prices is not None,
        }
        if outcome_prices is not None:
            overrides |= {
                "outcomePrices": outcome_prices,
                "umaResolutionStatus": "resolved",
                "resolvedAt": "2026-08-16T13:00:00Z",
            }
        listing = parse_market(a_gamma_market(**overrides))
        quotes = listed_quotes(listing)
        content = (listing.closed, None if listing.closed else quotes)
        update = market_update(listing, quotes, provider=PROVIDER, previous=state, at=AT)
        if update is None:
            assert contents and contents[-1] == content
        else:
            assert not contents or contents[-1] != content
            contents.append(content)
            assert update[0].version == len(contents)
            state = update[1]
        resolution = market_resolution(listing, provider=PROVIDER, previous=state)
        key = None if listing.resolution is None else listing.resolution.key
        if resolution is None:
            assert key is None or (resolutions and resolutions[-1] == key)
        else:
            assert key is not None and (not resolutions or resolutions[-1] != key)
            resolutions.append(key)
            assert resolution[0].version == len(resolutions)
            state = resolution[1]
