"""The replay provider's market feeds: Gamma-, CLOB- and odds-API-shaped routes.

:func:`mount_market_feeds` adds them to the replay app (``create_replay_app(...,
markets=season)``), under ``/api/v1`` so the app's injected 500s cover them too:

- ``GET /api/v1/markets?active=&closed=&limit=&offset=``: Gamma market objects of the
  markets opened so far, by id (a JSON array);
- ``GET /api/v1/midpoints?token_ids=a,b,...``: CLOB midpoints, ``{"<token>": "0.55"}``,
  of the tokens of open markets (others are left out);
- ``GET /api/v1/resolutions?limit=&offset=``: the resolution view, Gamma objects of the
  markets closed until RESOLUTION_WINDOW after their last resolution;
- ``GET /api/v1/sports/football/odds``: open match markets' decimal odds (The Odds API).

Every 200 has a strong ETag and ``Cache-Control: max-age`` like the football feeds, and a
body that depends only on the markets' states. ``Faults.malformed`` keyed by a market id
breaks that market wherever it is served (docs/providers.md, "Market feeds").
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from fastapi import FastAPI, Request, Response
from starlette.exceptions import HTTPException

from producers.clock import Clock, as_utc
from producers.market_normalize import VOID_PRICE
from producers.market_season import DRAW, MarketSeason, MarketState
from producers.replay import API, Faults, Malformation, _body, _etag_matches

#: ``Cache-Control: max-age`` (seconds) per market feed.
MARKET_MAX_AGE: Mapping[str, int] = {"markets": 60, "midpoints": 5, "resolutions": 30, "odds": 10}
DEFAULT_LIMIT = 100
MAX_LIMIT = 500
ODDS_PATH = API + "/sports/football/odds"


#: How ``Malformation`` breaks an item of a feed: (the key given a value of the wrong
#: type, that value, the key left out).
_BREAKS: Mapping[str, tuple[str, str, str]] = {
    "markets": ("outcomePrices", "n/a", "closed"),
    "resolutions": ("outcomePrices", "n/a", "closed"),
    "odds": ("bookmakers", "replay", "bookmakers"),
}


def _malform(item: dict[str, Any], kind: Malformation | None, feed: str) -> dict[str, Any]:
    """A wrong type, a missing key, or as it is (NOT_JSON breaks the whole body)."""
    wrong, value, missing = _BREAKS[feed]
    if kind is Malformation.SCORE_AS_STRING:
        return {**item, wrong: value}
    if kind is Malformation.MISSING_STATUS:
        return {k: v for k, v in item.items() if k != missing}
    return item


# -- the JSON of a market ------------------------------------------------------------------


def _iso(when: datetime) -> str:
    return as_utc(when).isoformat().replace("+00:00", "Z")


def _json_text(values: Iterable[str]) -> str:
    return json.dumps(list(values), separators=(",", ":"))


def gamma_market(state: MarketState) -> dict[str, Any]:
    """A Gamma market object of ``state`` (resolved: the winner priced 1, void all 0.5)."""
    plan, resolution = state.plan, state.resolution
    if resolution is None:
        prices = [str(p) for p in state.prices]
    elif resolution.outcome is None:
        prices = [str(VOID_PRICE)] * len(plan.outcomes)
    else:
        prices = ["1" if name == resolution.outcome else "0" for name in plan.outcomes]
    market: dict[str, Any] = {
        "id": plan.market_id,
        "question": plan.question,
        "conditionId": plan.condition_id,
        "slug": plan.slug,
        "startDate": _iso(plan.opens_at),
        "endDate": _iso(plan.end_date),
        "outcomes": _json_text(plan.outcomes),
        "outcomePrices": _json_text(prices),
        "clobTokenIds": _json_text(plan.token_ids),
        "active": True,
        "closed": state.closed,
        "umaResolutionStatus": None if resolution is None else "resolved",
        "resolvedAt": None if resolution is None else _iso(resolution.at),
        "updatedAt": _iso(state.updated_at),
    }
    if plan.match_id is not None:
        market |= {"sportsMarketType": "1x2", "gameId": int(plan.match_id)}
    return market


def odds_event(state: MarketState) -> dict[str, Any]:
    """An odds event (The Odds API shape) of an open match market."""
    plan, odds = state.plan, state.odds
    if plan.match_id is None or odds is None:
        raise ValueError(f"market {plan.id} is not a match market")
    home, _, away = plan.outcomes
    by_name = dict(zip(plan.outcomes, odds, strict=True))
    changed = _iso(state.quote.at)
    h2h = [{"name": name, "price": float(by_name[name])} for name in (home, away, DRAW)]
    return {
        "id": plan.match_id,
        "sport_key": "soccer_scoreline",
        "commence_time": _iso(plan.end_date),
        "home_team": home,
        "away_team": away,
        "bookmakers": [
            {
                "key": "replay",
                "title": "Scoreline Replay",
                "last_update": changed,
                "markets": [{"key": "h2h", "last_update": changed, "outcomes": h2h}],
            }
        ],
    }


def _int_param(value: str | None, name: str, default: int, high: int | None = None) -> int:
    if value is None:
        return default
    if not value.isdigit() or (high is not None and not 1 <= int(value) <= high):
        bounds = f"1..{high}" if high is not None else "0 or more"
        raise HTTPException(400, f"{name} must be an integer {bounds}: {value!r}")
    return int(value)


def _bool_param(value: str | None, name: str) -> bool | None:
    if value is None:
        return None
    if value.lower() not in ("true", "false"):
        raise HTTPException(400, f"{name} must be true or false: {value!r}")
    return value.lower() == "true"


def _page(
    states: Sequence[MarketState], limit: str | None, offset: str | None
) -> Sequence[MarketState]:
    first = _int_param(offset, "offset", 0)
    return states[first : first + _int_param(limit, "limit", DEFAULT_LIMIT, MAX_LIMIT)]


def mount_market_feeds(
    app: FastAPI, markets: MarketSeason, clock: Clock, *, faults: Faults | None = None
) -> None:
    """Serve ``markets`` on ``app`` at the time ``clock`` says (module docstring)."""
    injected = faults or Faults()

    def kind_of(state: MarketState) -> Malformation | None:
        return injected.malformed.get(state.plan.id)

    def respond(
        request: Request,
        states: Iterable[MarketState],
        feed: str,
        render: Callable[[MarketState], dict[str, Any]],
    ) -> Response:
        kinds = [(state, kind_of(state)) for state in states]
        items = [_malform(render(state), kind, feed) for state, kind in kinds]
        broken = any(kind is Malformation.NOT_JSON for _, kind in kinds)
        return _cached(request, _array_body(items, broken), MARKET_MAX_AGE[feed])

    @app.get(API + "/markets")
    async def market_list(
        request: Request,
        active: str | None = None,
        closed: str | None = None,
        limit: str | None = None,
        offset: str | None = None,
    ) -> Response:
        wanted = {"active": _bool_param(active, "active"), "closed": _bool_param(closed, "closed")}
        states = [
            s
            for s in markets.listed(clock.now())
            if wanted["active"] in (None, True) and wanted["closed"] in (None, s.closed)
        ]
        return respond(request, _page(states, limit, offset), "markets", gamma_market)

    @app.get(API + "/resolutions")
    async def resolutions(
        request: Request, limit: str | None = None, offset: str | None = None
    ) -> Response:
        states = markets.resolution_view(clock.now())
        page = _page(states, limit, offset)
        return respond(request, page, "resolutions", gamma_market)

    @app.get(ODDS_PATH)
    async def odds(request: Request) -> Response:
        return respond(request, markets.odds_board(clock.now()), "odds", odds_event)

    @app.get(API + "/midpoints")
    async def midpoints(request: Request, token_ids: str = "") -> Response:
        tokens = [t for t in token_ids.split(",") if t]
        if not tokens:
            raise HTTPException(400, "token_ids: one or more comma-separated token ids")
        now = clock.now()
        found = markets.midpoints(tokens, now)
        broken = False
        document: dict[str, Any] = {}
        for token, value in found.items():
            plan = markets.market_of_token(token)
            kind = None if plan is None else injected.malformed.get(plan.id)
            broken |= kind is Malformation.NOT_JSON
            document[token] = "n/a" if kind is Malformation.SCORE_AS_STRING else str(value)
        return _cached(request, _body(document, broken), MARKET_MAX_AGE["midpoints"])


def _array_body(items: list[dict[str, Any]], broken: bool) -> bytes:
    """A JSON array, compact; ``broken``: cut in half (not JSON at all)."""
    data = json.dumps(items, separators=(",", ":"), ensure_ascii=False).encode()
    return data[: len(data) // 2] if broken else data


def _cached(request: Request, body: bytes, max_age: int) -> Response:
    """``body`` with a strong ETag, or a 304 when ``If-None-Match`` has that tag."""
    tag = f'"{hashlib.sha256(body).hexdigest()}"'
    headers = {"ETag": tag, "Cache-Control": f"max-age={max_age}"}
    if _etag_matches(request.headers.get("if-none-match"), tag):
        return Response(status_code=304, headers=headers)
    return Response(body, media_type="application/json", headers=headers)
