"""The fast encoder writes exactly the bytes the codec writes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.catalog import LEADERBOARD_UPDATES, SCORES
from schemas.codec import AvroCodec
from schemas.fast_encode import RecordEncoder, long_bytes
from schemas.records import LeaderboardEntryChanged, ScoreAwarded, Tiebreaker

CODEC = AvroCodec()
NOW = datetime(2026, 11, 22, 15, 0, tzinfo=UTC)

texts = st.text(max_size=80)
cents = st.decimals(
    min_value=Decimal("-9999999999999999.99"),
    max_value=Decimal("9999999999999999.99"),
    places=2,
    allow_nan=False,
    allow_infinity=False,
)
moments = st.datetimes(
    min_value=datetime(1960, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)
ints = st.integers(-(2**31), 2**31 - 1)


def awards() -> st.SearchStrategy[ScoreAwarded]:
    return st.builds(
        ScoreAwarded,
        member_id=texts,
        board_ids=st.lists(texts, max_size=4).map(tuple),
        points_delta=cents,
        exact_delta=ints,
        total=st.none() | cents,
        reason=texts,
        source=texts,
        rule_version=ints,
        result_version=ints,
        idempotency_key=texts,
        awarded_at=moments,
    )


def lines() -> st.SearchStrategy[LeaderboardEntryChanged]:
    return st.builds(
        LeaderboardEntryChanged,
        board_id=texts,
        member_id=texts,
        total=cents,
        tiebreakers=st.lists(st.builds(Tiebreaker, name=texts, value=cents), max_size=3).map(tuple),
        rank=st.none() | ints,
        version=st.integers(0, 2**62),
        updated_at=moments,
    )


SCORE_ENCODER = RecordEncoder(
    CODEC,
    "ScoreAwarded",
    SCORES,
    ScoreAwarded(
        member_id="m",
        board_ids=(),
        points_delta=Decimal("0.00"),
        reason="r",
        source="s",
        rule_version=1,
        result_version=1,
        idempotency_key="k",
        awarded_at=NOW,
    ),
)
LINE_ENCODER = RecordEncoder(
    CODEC,
    "LeaderboardEntryChanged",
    LEADERBOARD_UPDATES,
    LeaderboardEntryChanged(
        board_id="b", member_id="m", total=Decimal("0.00"), version=1, updated_at=NOW
    ),
)


@settings(max_examples=400, deadline=None)
@given(awards())
def test_score_awarded_bytes_equal_the_codec(award: ScoreAwarded) -> None:
    assert SCORE_ENCODER.encode(award) == CODEC.encode(award, SCORES)
    assert CODEC.decode(SCORE_ENCODER.encode(award)) == award


@settings(max_examples=400, deadline=None)
@given(lines())
def test_leaderboard_line_bytes_equal_the_codec(line: LeaderboardEntryChanged) -> None:
    assert LINE_ENCODER.encode(line) == CODEC.encode(line, LEADERBOARD_UPDATES)
    values = [getattr(line, name) for name in LINE_ENCODER.names]
    assert LINE_ENCODER.encode_fields(values) == CODEC.encode(line, LEADERBOARD_UPDATES)


def test_cached_values_do_not_leak_between_records() -> None:
    first = SCORE_ENCODER.encode(
        ScoreAwarded(
            member_id="a",
            board_ids=("x",),
            points_delta=Decimal("3.00"),
            reason="outcome",
            source="s",
            rule_version=1,
            result_version=1,
            idempotency_key="k1",
            awarded_at=NOW,
        )
    )
    second = ScoreAwarded(
        member_id="b",
        board_ids=("y", "z"),
        points_delta=Decimal("-3.00"),
        reason="correction",
        source="s",
        rule_version=2,
        result_version=2,
        idempotency_key="k2",
        awarded_at=NOW + timedelta(days=1),
    )
    assert SCORE_ENCODER.encode(second) == CODEC.encode(second, SCORES)
    decoded = CODEC.decode(first)
    assert isinstance(decoded, ScoreAwarded) and decoded.member_id == "a"


def test_long_bytes_is_avro_zigzag() -> None:
    assert [long_bytes(n) for n in (0, -1, 1, -2, 63, 64)] == [
        b"\x00",
        b"\x01",
        b"\x02",
        b"\x03",
        b"\x7e",
        b"\x80\x01",
    ]
