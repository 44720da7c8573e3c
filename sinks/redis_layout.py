"""Where the leaderboard projection lives in Redis. The Redis sink writes it, the API reads it.

For a board ``B`` under the prefix ``P`` (``SCORELINE_REDIS_PREFIX``, default ``scoreline:``):

- ``P board:B`` — sorted set, member id → ``-redis_score(total, exact_count)``. Ascending
  ``ZRANGE`` is the board order: total desc, then exact-score count desc, then member id
  ascending (Redis orders equal scores by member bytes, ascending). Absolute totals, never
  increments: a replay writes the same value again.
- ``P board:B:versions`` — hash, member id → the version of the total stored, so an older
  update (a rewind, a redelivery) never overwrites a newer one.
- ``P board:B:meta`` — hash: ``updated_at`` (epoch ms of the newest update applied).
- ``P boards`` — set of every board id present.
- ``P offsets:C`` — hash, ``topic:partition`` → next offset for sink consumer ``C``,
  written in the same MULTI/EXEC as the rows it covers.
"""

from __future__ import annotations

from decimal import Decimal

from streams.rules.boards import from_redis_score, redis_score


def board_key(prefix: str, board_id: str) -> str:
    return f"{prefix}board:{board_id}"


def versions_key(prefix: str, board_id: str) -> str:
    return f"{prefix}board:{board_id}:versions"


def meta_key(prefix: str, board_id: str) -> str:
    return f"{prefix}board:{board_id}:meta"


def boards_key(prefix: str) -> str:
    return f"{prefix}boards"


def offsets_key(prefix: str, consumer: str) -> str:
    return f"{prefix}offsets:{consumer}"


def encode_score(total: Decimal, exact_count: int) -> float:
    """The sorted-set score of a line: negated so that ascending order is board order."""
    return -redis_score(total, exact_count)


def decode_score(score: float) -> tuple[Decimal, int]:
    """(total, exact_count) back from a sorted-set score."""
    return from_redis_score(-score)
