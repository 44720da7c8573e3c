"""Dead letters for operators, the pure parts: ids, headers, the replay catalog, --where, plans."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from core.exceptions import ConfigurationError
from core.ops.dlq import (
    Letter,
    LetterStatus,
    Position,
    Replay,
    Where,
    annotate,
    dead_letter_topic,
    letter_from_record,
    parse_partition_offset,
    plan,
    refusal,
    text_or_base64,
)
from schemas.records import DeadLetter

pytestmark = pytest.mark.unit

PREFIX = "t1."
FAILED_AT = datetime(2026, 8, 15, 17, 0, tzinfo=UTC)
#: The Kafka timestamp of the letters: a second after they failed, in epoch millis.
WRITTEN_AT_MS = int(FAILED_AT.timestamp()) * 1000 + 1000
PARTITIONS = {"t1.fixtures.matches": 4, "t1.scores": 4, "t1.raw.football.events": 4}


def a_reason(
    *,
    source: tuple[str, int, int] = ("t1.fixtures.matches", 2, 40),
    error_class: str = "SchemaDecodeError",
    message: str = "unknown schema fingerprint 0011223344556677 (single-object encoding)",
    attempts: int = 1,
) -> DeadLetter:
    return DeadLetter(
        error_class=error_class,
        error_message=message,
        source_topic=source[0],
        source_partition=source[1],
        source_offset=source[2],
        attempts=attempts,
        failed_at=FAILED_AT,
    )


def a_letter(
    offset: int = 0,
    *,
    key: bytes | None = b"1001",
    value: bytes | None = b"\xc3\x01junk",
    **reason: object,
) -> Letter:
    headers = [*a_reason(**reason).to_headers(), ("consumer", b"postgres")]  # type: ignore[arg-type]
    return letter_from_record(
        Position("t1.dlq.streams", 0, offset), WRITTEN_AT_MS, key, value, headers
    )


def a_status(letter: Letter, **changes: object) -> LetterStatus:
    (status,) = annotate([letter], {})
    return LetterStatus(
        letter=letter,
        replayed=changes.get("replayed"),  # type: ignore[arg-type]
        replay_of=changes.get("replay_of"),  # type: ignore[arg-type]
        attempts=status.attempts,
        decodes=str(changes.get("decodes", "")),
    )


# -- letter ids ---------------------------------------------------------------------------


def test_a_letter_id_is_its_position_and_parses_back() -> None:
    position = Position("t-1a2b.dlq.streams", 0, 17)
    assert str(position) == "t-1a2b.dlq.streams/0/17"
    assert Position.parse(str(position)) == position


@pytest.mark.parametrize("text", ["dlq.streams", "dlq.streams/0", "/0/1", "dlq.streams/a/1", ""])
def test_a_malformed_letter_id_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not a letter id"):
        Position.parse(text)


def test_partition_offset() -> None:
    assert parse_partition_offset("2:17") == (2, 17)
    assert parse_partition_offset("17") == (0, 17)
    with pytest.raises(ValueError, match="PARTITION:OFFSET"):
        parse_partition_offset("2:x")


def test_only_dead_letter_topics_are_named() -> None:
    assert dead_letter_topic("dlq.streams", PREFIX) == "t1.dlq.streams"
    for name in ("dlq.replayed", "fixtures.matches", "t1.dlq.streams"):
        with pytest.raises(ConfigurationError, match="not a dead-letter topic"):
            dead_letter_topic(name, PREFIX)


# -- letters from records -----------------------------------------------------------------


def test_a_letter_reads_its_reason_and_origin_from_the_headers() -> None:
    letter = a_letter(5, attempts=3)
    assert letter.id == Position("t1.dlq.streams", 0, 5)
    assert letter.reason == a_reason(attempts=3)
    assert letter.source == Position("t1.fixtures.matches", 2, 40)
    assert letter.timestamp == datetime(2026, 8, 15, 17, 0, 1, tzinfo=UTC)
    assert ("consumer", b"postgres") in letter.headers, "extra headers are kept for show"
    assert letter.problem == ""


def test_a_letter_with_malformed_headers_has_no_reason_and_says_why() -> None:
    headers = [(n, v) for n, v in a_reason().to_headers() if n != "source_offset"]
    letter = letter_from_record(Position("t1.dlq.sinks", 0, 1), 0, None, b"x", headers)
    assert letter.reason is None and letter.source is None
    assert "source_offset" in letter.problem
    bad = [(n, b"not a number" if n == "attempts" else v) for n, v in a_reason().to_headers()]
    assert "malformed" in letter_from_record(Position("d", 0, 2), 0, None, b"", bad).problem


def test_text_or_base64() -> None:
    assert text_or_base64(b"1001") == "1001"
    assert text_or_base64(b"\xc3\x01\x00\xff") == "base64:wwEA/w=="
    assert text_or_base64(b"a\nb") == "base64:YQpi", "control characters are not shown raw"


# -- the replay catalog -------------------------------------------------------------------


def test_a_replay_record_round_trips() -> None:
    replay = Replay(
        Position("t1.dlq.streams", 0, 3), Position("t1.fixtures.matches", 2, 99), FAILED_AT
    )
    assert Replay.from_json(replay.to_json()) == replay


@pytest.mark.parametrize("data", [b"", b"{}", b'{"letter": "x/0/1"}', b"[1]", b"\xff"])
def test_a_replay_record_that_is_not_one_is_refused(data: bytes) -> None:
    with pytest.raises(ValueError, match="not a replay record"):
        Replay.from_json(data)


def test_annotate_marks_replayed_letters_and_chains_failed_replays() -> None:
    first = a_letter(0, attempts=2)
    # The replay of the first landed at fixtures.matches/2/90 and failed again.
    second = a_letter(1, source=("t1.fixtures.matches", 2, 90))
    third = a_letter(2, source=("t1.fixtures.matches", 1, 7))
    replays = {
        first.id: Replay(first.id, Position("t1.fixtures.matches", 2, 90), FAILED_AT),
    }
    statuses = annotate([third, second, first], replays, decode=lambda data: "MatchUpdated")
    assert [s.letter.id.offset for s in statuses] == [0, 1, 2], "in letter order"
    by_offset = {s.letter.id.offset: s for s in statuses}
    assert by_offset[0].replayed == replays[first.id] and by_offset[0].replay_of is None
    assert by_offset[1].replayed is None and by_offset[1].replay_of == first.id
    assert by_offset[1].attempts == 3, "its own attempt plus the first letter's two"
    assert by_offset[2].replay_of is None and by_offset[2].attempts == 1
    assert all(s.decodes == "MatchUpdated" for s in statuses)


def test_annotate_records_why_a_value_does_not_decode() -> None:
    def decode(data: bytes) -> str:
        raise ValueError("unknown magic")

    (status,) = annotate([a_letter()], {}, decode=decode)
    assert status.decodes == "" and status.decode_error == "ValueError: unknown magic"


# -- --where ------------------------------------------------------------------------------


def test_where_matches_error_class_with_or_without_its_module() -> None:
    qualified = a_status(a_letter(error_class="core.exceptions.SchemaDecodeError"))
    short = a_status(a_letter(error_class="SchemaDecodeError"))
    other = a_status(a_letter(error_class="SinkUnavailableError"))
    where = Where.parse(["error=schemadecodeerror"])
    assert [where(s) for s in (qualified, short, other)] == [True, True, False]
    assert Where.parse(["error=core.exceptions.SchemaDecodeError"])(qualified)
    assert not Where.parse(["error=Schema"])(short), "error= is the class, not a substring"


def test_where_source_takes_the_logical_or_physical_topic_and_a_position() -> None:
    status = a_status(a_letter(source=("t1.fixtures.matches", 2, 40)))
    for value in (
        "fixtures.matches",
        "t1.fixtures.matches",
        "fixtures.matches/2",
        "fixtures.matches/2/40",
    ):
        assert Where.parse([f"source={value}"], PREFIX)(status), value
    for value in ("scores", "fixtures.matches/1", "fixtures.matches/2/41", "matches"):
        assert not Where.parse([f"source={value}"], PREFIX)(status), value


def test_where_message_key_offset_replayed_decodes() -> None:
    replay = Replay(Position("t1.dlq.streams", 0, 4), Position("t1.scores", 0, 1), FAILED_AT)
    done = a_status(a_letter(4, key=b"1001"), replayed=replay, decodes="MatchUpdated")
    todo = a_status(a_letter(5, key=None))
    cases = {
        "message=FINGERPRINT": (True, True),
        "message=trailing bytes": (False, False),
        "key=1001": (True, False),
        "offset=0:4": (True, False),
        "offset=5": (False, True),
        "replayed=yes": (True, False),
        "replayed=no": (False, True),
        "decodes=yes": (True, False),
        "decodes=NO": (False, True),
    }
    for expression, expected in cases.items():
        where = Where.parse([expression])
        assert (where(done), where(todo)) == expected, expression


def test_where_ors_a_repeated_field_and_ands_different_fields() -> None:
    decode_error = a_status(a_letter(0, error_class="SchemaDecodeError"))
    sink_down = a_status(
        a_letter(1, error_class="SinkUnavailableError", source=("t1.scores", 0, 1))
    )
    either = Where.parse(["error=SchemaDecodeError", "error=SinkUnavailableError"], PREFIX)
    assert either(decode_error) and either(sink_down)
    both = Where.parse(["error=SinkUnavailableError", "source=fixtures.matches"], PREFIX)
    assert not both(decode_error) and not both(sink_down)
    assert Where.parse([])(decode_error), "no condition selects every letter"


def test_where_needs_a_reason_for_reason_fields() -> None:
    letter = letter_from_record(Position("t1.dlq.streams", 0, 1), 0, b"k", b"v", [])
    (status,) = annotate([letter], {})
    assert not Where.parse(["error=SchemaDecodeError"])(status)
    assert Where.parse(["key=k"])(status)


@pytest.mark.parametrize(
    "expression", ["error", "colour=red", "replayed=maybe", "decodes=1", "offset=a:b"]
)
def test_where_refuses_what_it_cannot_read(expression: str) -> None:
    with pytest.raises(ValueError, match="--where|PARTITION:OFFSET"):
        Where.parse([expression])


# -- replay plans -------------------------------------------------------------------------


def test_a_letter_goes_back_to_its_source_topic_and_partition() -> None:
    status = a_status(a_letter(source=("t1.fixtures.matches", 2, 40)))
    (planned,) = plan([status], PREFIX, PARTITIONS)
    assert planned.target == ("t1.fixtures.matches", 2) and planned.reason == ""


def test_letters_that_cannot_be_replayed_say_why() -> None:
    replay = Replay(Position("t1.dlq.streams", 0, 0), Position("t1.scores", 0, 9), FAILED_AT)
    cases = {
        "already replayed as t1.scores/0/9": a_status(a_letter(), replayed=replay),
        "no value (a tombstone)": a_status(a_letter(value=None)),
        "points at the raw record": a_status(a_letter(source=("t1.raw.football.events", 0, 3))),
        "not a catalog topic under prefix": a_status(
            a_letter(source=("t2.fixtures.matches", 0, 3))
        ),
        "partition 7 is gone": a_status(a_letter(source=("t1.fixtures.matches", 7, 3))),
        "t1.fixtures.races does not exist": a_status(a_letter(source=("t1.fixtures.races", 0, 3))),
    }
    for expected, status in cases.items():
        assert expected in refusal(status, PREFIX, PARTITIONS), expected
        (planned,) = plan([status], PREFIX, PARTITIONS)
        assert planned.target is None and expected in planned.reason
    headless = letter_from_record(Position("t1.dlq.streams", 0, 1), 0, b"k", b"v", [])
    (status,) = annotate([headless], {})
    assert refusal(status, PREFIX, PARTITIONS).startswith("no origin: dead-letter headers")


def test_a_failed_replay_is_a_new_letter_that_can_be_replayed_once_more() -> None:
    first = a_letter(0)
    replays = {first.id: Replay(first.id, Position("t1.fixtures.matches", 2, 90), FAILED_AT)}
    again = a_letter(1, source=("t1.fixtures.matches", 2, 90))
    planned = plan(annotate([first, again], replays), PREFIX, PARTITIONS)
    assert [p.target for p in planned] == [None, ("t1.fixtures.matches", 2)]
    assert planned[0].reason.startswith("already replayed")


def test_letters_with_the_same_origin_are_replayed_once() -> None:
    """The DLQ is at-least-once (a sink resends a letter after a crash) and two sinks of one
    topic may both give up on a record: one copy back on the topic reaches every consumer."""
    first = a_letter(0, source=("t1.scores", 1, 5))
    resent = a_letter(1, source=("t1.scores", 1, 5))
    other = a_letter(2, source=("t1.scores", 1, 6))
    statuses = annotate([first, resent, other], {})
    assert [s.duplicate_of for s in statuses] == [None, first.id, None]
    planned = plan(statuses, PREFIX, PARTITIONS)
    assert [p.target for p in planned] == [("t1.scores", 1), None, ("t1.scores", 1)]
    assert planned[1].reason == f"duplicate of {first.id} (same origin): replay that one"
