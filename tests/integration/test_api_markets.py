"""The market, bets and balance routes against a real Postgres, filled by the markets sink.

Postgres is filled through the sink's own write path (``MarketsPostgresSink.write``, no
Kafka: these tests pin the API's reads) from a simulated season and its oracle
(``tests/integration/test_markets_sink.py``); what the API must answer comes from the oracle.
"""

from __future__ import annotations

import base64
import json
from collections import Counter
from collections.abc import AsyncIterator, Iterable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest

from api.models import BetCursor
from core.settings import Settings
from producers.bets_simulator import SEASON_START
from schemas.records import (
    AvroRecord,
    BetKind,
    BetLeg,
    BetPlaced,
    MarketOutcome,
    MarketResolved,
    MarketUpdated,
)
from schemas.records.fixtures import MarketKind
from sinks.base import Batch, ConsumedRecord
from sinks.postgres_markets import TOPICS, MarketsPostgresSink, create_pool
from tests.api import api_client
from tests.integration.test_markets_sink import Season, a_season
from tests.support import unique

Body = dict[str, Any]
SETTLED = ("won", "lost", "void", "push")


@pytest.fixture
async def sink(settings: Settings) -> AsyncIterator[MarketsPostgresSink]:
    assert settings.database_url is not None
    pool = await create_pool(settings.database_url.get_secret_value())
    yield MarketsPostgresSink(pool)
    await pool.close()


async def store(sink: MarketsPostgresSink, records: Iterable[tuple[str, AvroRecord]]) -> None:
    """``(logical topic, record)`` pairs written by the sink, as one batch."""
    batch = [ConsumedRecord(t, t, 0, i, None, v, b"", 0) for i, (t, v) in enumerate(records)]
    await sink.write(Batch(batch, {}))


async def store_season(sink: MarketsPostgresSink, season: Season) -> None:
    records = [(t, value) for t in TOPICS for _, value in season.records(t)]
    await store(sink, ((t, v) for t, v in records if isinstance(v, AvroRecord)))


@pytest.fixture
async def season(sink: MarketsPostgresSink) -> Season:
    """A season with open, settled (voids, resettlements) and rejected bets, stored."""
    filled = a_season(seed=3, members=30, bets=800)
    o = filled.oracle
    assert any(b not in o.final for b in o.accepted) and o.rejected
    assert any(s.version > 1 for s in o.settlements)
    await store_season(sink, filled)
    return filled


def price(value: Decimal | None) -> str | None:
    return None if value is None else f"{value:.4f}"


def expected_bets(season: Season, member_id: str, status: str) -> list[Body]:
    """The member's bets as the route lists them (newest first), from the oracle."""
    o = season.oracle
    first: dict[str, BetPlaced] = {}
    for bet in season.bets:
        if bet.member_id == member_id:
            first.setdefault(bet.bet_id, bet)
    out = []
    for bet in sorted(first.values(), key=lambda b: (b.placed_at, b.bet_id), reverse=True):
        final = o.final.get(bet.bet_id)
        rejection = o.rejected.get(bet.bet_id)
        state = final.status.value if final else "rejected" if rejection else "open"
        wanted = {"open": ("open",), "settled": SETTLED}.get(status)
        if wanted is not None and state not in wanted:
            continue
        out.append(
            {
                "bet_id": bet.bet_id,
                "kind": bet.kind.value,
                "stake": f"{bet.stake:.2f}",
                "legs": [
                    {
                        "market_id": leg.market_id,
                        "selection": leg.selection,
                        "odds": price(leg.odds),
                        "price": price(leg.price),
                    }
                    for leg in bet.legs
                ],
                "placed_at": bet.placed_at,
                "status": state,
                "reject_reason": rejection.reason.value if rejection else None,
                "payout": f"{final.payout:.2f}" if final else None,
                "settlement_version": final.version if final else None,
                "settled_at": final.settled_at if final else None,
            }
        )
    return out


def parsed(bet: Body) -> Body:
    """A bet of the JSON with its times as datetimes."""
    times = {k: datetime.fromisoformat(bet[k]) for k in ("placed_at", "settled_at") if bet[k]}
    return {**bet, **times}


async def walk(
    client: httpx.AsyncClient, member_id: str, status: str, limit: int
) -> tuple[list[Body], int]:
    """Every page of a member's bets, following next_cursor: (bets, pages)."""
    bets: list[Body] = []
    params: dict[str, Any] = {"status": status, "limit": limit}
    for pages in range(1, 10_000):
        response = await client.get(f"/members/{member_id}/bets", params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        assert (page["member_id"], page["status"]) == (member_id, status)
        bets.extend(parsed(b) for b in page["data"])
        if page["next_cursor"] is None:
            assert len(page["data"]) <= limit
            return bets, pages
        assert len(page["data"]) == limit
        params["cursor"] = page["next_cursor"]
    raise AssertionError("the cursor never ran out")


async def test_pages_walk_every_bet_once_newest_first_per_status(
    settings: Settings, season: Season
) -> None:
    per_member = Counter(b.member_id for b in season.bets)
    busiest = per_member.most_common(1)[0][0]
    quietest = min(per_member, key=lambda m: (per_member[m], m))
    async with api_client(settings) as client:
        for member_id in (busiest, quietest):
            for status in ("all", "open", "settled"):
                want = expected_bets(season, member_id, status)
                for limit in (1, 4, 50, 200):
                    got, pages = await walk(client, member_id, status, limit)
                    assert got == want, f"{member_id} status={status} limit={limit}"
                    assert pages == max(1, -(-len(want) // limit))
        statuses = Counter(b["status"] for b in (await walk(client, busiest, "all", 200))[0])
    assert statuses["open"] and statuses["rejected"] and statuses["won"] and statuses["lost"]


async def test_a_cursor_continues_after_its_bet_while_new_bets_arrive(
    settings: Settings, season: Season, sink: MarketsPostgresSink
) -> None:
    member_id = Counter(b.member_id for b in season.bets).most_common(1)[0][0]
    want = [b["bet_id"] for b in expected_bets(season, member_id, "all")]
    async with api_client(settings) as client:
        first = (await client.get(f"/members/{member_id}/bets", params={"limit": 5})).json()
        assert [b["bet_id"] for b in first["data"]] == want[:5]
        newest = BetPlaced(
            bet_id=unique("late-"),
            member_id=member_id,
            kind=BetKind.CREDIT,
            stake=Decimal("10.00"),
            legs=(BetLeg(market_id=unique("pm-"), selection="Yes", price=Decimal("0.5000")),),
            placed_at=datetime.now(UTC),
        )
        await store(sink, [("entries.bets", newest)])
        rest: list[str] = []
        params = {"limit": 5, "cursor": first["next_cursor"]}
        while params["cursor"] is not None:
            page = (await client.get(f"/members/{member_id}/bets", params=params)).json()
            rest += [b["bet_id"] for b in page["data"]]
            params["cursor"] = page["next_cursor"]
        again = (await client.get(f"/members/{member_id}/bets", params={"limit": 1})).json()
    assert rest == want[5:]
    assert [b["bet_id"] for b in again["data"]] == [newest.bet_id]
    assert again["data"][0]["status"] == "open" and again["data"][0]["payout"] is None


async def test_balances_are_the_oracles_with_their_entry_counts(
    settings: Settings, season: Season
) -> None:
    counts = Counter(e.member_id for e in season.oracle.ledger.values())
    async with api_client(settings) as client:
        for member_id, balance in season.oracle.balances.items():
            response = await client.get(f"/members/{member_id}/balance")
            assert response.status_code == 200, response.text
            body = response.json()
            assert (body["member_id"], body["balance"], body["ledger_entries"]) == (
                member_id,
                f"{balance:.2f}",
                counts[member_id],
            )
        missing = await client.get(f"/members/{unique('nobody-')}/balance")
        empty = await client.get(f"/members/{unique('nobody-')}/bets")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "account_not_found"
    assert empty.status_code == 200 and empty.json()["data"] == []
    assert empty.json()["next_cursor"] is None


def a_market(
    market_id: str, *, end: datetime, closed: bool = False, kind: MarketKind = MarketKind.BINARY
) -> MarketUpdated:
    names = ("Yes", "No") if kind is MarketKind.BINARY else ("home", "draw", "away")
    odds = (None,) * 2 if kind is MarketKind.BINARY else (Decimal("2.1"), Decimal("3.25"), None)
    prices = (Decimal("0.45"), Decimal("0.55"), Decimal("0.0001"))[: len(names)]
    return MarketUpdated(
        market_id=market_id,
        question=f"Will {market_id} resolve Yes?",
        outcomes=tuple(
            MarketOutcome(name=n, price=p, odds=o)
            for n, p, o in zip(names, prices, odds, strict=True)
        ),
        active=not closed,
        closed=closed,
        end_date=end,
        version=4,
        updated_at=end - timedelta(days=2),
        kind=kind,
        slug=market_id,
    )


async def test_markets_show_status_prices_and_their_latest_resolution(
    settings: Settings, season: Season, sink: MarketsPostgresSink
) -> None:
    now = datetime.now(UTC)
    open_id, expired_id, closed_id = (unique(f"{n}-") for n in ("open", "expired", "closed"))
    await store(
        sink,
        [
            (
                "fixtures.markets",
                a_market(open_id, end=now + timedelta(days=30), kind=MarketKind.MATCH_1X2),
            ),
            ("fixtures.markets", a_market(expired_id, end=now - timedelta(minutes=5))),
            ("fixtures.markets", a_market(closed_id, end=now + timedelta(days=1), closed=True)),
        ],
    )
    resolutions: dict[str, list[MarketResolved]] = {}
    for event in season.events:
        if isinstance(event, MarketResolved):
            resolutions.setdefault(event.market_id, []).append(event)
    reresolved = next(m for m, rs in resolutions.items() if len(rs) > 1 and rs[-1].outcome)
    voided = next(m for m, rs in resolutions.items() if rs[-1].void)
    latest = resolutions[reresolved][-1]

    async with api_client(settings) as client:
        bodies = {
            m: (await client.get(f"/markets/{m}")).json()
            for m in (open_id, expired_id, closed_id, reresolved, voided)
        }
        unknown = await client.get(f"/markets/{unique('pm-')}")

    assert {m: b["status"] for m, b in bodies.items()} == {
        open_id: "open",
        expired_id: "closed",
        closed_id: "closed",
        reresolved: "resolved",
        voided: "void",
    }
    opened = bodies[open_id]
    assert opened["outcomes"] == [
        {"name": "home", "price": "0.4500", "odds": "2.1000"},
        {"name": "draw", "price": "0.5500", "odds": "3.2500"},
        {"name": "away", "price": "0.0001", "odds": None},
    ]
    assert (opened["kind"], opened["version"], opened["resolution"]) == ("match_1x2", 4, None)
    assert opened["question"] == f"Will {open_id} resolve Yes?" and opened["slug"] == open_id
    resolved = bodies[reresolved]
    assert resolved["resolution"] == {
        "outcome": latest.outcome,
        "void": False,
        "version": latest.version,
        "resolved_at": latest.resolved_at.isoformat().replace("+00:00", "Z"),
    }
    updates = [
        e for e in season.events if isinstance(e, MarketUpdated) and e.market_id == reresolved
    ]
    assert resolved["version"] == max(u.version for u in updates)
    assert [o["price"] for o in resolved["outcomes"]] == [
        f"{o.price:.4f}" for o in updates[-1].outcomes
    ]
    assert bodies[voided]["resolution"]["void"] is True
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "market_not_found"


def _cursor(body: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(body).encode()).rstrip(b"=").decode()


async def test_bad_parameters_are_422_never_500(settings: Settings) -> None:
    good = BetCursor(SEASON_START, "b-1").encode()
    assert BetCursor.decode(good) == BetCursor(SEASON_START, "b-1")
    bad_requests: list[tuple[str, dict[str, Any]]] = [
        ("/members/m1/bets", {"status": "won"}),
        ("/members/m1/bets", {"status": ""}),
        ("/members/m1/bets", {"limit": 0}),
        ("/members/m1/bets", {"limit": 201}),
        ("/members/m1/bets", {"limit": "ten"}),
        ("/members/m1/bets", {"cursor": "not a cursor"}),
        ("/members/m1/bets", {"cursor": _cursor({"p": 1})}),
        ("/members/m1/bets", {"cursor": _cursor({"p": "soon", "b": "x"})}),
        ("/members/m1/bets", {"cursor": _cursor({"p": 10**20, "b": "x"})}),
        ("/members/m1/bets", {"cursor": _cursor({"p": 1, "b": ""})}),
        ("/members/m1/bets", {"cursor": "x" * 2000}),
        (f"/members/{'m' * 257}/bets", {}),
        (f"/members/{'m' * 257}/balance", {}),
        (f"/markets/{'p' * 257}", {}),
    ]
    async with api_client(settings) as client:
        answers = [
            (path, params, await client.get(path, params=params)) for path, params in bad_requests
        ]
        fine = await client.get("/members/m1/bets", params={"cursor": good, "status": "settled"})
    for path, params, response in answers:
        assert response.status_code == 422, (path, params, response.text)
        assert "detail" in response.json()
    assert fine.status_code == 200 and fine.json()["data"] == []
