"""The board and match routes against real Postgres and Redis.

The stores are filled directly (rows into ``board_totals``/``matches``/``leagues``, sorted
sets per ``sinks/redis_layout.py``), not through Kafka: these tests pin the API's reads.
The oracle for order and ranks is ``streams.rules.boards.rank_board``.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import time
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from pydantic import SecretStr

from core.settings import Settings
from core.stack.process import free_port
from sinks.redis_layout import board_key, boards_key, encode_score, meta_key
from streams.rules.boards import BoardLine, rank_board, sort_key
from tests.api import api_client
from tests.support import unique

Line = tuple[str, str, int]  # (member_id, total, exact_count)
Body = dict[str, Any]

# Board order and ranks: abe 1; bea, carl 2; eve 4; dora, gus, hal 5; fay 8.
BOARD: list[Line] = [
    ("gus", "10.00", 1),
    ("carl", "12.50", 2),
    ("hal", "10.00", 1),
    ("bea", "12.50", 2),
    ("abe", "15.00", 0),
    ("eve", "12.50", 1),
    ("fay", "-0.50", 0),
    ("dora", "10.00", 1),
]
SOURCES = ["redis", "postgres"]


async def execute(settings: Settings, sql: str, *args: Any, many: bool = False) -> None:
    assert settings.database_url is not None
    conn = await asyncpg.connect(settings.database_url.get_secret_value())
    try:
        await (conn.executemany(sql, args[0]) if many else conn.execute(sql, *args))
    finally:
        await conn.close()


@asynccontextmanager
async def redis_client(settings: Settings) -> AsyncIterator[aioredis.Redis]:
    assert settings.redis_url is not None
    client = aioredis.Redis.from_url(settings.redis_url.get_secret_value())
    try:
        yield client
    finally:
        await client.aclose()


async def fill(settings: Settings, source: str, board_id: str, lines: list[Line]) -> None:
    """The board's lines (inserted or updated) in Postgres, and in Redis when it is the source."""
    rows = [(board_id, member, Decimal(total), exact) for member, total, exact in lines]
    await execute(
        settings,
        """insert into board_totals (board_id, member_id, total, exact_count)
           values ($1, $2, $3, $4) on conflict (board_id, member_id)
           do update set total = excluded.total, exact_count = excluded.exact_count""",
        rows,
        many=True,
    )
    if source == "redis":
        prefix = settings.redis_prefix
        scores = {m: encode_score(Decimal(t), e) for m, t, e in lines}
        async with redis_client(settings) as client, client.pipeline(transaction=True) as pipe:
            pipe.zadd(board_key(prefix, board_id), scores)
            pipe.sadd(boards_key(prefix), board_id)
            pipe.hset(meta_key(prefix, board_id), "updated_at", str(int(time.time() * 1000)))
            await pipe.execute()


async def drop_from_redis(settings: Settings, board_id: str, *members: str) -> None:
    """The whole board, or only ``members``, out of Redis."""
    async with redis_client(settings) as client:
        key = board_key(settings.redis_prefix, board_id)
        await (client.zrem(key, *members) if members else client.delete(key))


def expected(lines: Iterable[Line]) -> list[Body]:
    """The board as the API must list it, from the pure ranking function."""
    ranked = rank_board(BoardLine(m, Decimal(t), e) for m, t, e in lines)
    fields = ("rank", "member_id", "total", "exact_count")
    rows = ((r.rank, r.member_id, f"{r.total:.2f}", r.exact_count) for r in ranked)
    return [dict(zip(fields, row, strict=True)) for row in rows]


def around(board: list[Body], member: str, n: int) -> list[Body]:
    index = next(i for i, line in enumerate(board) if line["member_id"] == member)
    return board[max(0, index - n) : index + n + 1]


def ranks(page: Body) -> list[tuple[str, int]]:
    return [(line["member_id"], line["rank"]) for line in page["data"]]


async def walk(
    client: httpx.AsyncClient, board_id: str, limit: int, headers: dict[str, str] | None = None
) -> tuple[list[Body], set[str], list[Body]]:
    """Every page of a board, following next_cursor: (lines, sources, page bodies)."""
    lines: list[Body] = []
    pages: list[Body] = []
    params: dict[str, Any] = {"limit": limit}
    while len(pages) < 10_000:
        response = await client.get(f"/boards/{board_id}", params=params, headers=headers)
        assert response.status_code == 200, response.text
        page = response.json()
        assert page["board_id"] == board_id
        pages.append(page)
        lines.extend(page["data"])
        if page["next_cursor"] is None:
            assert len(page["data"]) <= limit
            return lines, {p["source"] for p in pages}, pages
        assert len(page["data"]) == limit
        params = {"limit": limit, "cursor": page["next_cursor"]}
    raise AssertionError("the cursor never ran out")


@pytest.mark.parametrize("source", SOURCES)
async def test_pages_walk_the_whole_board_once_in_order_with_competition_ranks(
    settings: Settings, source: str
) -> None:
    board_id = unique("tournament:")
    await fill(settings, source, board_id, BOARD)
    want = expected(BOARD)
    assert [line["rank"] for line in want] == [1, 2, 2, 4, 5, 5, 5, 8]
    async with api_client(settings) as client:
        for limit in range(1, len(BOARD) + 2):
            lines, sources, pages = await walk(client, board_id, limit)
            assert lines == want, f"limit={limit}"
            assert sources == {source}
            assert len(pages) == -(-len(BOARD) // limit)
        # A page starting inside a tie run still shows absolute ranks.
        _, _, pages = await walk(client, board_id, 3)
    assert [ranks(page) for page in pages] == [
        [("abe", 1), ("bea", 2), ("carl", 2)],
        [("eve", 4), ("dora", 5), ("gus", 5)],
        [("hal", 5), ("fay", 8)],
    ]
    assert pages[0]["data"][0] == {
        "rank": 1,
        "member_id": "abe",
        "total": "15.00",
        "exact_count": 0,
    }


@pytest.mark.parametrize("source", SOURCES)
async def test_a_cursor_continues_after_its_line_while_the_board_changes(
    settings: Settings, source: str
) -> None:
    board_id = unique("tournament:")
    await fill(settings, source, board_id, BOARD)
    async with api_client(settings) as client:
        first = (await client.get(f"/boards/{board_id}", params={"limit": 5})).json()
        assert ranks(first)[-1] == ("dora", 5)
        # The cursor's own line moves down, a newcomer goes to the top, a line above leaves.
        changes = [("dora", "1.00", 0), ("new", "99.00", 9)]
        await fill(settings, source, board_id, changes)
        await execute(
            settings, "delete from board_totals where board_id = $1 and member_id = 'bea'", board_id
        )
        await drop_from_redis(settings, board_id, "bea")
        params = {"limit": 5, "cursor": first["next_cursor"]}
        second = (await client.get(f"/boards/{board_id}", params=params)).json()
    now = expected([line for line in BOARD if line[0] not in ("bea", "dora")] + changes)
    cut = sort_key(BoardLine("dora", Decimal("10.00"), 1))
    key = [sort_key(BoardLine(d["member_id"], Decimal(d["total"]), d["exact_count"])) for d in now]
    assert second["data"] == [line for line, k in zip(now, key, strict=True) if k > cut]
    assert ranks(second) == [("gus", 5), ("hal", 5), ("dora", 7), ("fay", 8)]
    assert (second["source"], second["next_cursor"]) == (source, None)


@pytest.mark.parametrize("source", SOURCES)
async def test_member_standing_with_neighbours(settings: Settings, source: str) -> None:
    board_id = unique("tournament:")
    await fill(settings, source, board_id, BOARD)
    want = expected(BOARD)
    async with api_client(settings) as client:
        for line in want:
            for n in (0, 1, 2, 10):
                path = f"/boards/{board_id}/members/{line['member_id']}"
                response = await client.get(path, params={"around": n})
                assert response.status_code == 200, response.text
                body = response.json()
                assert (body["source"], body["board_id"]) == (source, board_id)
                assert {k: body[k] for k in line} == line
                assert body["neighbours"] == around(want, line["member_id"], n)
        default = (await client.get(f"/boards/{board_id}/members/gus")).json()
    assert default["neighbours"] == want  # around=5 from 6th place reaches both ends


async def test_a_board_deleted_from_redis_falls_back_to_postgres_with_identical_json(
    settings: Settings,
) -> None:
    board_id = unique("league:")
    await fill(settings, "redis", board_id, BOARD)
    async with api_client(settings) as client:

        async def read_all() -> list[Body]:
            bodies = (await walk(client, board_id, 3))[2]
            for member in ("abe", "gus", "fay"):
                path = f"/boards/{board_id}/members/{member}"
                bodies.append((await client.get(path, params={"around": 2})).json())
            return bodies

        from_redis = await read_all()
        await drop_from_redis(settings, board_id)
        from_postgres = await read_all()
    assert {body.pop("source") for body in from_redis} == {"redis"}
    assert {body.pop("source") for body in from_postgres} == {"postgres"}
    assert from_redis == from_postgres
    assert [line for page in from_redis[:3] for line in page["data"]] == expected(BOARD)


async def test_redis_down_still_answers_from_postgres(settings: Settings) -> None:
    board_id = unique("tournament:")
    await fill(settings, "redis", board_id, BOARD)
    down = SecretStr(f"redis://127.0.0.1:{free_port()}/0")
    async with api_client(settings.model_copy(update={"redis_url": down})) as client:
        for _ in range(2):  # the first request finds Redis down, the next skips it
            lines, sources, _ = await walk(client, board_id, 3)
            assert (lines, sources) == (expected(BOARD), {"postgres"})
            member = await client.get(f"/boards/{board_id}/members/eve", params={"around": 1})
            assert member.status_code == 200
            assert (member.json()["rank"], member.json()["source"]) == (4, "postgres")
        assert (await client.get(f"/boards/{unique('tournament:')}")).status_code == 404
        metrics = (await client.get("/metrics")).text
    assert 'scoreline_api_redis_fallbacks_total{reason="unavailable"}' in metrics


@pytest.mark.parametrize("source", SOURCES)
async def test_unknown_board_member_and_match_are_404_json(settings: Settings, source: str) -> None:
    board_id = unique("tournament:")
    await fill(settings, source, board_id, BOARD)
    unknown = unique("tournament:")
    cases = {
        f"/boards/{unknown}": "board_not_found",
        f"/boards/{unknown}/members/abe": "board_not_found",
        f"/boards/{board_id}/members/nobody": "member_not_found",
        f"/matches/{unique('m')}": "match_not_found",
    }
    async with api_client(settings) as client:
        for path, code in cases.items():
            response = await client.get(path)
            assert response.status_code == 404, path
            assert response.json()["error"]["code"] == code
            assert response.json()["error"]["message"]
        metrics = (await client.get("/metrics")).text
    # Counted by route template, never by raw path.
    assert 'scoreline_api_requests_total{route="/boards/{board_id}",status="404"}' in metrics
    assert 'scoreline_api_request_duration_seconds_count{route="/matches/{match_id}"}' in metrics
    assert unknown not in metrics


async def test_bad_query_parameters_are_422_never_500(settings: Settings) -> None:
    board_id = unique("tournament:")
    await fill(settings, "redis", board_id, BOARD)
    bodies = [b"not json", b'["1.00",0,"a"]', b'{"t":"1.005","e":0,"m":"a"}', b'{"t":"1","e":1}']
    bodies += [b'{"t":"1.00","e":-1,"m":"a"}', b'{"t":"NaN","e":0,"m":"a"}']
    garbage = ["garbage!", "x" * 2000, *(base64.urlsafe_b64encode(b).decode() for b in bodies)]
    params: list[dict[str, Any]] = [{"limit": 0}, {"limit": 1000}, {"limit": "ten"}]
    params += [{"cursor": cursor} for cursor in garbage]
    async with api_client(settings) as client:
        for query in params:
            response = await client.get(f"/boards/{board_id}", params=query)
            assert response.status_code == 422, (query, response.text)
            assert response.json()["detail"], query
        for n in (-1, 1000, "x"):
            response = await client.get(f"/boards/{board_id}/members/abe", params={"around": n})
            assert response.status_code == 422, n
        assert (await client.get(f"/boards/{board_id}", params={"limit": 200})).status_code == 200


async def test_private_league_needs_its_token(settings: Settings) -> None:
    league, public, quiet = unique("L"), unique("P"), unique("Q")
    token = unique("token-")
    await execute(
        settings,
        """insert into leagues (league_id, tournament_id, name, private, access_token_sha256)
           values ($1, 'wc', 'Friends', true, $2), ($3, 'wc', 'Open', false, null),
                  ($4, 'wc', 'Quiet', false, null)""",
        league,
        hashlib.sha256(token.encode()).hexdigest(),
        public,
        quiet,
    )
    await fill(settings, "redis", f"league:{league}", BOARD)
    await fill(settings, "redis", f"league:{public}", BOARD)
    refusals = [
        ({}, 401, "league_token_required"),
        ({"X-League-Token": "x"}, 403, "league_token_invalid"),
    ]
    async with api_client(settings) as client:
        for path in (f"/boards/league:{league}", f"/boards/league:{league}/members/abe"):
            for headers, status, code in refusals:
                refused = await client.get(path, headers=headers)
                assert (refused.status_code, refused.json()["error"]["code"]) == (status, code)
            right = await client.get(path, headers={"X-League-Token": token})
            assert right.status_code == 200, right.text
        lines, _, _ = await walk(client, f"league:{league}", 3, {"X-League-Token": token})
        assert lines == expected(BOARD)
        assert (await client.get(f"/boards/league:{public}")).status_code == 200
        # A known league nobody has scored in yet is an empty board, not a 404.
        empty = await client.get(f"/boards/league:{quiet}")
    assert (empty.status_code, empty.json()["data"], empty.json()["next_cursor"]) == (200, [], None)


async def test_match_is_served_from_postgres(settings: Settings) -> None:
    match_id = unique("m")
    await execute(
        settings,
        """insert into matches (match_id, tournament_id, round, home_team_id, home_team_name,
               away_team_id, away_team_name, status, home_score, away_score, minute, period,
               kickoff_at, provider, provider_version, result_version, updated_at)
           values ($1, 'wc', '1', 'mex', 'Mexico', 'rsa', 'South Africa', 'finished', 2, 1,
                   90, 'ft', $2, 'replay', 7, 2, $3)""",
        match_id,
        datetime(2026, 6, 11, 19, 0, tzinfo=UTC),
        datetime(2026, 6, 11, 20, 52, 3, 250000, tzinfo=UTC),
    )
    async with api_client(settings) as client:
        response = await client.get(f"/matches/{match_id}")
    assert response.status_code == 200
    assert response.json() == {
        "match_id": match_id,
        "tournament_id": "wc",
        "round": "1",
        "home_team": {"team_id": "mex", "name": "Mexico"},
        "away_team": {"team_id": "rsa", "name": "South Africa"},
        "status": "finished",
        "home_score": 2,
        "away_score": 1,
        "minute": 90,
        "kickoff_at": "2026-06-11T19:00:00Z",
        "result_version": 2,
        "updated_at": "2026-06-11T20:52:03.250000Z",
    }


MEMBER_IDS = st.text(alphabet="abAB_0é☃𝔸", min_size=1, max_size=3)  # 1- to 4-byte UTF-8
LINE = st.tuples(MEMBER_IDS, st.integers(-2, 6), st.integers(0, 2))  # halves, to tie often
LINES = st.lists(LINE, unique_by=lambda line: line[0], min_size=1, max_size=30)


@given(raw=LINES, limit=st.integers(1, 7))
@hypothesis_settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_generated_boards_read_like_rank_board_from_both_sources(
    settings: Settings, raw: list[tuple[str, int, int]], limit: int
) -> None:
    lines = [(m, str(Decimal(n) / 2), e) for m, n, e in raw]
    board_id = unique("tournament:")
    want = expected(lines)

    async def check() -> None:
        await fill(settings, "redis", board_id, lines)
        async with api_client(settings) as client:
            for source in SOURCES:
                assert (await walk(client, board_id, limit))[:2] == (want, {source})
                for member, _, _ in lines[:3]:
                    path = f"/boards/{board_id}/members/{member}"
                    body = (await client.get(path, params={"around": limit})).json()
                    assert body["neighbours"] == around(want, member, limit)
                    assert body["source"] == source
                await drop_from_redis(settings, board_id)

    asyncio.run(check())
