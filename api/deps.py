"""Dependency aliases: what a route needs, taken from the app state the lifespan fills."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, TypeVar

import asyncpg
import redis.asyncio as aioredis
from fastapi import Depends, Header, Query, Request
from fastapi.exceptions import RequestValidationError

from api.boards import BoardReader, RedisCircuit
from api.models import Cursor
from core.settings import Settings

C = TypeVar("C")

#: Longest board, member or match id the API accepts (a longer one is a 422).
MAX_ID_LENGTH = 256


def get_pool(request: Request) -> asyncpg.Pool:
    pool: asyncpg.Pool = request.app.state.pool
    return pool


def get_redis(request: Request) -> aioredis.Redis:
    client: aioredis.Redis = request.app.state.redis
    return client


def get_app_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


PoolDep = Annotated[asyncpg.Pool, Depends(get_pool)]
RedisDep = Annotated[aioredis.Redis, Depends(get_redis)]
SettingsDep = Annotated[Settings, Depends(get_app_settings)]


def get_board_reader(
    request: Request, pool: PoolDep, redis: RedisDep, settings: SettingsDep
) -> BoardReader:
    circuit: RedisCircuit = request.app.state.redis_circuit
    return BoardReader(pool, redis, settings.redis_prefix, circuit)


def decode_cursor(decode: Callable[[str], C], cursor: str | None) -> C | None:
    """A page cursor decoded; a garbled one is a 422 like any other bad query parameter."""
    if cursor is None:
        return None
    try:
        return decode(cursor)
    except ValueError as e:
        raise RequestValidationError(
            [
                {
                    "type": "value_error",
                    "loc": ("query", "cursor"),
                    "msg": f"Value error, {e}",
                    "input": cursor,
                }
            ]
        ) from e


#: The ``cursor`` query parameter of every paginated route.
CursorQuery = Annotated[
    str | None, Query(max_length=1024, description="next_cursor of the previous page")
]


def get_cursor(cursor: CursorQuery = None) -> Cursor | None:
    return decode_cursor(Cursor.decode, cursor)


BoardReaderDep = Annotated[BoardReader, Depends(get_board_reader)]
CursorDep = Annotated[Cursor | None, Depends(get_cursor)]
LeagueTokenDep = Annotated[
    str | None,
    Header(alias="X-League-Token", description="Opens a private league's board"),
]
