"""Offset reset plans: every mode, clamping to [earliest, end], durations, datetimes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.ops.exceptions import InvalidResetError
from core.ops.offsets import (
    PartitionPosition,
    ResetMode,
    ResetSpec,
    parse_datetime,
    parse_duration,
    parse_topic_partitions,
    plan_reset,
    plan_rows,
    reset_spec,
)

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def at(
    current: int | None = 50,
    *,
    earliest: int = 10,
    end: int = 100,
    at_time: int | None = None,
    partition: int = 0,
    topic: str = "t.scores",
) -> PartitionPosition:
    return PartitionPosition(topic, partition, current, earliest, end, at_time)


def new_offset(spec: ResetSpec, position: PartitionPosition) -> tuple[int, bool]:
    (line,) = plan_reset(spec, [position])
    return line.new, line.clamped


# -- modes ------------------------------------------------------------------------------


def test_to_earliest_is_the_first_offset_still_there() -> None:
    assert new_offset(reset_spec(to_earliest=True), at(50, earliest=10)) == (10, False)


def test_to_latest_is_the_stable_end() -> None:
    assert new_offset(reset_spec(to_latest=True), at(50, end=100)) == (100, False)


def test_to_datetime_takes_the_first_offset_at_or_after_the_moment() -> None:
    spec = reset_spec(to_datetime="2026-05-01T10:00:00Z")
    assert spec.target_time(NOW) == datetime(2026, 5, 1, 10, tzinfo=UTC)
    assert new_offset(spec, at(50, at_time=42)) == (42, False)


def test_to_datetime_after_the_last_record_is_the_end() -> None:
    spec = reset_spec(to_datetime="2030-01-01T00:00:00+00:00")
    assert new_offset(spec, at(50, end=100, at_time=None)) == (100, False)


def test_by_duration_is_a_datetime_that_long_before_now() -> None:
    spec = reset_spec(by_duration="PT30M")
    assert spec.mode is ResetMode.DURATION
    assert spec.target_time(NOW) == NOW - timedelta(minutes=30)
    assert new_offset(spec, at(50, at_time=77)) == (77, False)


def test_shift_by_moves_from_the_current_offset_both_ways() -> None:
    assert new_offset(reset_spec(shift_by=-15), at(50)) == (35, False)
    assert new_offset(reset_spec(shift_by=20), at(50)) == (70, False)


def test_shift_by_without_a_committed_offset_starts_from_the_earliest() -> None:
    assert new_offset(reset_spec(shift_by=5), at(None, earliest=10)) == (15, False)


def test_to_offset_sets_every_partition() -> None:
    spec = reset_spec(to_offset=60)
    plan = plan_reset(spec, [at(50, partition=1), at(None, partition=0)])
    assert [(p.partition, p.current, p.new) for p in plan] == [(0, None, 60), (1, 50, 60)]


# -- clamping ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "position", "expected"),
    [
        (reset_spec(shift_by=-1000), at(50, earliest=10), 10),
        (reset_spec(shift_by=1000), at(50, end=100), 100),
        (reset_spec(to_offset=5), at(50, earliest=10), 10),
        (reset_spec(to_offset=10_000), at(50, end=100), 100),
    ],
)
def test_offsets_outside_the_log_are_clamped(
    spec: ResetSpec, position: PartitionPosition, expected: int
) -> None:
    assert new_offset(spec, position) == (expected, True)


@given(
    earliest=st.integers(0, 1000),
    length=st.integers(0, 1000),
    current=st.none() | st.integers(0, 3000),
    number=st.integers(-5000, 5000),
    at_time=st.none() | st.integers(0, 3000),
    mode=st.sampled_from(list(ResetMode)),
)
def test_every_new_offset_is_between_earliest_and_end(
    earliest: int,
    length: int,
    current: int | None,
    number: int,
    at_time: int | None,
    mode: ResetMode,
) -> None:
    end = earliest + length
    spec = ResetSpec(mode, at=NOW, duration=timedelta(hours=1), number=number)
    (line,) = plan_reset(spec, [at(current, earliest=earliest, end=end, at_time=at_time)])
    assert earliest <= line.new <= end
    assert line.current == current


def test_a_plan_is_ordered_and_says_what_does_not_move() -> None:
    plan = plan_reset(
        reset_spec(to_latest=True),
        [at(100, partition=1), at(40, partition=0), at(None, partition=2, topic="t.a")],
    )
    assert [(p.topic, p.partition) for p in plan] == [("t.a", 2), ("t.scores", 0), ("t.scores", 1)]
    assert plan_rows(plan) == [
        ("t.a", 2, "-", 100, ""),
        ("t.scores", 0, "40", 100, ""),
        ("t.scores", 1, "100", 100, "unchanged"),
    ]


# -- options ----------------------------------------------------------------------------


def test_exactly_one_mode_is_required() -> None:
    with pytest.raises(InvalidResetError, match="got none"):
        reset_spec()
    with pytest.raises(InvalidResetError, match="--to-earliest, --shift-by"):
        reset_spec(to_earliest=True, shift_by=1)


def test_a_negative_target_offset_is_refused() -> None:
    with pytest.raises(InvalidResetError, match="0 or more"):
        reset_spec(to_offset=-1)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("P1D", timedelta(days=1)),
        ("PT30M", timedelta(minutes=30)),
        ("P1DT2H", timedelta(days=1, hours=2)),
        ("P2DT3H4M5S", timedelta(days=2, hours=3, minutes=4, seconds=5)),
        ("PT1.5S", timedelta(seconds=1.5)),
        ("pt10m", timedelta(minutes=10)),
        ("P0D", timedelta(0)),
    ],
)
def test_iso_8601_durations(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "P", "PT", "P1DT", "1D", "P1H", "P-1D", "PT5X", "30m"])
def test_bad_durations_are_refused(text: str) -> None:
    with pytest.raises(InvalidResetError, match="ISO 8601 duration"):
        parse_duration(text)


def test_datetimes_are_read_with_their_zone_and_returned_in_utc() -> None:
    assert parse_datetime("2026-05-01T12:00:00Z") == NOW
    moment = parse_datetime("2026-05-01T14:00:00+02:00")
    assert moment == NOW
    assert moment.tzinfo == UTC
    assert parse_datetime("2026-05-01T12:00:00.250Z").microsecond == 250_000
    assert parse_datetime(" 2026-05-01T07:00:00-05:00 ") == NOW


def test_datetimes_without_a_zone_or_malformed_are_refused() -> None:
    with pytest.raises(InvalidResetError, match="no time zone"):
        parse_datetime("2026-05-01T12:00:00")
    with pytest.raises(InvalidResetError, match="not an ISO 8601 datetime"):
        parse_datetime("yesterday")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("scores", ("scores", None)),
        ("scores:0,2", ("scores", (0, 2))),
        ("scores:2, 0,2", ("scores", (0, 2))),
        ("entries.predictions:3", ("entries.predictions", (3,))),
    ],
)
def test_topic_partitions(text: str, expected: tuple[str, tuple[int, ...] | None]) -> None:
    assert parse_topic_partitions(text) == expected


@pytest.mark.parametrize("text", ["scores:", "scores:a", ":1", "scores:-1", "scores:1;2"])
def test_bad_topic_partitions_are_refused(text: str) -> None:
    with pytest.raises(InvalidResetError):
        parse_topic_partitions(text)


def test_a_spec_describes_itself_as_its_option() -> None:
    assert reset_spec(to_earliest=True).describe() == "--to-earliest"
    assert reset_spec(shift_by=-3).describe() == "--shift-by -3"
    assert reset_spec(to_datetime="2026-05-01T12:00:00Z").describe() == (
        "--to-datetime 2026-05-01T12:00:00+00:00"
    )
