"""Leaderboards: deterministic order, competition ranks (1, 2, 2, 4), the Redis encoding."""

from __future__ import annotations

import random
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.rules.boards import (
    REDIS_COUNT_BASE,
    REDIS_MAX_TOTAL,
    BoardLine,
    RankedLine,
    around,
    from_redis_score,
    league_board_id,
    order_ties,
    rank_board,
    redis_score,
    sort_key,
    tournament_board_id,
)

MAX_CENTS = int(REDIS_MAX_TOTAL.scaleb(2))

cents = st.integers(-MAX_CENTS, MAX_CENTS).map(lambda c: Decimal(c).scaleb(-2))
counts = st.integers(0, REDIS_COUNT_BASE - 1)
# Small ranges so that ties on total and on (total, exact_count) are frequent.
small_totals = st.integers(-3, 12).map(lambda c: Decimal(c * 50).scaleb(-2))
small_counts = st.integers(0, 3)
member_ids = st.text(alphabet="abcxyzAZ09_-é", min_size=1, max_size=4)


@st.composite
def boards(draw: st.DrawFn, members: st.SearchStrategy[str] = member_ids) -> list[BoardLine]:
    ids = draw(st.lists(members, unique=True, max_size=20))
    return [BoardLine(m, draw(small_totals), draw(small_counts)) for m in ids]


def line(member_id: str, total: str, exact_count: int = 0) -> BoardLine:
    return BoardLine(member_id, Decimal(total), exact_count)


def test_board_ids() -> None:
    assert tournament_board_id("epl-2025") == "tournament:epl-2025"
    assert league_board_id("office") == "league:office"


def test_competition_ranking_1_2_2_4() -> None:
    ranked = rank_board([line("d", "5"), line("c", "8"), line("a", "10"), line("b", "8")])
    assert ranked == [
        RankedLine(1, "a", Decimal("10"), 0),
        RankedLine(2, "b", Decimal("8"), 0),
        RankedLine(2, "c", Decimal("8"), 0),
        RankedLine(4, "d", Decimal("5"), 0),
    ]


def test_exact_count_breaks_a_tie_on_total_and_member_id_does_not() -> None:
    ranked = rank_board(
        [line("a", "8", 1), line("z", "8", 2), line("m", "8.00", 1), line("b", "7.99", 9)]
    )
    assert [(r.rank, r.member_id) for r in ranked] == [(1, "z"), (2, "a"), (2, "m"), (4, "b")]


def test_empty_board_and_duplicate_member() -> None:
    assert rank_board([]) == []
    with pytest.raises(ValueError, match="twice"):
        rank_board([line("a", "1"), line("a", "2")])


def test_negative_exact_count_is_refused() -> None:
    with pytest.raises(ValueError):
        BoardLine("a", Decimal(1), -1)


@settings(max_examples=500)
@given(boards(), st.randoms(use_true_random=False))
def test_ranking_is_a_total_order_consistent_with_the_sort_key(
    lines: list[BoardLine], rnd: random.Random
) -> None:
    ranked = rank_board(lines)
    keys = [sort_key(r) for r in ranked]
    assert keys == sorted(keys)
    assert len(set(keys)) == len(keys)  # strictly increasing: no two lines compare equal
    shuffled = list(lines)
    rnd.shuffle(shuffled)
    assert rank_board(shuffled) == ranked  # the input order never matters
    assert sorted(r.member_id for r in ranked) == sorted(b.member_id for b in lines)


@settings(max_examples=500)
@given(boards())
def test_ranks_are_one_plus_the_lines_strictly_better(lines: list[BoardLine]) -> None:
    for r in rank_board(lines):
        better = sum(1 for b in lines if (b.total, b.exact_count) > (r.total, r.exact_count))
        assert r.rank == 1 + better


def test_around_me() -> None:
    ranked = rank_board([line(m, str(10 - i)) for i, m in enumerate("abcdefg")])
    assert [r.member_id for r in around(ranked, "d", 2)] == ["b", "c", "d", "e", "f"]
    assert [r.member_id for r in around(ranked, "a", 2)] == ["a", "b", "c"]
    assert [r.member_id for r in around(ranked, "g", 1)] == ["f", "g"]
    assert [r.member_id for r in around(ranked, "d", 0)] == ["d"]
    assert around(ranked, "nobody", 3) == []
    with pytest.raises(ValueError):
        around(ranked, "a", -1)


def test_redis_score_examples() -> None:
    assert redis_score(Decimal("12.34"), 5) == 1234 * REDIS_COUNT_BASE + 5
    assert from_redis_score(redis_score(Decimal("12.34"), 5)) == (Decimal("12.34"), 5)
    assert from_redis_score(redis_score(Decimal("-0.01"), 7)) == (Decimal("-0.01"), 7)
    assert from_redis_score(0.0) == (Decimal("0.00"), 0)


def test_redis_score_limits() -> None:
    top = redis_score(REDIS_MAX_TOTAL, REDIS_COUNT_BASE - 1)
    assert top <= 2**53
    assert from_redis_score(top) == (REDIS_MAX_TOTAL, REDIS_COUNT_BASE - 1)
    assert from_redis_score(redis_score(-REDIS_MAX_TOTAL, 0)) == (-REDIS_MAX_TOTAL, 0)
    assert Decimal(90_000_000) < REDIS_MAX_TOTAL
    for total, count in [
        (REDIS_MAX_TOTAL + Decimal("0.01"), 0),
        (-REDIS_MAX_TOTAL - Decimal("0.01"), 0),
        (Decimal("1.001"), 0),
        (Decimal("NaN"), 0),
        (Decimal("Infinity"), 0),
        (Decimal(1), -1),
        (Decimal(1), REDIS_COUNT_BASE),
    ]:
        with pytest.raises(ValueError):
            redis_score(total, count)
    for score in (0.5, float("inf"), float("nan"), 2.0**60):
        with pytest.raises(ValueError):
            from_redis_score(score)


@settings(max_examples=2000)
@given(cents, counts, cents, counts)
def test_redis_encoding_preserves_order_and_round_trips(
    t1: Decimal, c1: int, t2: Decimal, c2: int
) -> None:
    s1, s2 = redis_score(t1, c1), redis_score(t2, c2)
    assert from_redis_score(s1) == (t1, c1)
    assert from_redis_score(s2) == (t2, c2)
    assert (s1 < s2) == ((t1, c1) < (t2, c2))
    assert (s1 == s2) == ((t1, c1) == (t2, c2))
    # Redis answers with the shortest repr of the double (%.17g): it must parse back exact.
    assert float(repr(s1)) == s1
    assert float(f"{s1:.17g}") == s1


def zrevrange(lines: list[BoardLine]) -> list[tuple[str, float]]:
    """What Redis answers to ZREVRANGE ... WITHSCORES: score desc, then member bytes desc."""
    pairs = [(b.member_id, redis_score(b.total, b.exact_count)) for b in lines]
    return sorted(pairs, key=lambda p: (p[1], p[0].encode()), reverse=True)


def test_order_ties_example() -> None:
    redis_order = [("c", 9.0), ("b", 9.0), ("a", 9.0), ("z", 5.0), ("y", 1.0), ("x", 1.0)]
    assert [m for m, _ in order_ties(redis_order)] == ["a", "b", "c", "z", "x", "y"]


@settings(max_examples=500)
@given(boards(members=st.text(min_size=1, max_size=3)))
def test_redis_order_after_order_ties_is_the_board_order(lines: list[BoardLine]) -> None:
    ranked = rank_board(lines)
    redis_order = order_ties(zrevrange(lines))
    assert [m for m, _ in redis_order] == [r.member_id for r in ranked]
    scores = [s for _, s in redis_order]
    for r, (_, score) in zip(ranked, redis_order, strict=True):
        # The rank as Redis computes it: 1 + ZCOUNT board (score +inf
        assert r.rank == 1 + sum(1 for s in scores if s > score)
