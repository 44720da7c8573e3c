"""Leaderboards: board ids, the deterministic order, competition ranks, the Redis encoding.

Order (DESIGN.md, "Guarantees"): total descending, then the declared tiebreaker (the
number of exact scores, descending), then member id ascending. Member ids compare by
code point, which is also the byte order of their UTF-8 form: the order Redis uses for
equal scores and Postgres uses under ``COLLATE "C"`` (a locale collation would differ).

Ranks are standard competition ranks (1, 2, 2, 4): members equal on total *and* exact
count share a rank; the member id only decides who is listed first among them.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal

__all__ = [
    "EXACT_SCORES",
    "REDIS_COUNT_BASE",
    "REDIS_MAX_TOTAL",
    "BoardLine",
    "RankedLine",
    "around",
    "from_redis_score",
    "league_board_id",
    "order_ties",
    "rank_board",
    "redis_score",
    "sort_key",
    "tournament_board_id",
]

#: Name of the declared tiebreaker (``Tiebreaker.name`` in ``leaderboard.updates``).
EXACT_SCORES = "exact_scores"

#: The Redis score is ``total_cents * REDIS_COUNT_BASE + exact_count``.
REDIS_COUNT_BASE = 10**6
#: Every integer of magnitude up to 2**53 is exact in a float64 (Redis scores are doubles).
_FLOAT_EXACT = 2**53
#: Largest |total| in cents whose score stays exact with any exact_count < REDIS_COUNT_BASE.
_REDIS_MAX_CENTS = (_FLOAT_EXACT - (REDIS_COUNT_BASE - 1)) // REDIS_COUNT_BASE
#: Largest |total| :func:`redis_score` encodes: 90,071,992.53 points.
REDIS_MAX_TOTAL = Decimal(_REDIS_MAX_CENTS).scaleb(-2)


def tournament_board_id(tournament_id: str) -> str:
    """The overall board of a tournament: ``tournament:<tournament_id>``."""
    return f"tournament:{tournament_id}"


def league_board_id(league_id: str) -> str:
    """The board of a (private or public) league: ``league:<league_id>``."""
    return f"league:{league_id}"


@dataclass(frozen=True, slots=True)
class BoardLine:
    """A member's standing on one board before ranking."""

    member_id: str
    total: Decimal
    exact_count: int

    def __post_init__(self) -> None:
        if isinstance(self.exact_count, bool) or self.exact_count < 0:
            raise ValueError(f"exact_count must be a non-negative int: {self.exact_count!r}")


@dataclass(frozen=True, slots=True)
class RankedLine:
    """A member's place on a board: competition rank, then the values ranked on."""

    rank: int
    member_id: str
    total: Decimal
    exact_count: int


def sort_key(line: BoardLine | RankedLine) -> tuple[Decimal, int, str]:
    """The board order as a key for ``sorted``: total desc, exact count desc, member asc."""
    return (-line.total, -line.exact_count, line.member_id)


def rank_board(lines: Iterable[BoardLine]) -> list[RankedLine]:
    """Order a board and give each line its standard competition rank (1, 2, 2, 4).

    Lines are sorted by :func:`sort_key`. A line's rank is one plus the number of lines
    strictly better on (total, exact_count); lines equal on both share the rank, and the
    member id only orders them within it (it never breaks the rank tie), so a member's
    rank does not depend on the name of the members they are tied with.
    Raises ValueError when a member appears twice.
    """
    ordered = sorted(lines, key=sort_key)
    ranked: list[RankedLine] = []
    seen: set[str] = set()
    for position, line in enumerate(ordered, start=1):
        if line.member_id in seen:
            raise ValueError(f"member {line.member_id!r} appears twice on the board")
        seen.add(line.member_id)
        previous = ranked[-1] if ranked else None
        tied = (
            previous is not None
            and previous.total == line.total
            and previous.exact_count == line.exact_count
        )
        rank = previous.rank if tied and previous is not None else position
        ranked.append(RankedLine(rank, line.member_id, line.total, line.exact_count))
    return ranked


def around(ranked: Sequence[RankedLine], member_id: str, n: int) -> list[RankedLine]:
    """The member's line with up to ``n`` lines above and ``n`` below ("around me").

    ``ranked`` is a board in order (:func:`rank_board`). Empty when the member is not on it.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0: {n}")
    for index, line in enumerate(ranked):
        if line.member_id == member_id:
            return list(ranked[max(0, index - n) : index + n + 1])
    return []


def redis_score(total: Decimal, exact_count: int) -> float:
    """Encode (total, exact_count) as one sorted-set score, exact in a float64.

    The score is the integer ``total_cents * 10**6 + exact_count``, so for any two lines
    the scores compare as the pairs (total, exact_count) do, and equal scores mean equal
    pairs: ``ZREVRANGE`` lists total desc then exact count desc, and a member's
    competition rank is ``1 + ZCOUNT board (score +inf``. Redis lists equal scores by
    member id *descending* under ``ZREVRANGE``; see :func:`order_ties`.

    This is the one place points become a float: every integer up to 2**53 is exact in a
    double, hence the limits. Raises ValueError when ``total`` is not a finite multiple of
    0.01 with ``|total| <= REDIS_MAX_TOTAL`` (about 90 million points; negative totals, as
    on a PnL board, are fine) or ``exact_count`` is outside ``0 <= exact_count < 10**6``.
    """
    if not total.is_finite() or abs(total) > REDIS_MAX_TOTAL:
        raise ValueError(f"total out of the Redis score range (|total| <= {REDIS_MAX_TOTAL})")
    cents = total.scaleb(2)
    if cents != cents.to_integral_value():
        raise ValueError(f"total has more than two decimals: {total}")
    if isinstance(exact_count, bool) or not 0 <= exact_count < REDIS_COUNT_BASE:
        raise ValueError(f"exact_count out of range 0..{REDIS_COUNT_BASE - 1}: {exact_count!r}")
    return float(int(cents) * REDIS_COUNT_BASE + exact_count)


def from_redis_score(score: float) -> tuple[Decimal, int]:
    """The (total, exact_count) a :func:`redis_score` encodes; ValueError on a foreign score."""
    if not score.is_integer() or abs(score) > _FLOAT_EXACT:
        raise ValueError(f"not a board score: {score!r}")
    cents, exact_count = divmod(int(score), REDIS_COUNT_BASE)
    if abs(cents) > _REDIS_MAX_CENTS:
        raise ValueError(f"not a board score: {score!r}")
    return Decimal(cents).scaleb(-2), exact_count


def order_ties(members: Iterable[tuple[str, float]]) -> list[tuple[str, float]]:
    """Re-sort each run of equal scores by member id ascending, keeping the runs in place.

    ``members`` are ``(member_id, score)`` pairs as ``ZREVRANGE ... WITHSCORES`` returns
    them: scores descending, equal scores by member id *descending* (Redis compares members
    bytewise; UTF-8 byte order is code point order, so this matches :func:`sort_key`).

    Pagination: a run cut by a page edge cannot be fixed by re-sorting the page, because
    the page holds the wrong end of the run. A reader that pages must extend the fetch to
    whole runs at the edges (``ZREVRANGEBYSCORE`` with the edge score) before cutting, or
    store ``-redis_score(...)`` and read with ``ZRANGE``, whose equal-score order is
    already member id ascending.
    """
    ordered: list[tuple[str, float]] = []
    for _, run in itertools.groupby(members, key=lambda pair: pair[1]):
        ordered.extend(sorted(run, key=lambda pair: pair[0]))
    return ordered
