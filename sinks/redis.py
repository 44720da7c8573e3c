"""The Redis sink: ``leaderboard.updates`` to the leaderboard projection (``redis_layout``).

Each update carries a member's *absolute* total on a board and a version increasing per
(board, member). It is applied only when its version is greater than the stored one, so a
redelivery, a rewind or an out-of-order update never moves a board backwards, and nothing
is ever incremented. One Lua call per batch applies every update and stores the batch's
positions in the offsets hash: Redis runs a script atomically, so the data and the
positions that cover it are written together or not at all (the positions are written
last, so a script that fails half-way leaves them behind the updates it applied, which
re-apply as no-ops).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Collection
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import redis.asyncio as aioredis
import redis.exceptions
from aiokafka import TopicPartition

from core.settings import Settings
from core.stack import resolve_urls
from schemas.catalog import LEADERBOARD_UPDATES
from schemas.records import LeaderboardEntryChanged, Tiebreaker
from sinks.base import Batch, ConsumedRecord, RunnerConfig, run_sink
from sinks.exceptions import RecordRejectedError, SinkUnavailableError
from sinks.offsets import decode_redis_offsets, redis_offset_args
from sinks.redis_layout import (
    board_key,
    boards_key,
    encode_score,
    meta_key,
    offsets_key,
    versions_key,
)
from streams.rules.boards import EXACT_SCORES

CONSUMER = "sink.redis"
TOPICS = (LEADERBOARD_UPDATES,)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# KEYS: offsets hash, boards set, then per board: sorted set, versions hash, meta hash.
# ARGV[1]: the batch as JSON (cjson decodes it in C: one argument instead of four per
# line, which the client packs in Python): {"offsets": [field, next offset, ...],
# "boards": [[board id, newest updated_at, [member, version, score, ...]], ...]}, in
# the order of KEYS; one line per (board, member): the newest of the batch.
APPLY_BATCH = """
local batch = cjson.decode(ARGV[1])
local applied = 0
for b, board in ipairs(batch.boards) do
  redis.call('SADD', KEYS[2], board[1])
  local lines = board[3]
  local k = 3 + (b - 1) * 3
  local touched = false
  -- in slices: one HMGET for the stored versions, one ZADD and one HSET for the lines
  -- whose version is newer (Lua's unpack takes a few thousand values at most)
  for s = 1, #lines, 3000 do
    local e = math.min(s + 2999, #lines)
    local members = {}
    for j = s, e, 3 do
      members[#members + 1] = lines[j]
    end
    local stored = redis.call('HMGET', KEYS[k + 1], unpack(members))
    local zargs, hargs = {}, {}
    for n = 1, #members do
      local j = s + (n - 1) * 3
      local old = stored[n]
      if not old or tonumber(old) < lines[j + 1] then
        zargs[#zargs + 1] = lines[j + 2]
        zargs[#zargs + 1] = lines[j]
        hargs[#hargs + 1] = lines[j]
        hargs[#hargs + 1] = lines[j + 1]
      end
    end
    if #zargs > 0 then
      redis.call('ZADD', KEYS[k], unpack(zargs))
      redis.call('HSET', KEYS[k + 1], unpack(hargs))
      applied = applied + #hargs / 2
      touched = true
    end
  end
  if touched then
    local meta = KEYS[k + 2]
    local at = redis.call('HGET', meta, 'updated_at')
    if not at or tonumber(at) < board[2] then
      redis.call('HSET', meta, 'updated_at', board[2])
    end
  end
end
local offsets = batch.offsets
for p = 1, #offsets, 2 do
  redis.call('HSET', KEYS[1], offsets[p], offsets[p + 1])
end
return applied
"""

_TRANSIENT = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError)


def epoch_millis(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(milliseconds=1)


def exact_count(update: LeaderboardEntryChanged) -> int:
    """The declared tiebreaker (number of exact scores); 0 when the update has none."""
    for tiebreaker in update.tiebreakers:
        if tiebreaker.name == EXACT_SCORES:
            value = tiebreaker.value
            if value != value.to_integral_value():
                raise ValueError(f"{EXACT_SCORES} must be a whole number: {value}")
            return int(value)
    return 0


def score_arg(total: Decimal, exact: int) -> str:
    """The sorted-set score as the exact integer string Redis parses (no float formatting)."""
    return str(int(encode_score(total, exact)))


class RedisSink:
    """Writes the leaderboard projection, one atomic Lua call per batch."""

    name = CONSUMER
    topics = TOPICS

    def __init__(self, client: aioredis.Redis, *, prefix: str) -> None:
        self._redis = client
        self._prefix = prefix
        self._apply = client.register_script(APPLY_BATCH)
        self.applied_updates = 0

    async def committed(self, partitions: Collection[TopicPartition]) -> dict[TopicPartition, int]:
        try:
            raw = await self._redis.hgetall(offsets_key(self._prefix, self.name))  # type: ignore[misc]
        except _TRANSIENT as e:
            raise SinkUnavailableError(f"redis: {type(e).__name__}: {e}") from e
        return decode_redis_offsets(raw, partitions)

    async def write(self, batch: Batch) -> None:
        newest: dict[tuple[str, str], tuple[int, str, int]] = {}
        # A batch holds many lines with the same total and the same moment: convert each once.
        scores: dict[tuple[Decimal, tuple[Tiebreaker, ...]], str] = {}
        moments: dict[datetime, int] = {}
        for record in batch.records:
            update = record.value
            if not isinstance(update, LeaderboardEntryChanged):
                continue
            line = (update.board_id, update.member_id)
            current = newest.get(line)
            if current is None or current[0] < update.version:
                ranked_on = (update.total, update.tiebreakers)
                score = scores.get(ranked_on)
                if score is None:
                    score = scores[ranked_on] = _score(record, update)
                at = moments.get(update.updated_at)
                if at is None:
                    at = moments[update.updated_at] = epoch_millis(update.updated_at)
                newest[line] = (update.version, score, at)
        boards: dict[str, list[Any]] = {}
        for (board_id, member_id), (version, score, at) in newest.items():
            board = boards.get(board_id)
            if board is None:
                board = boards[board_id] = [board_id, at, []]
            elif board[1] < at:
                board[1] = at
            board[2].extend((member_id, version, score))
        keys = [offsets_key(self._prefix, self.name), boards_key(self._prefix)]
        for board_id in boards:
            p = self._prefix
            keys.extend((board_key(p, board_id), versions_key(p, board_id), meta_key(p, board_id)))
        payload = {"offsets": redis_offset_args(batch.positions), "boards": list(boards.values())}
        args = [json.dumps(payload, ensure_ascii=False, separators=(",", ":"))]
        try:
            applied = await self._apply(keys=keys, args=args)
        except (*_TRANSIENT, redis.exceptions.ResponseError) as e:
            # A ResponseError (OOM, a script error) is retried, never dead-lettered: it says
            # nothing about the records, and dropping them would lose the projection.
            raise SinkUnavailableError(f"redis: {type(e).__name__}: {e}") from e
        self.applied_updates += int(applied)

    async def flush(self) -> None:
        """Nothing buffered: every ``write`` is one atomic script call."""


def _score(record: ConsumedRecord, update: LeaderboardEntryChanged) -> str:
    try:
        return score_arg(update.total, exact_count(update))
    except ValueError as e:
        raise RecordRejectedError(record, f"board line cannot be stored: {e}") from e


async def run_redis_sink(
    settings: Settings, stop: asyncio.Event, *, config: RunnerConfig | None = None
) -> None:
    """``scoreline sinks`` (Redis half): run until ``stop`` is set."""
    client = aioredis.Redis.from_url(resolve_urls(settings).redis_url)
    # A finished match fans out to two lines per guess: bigger batches, one script call
    # each (a script blocks Redis while it runs: 10,000 lines took 0.04-0.2 s, bench),
    # and a batch spans the partitions of a chunk (its tournament and league lines).
    config = config or RunnerConfig(max_records=20_000)
    try:
        await run_sink(
            settings, RedisSink(client, prefix=settings.redis_prefix), stop, config=config
        )
    finally:
        await client.aclose()
