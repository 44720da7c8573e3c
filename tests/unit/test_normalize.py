"""Provider events to MatchUpdated: mapping, change detection, result versions, bad input."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.exceptions import PoisonRecordError
from producers.exceptions import MalformedPayloadError
from producers.normalize import (
    ProviderMatchState,
    RoundsIndex,
    canonical_json,
    normalize_event,
    parse_event_detail,
    parse_event_list,
    parse_rounds,
)
from schemas.catalog import FIXTURES_MATCHES
from schemas.codec import AvroCodec
from schemas.records import MatchStatus, MatchUpdated

KICKOFF = 1_790_000_000  # epoch seconds
# (code, type, description) as the provider sends them, and what they map to.
STATUSES: dict[str, tuple[int, str, str, MatchStatus, str | None]] = {
    "notstarted": (0, "notstarted", "Not started", MatchStatus.NOTSTARTED, None),
    "first_half": (6, "inprogress", "1st half", MatchStatus.INPROGRESS, "1H"),
    "halftime": (31, "inprogress", "Halftime", MatchStatus.HALFTIME, "HT"),
    "second_half": (7, "inprogress", "2nd half", MatchStatus.INPROGRESS, "2H"),
    "finished": (100, "finished", "Ended", MatchStatus.FINISHED, "FT"),
    "postponed": (60, "postponed", "Postponed", MatchStatus.POSTPONED, None),
    "canceled": (70, "canceled", "Canceled", MatchStatus.CANCELLED, None),
}
SCORELESS = {"notstarted", "postponed", "canceled"}


def an_event(
    *,
    event_id: int = 1001,
    status: str = "notstarted",
    home: int = 0,
    away: int = 0,
    changed_at: int = KICKOFF - 3600,
    period_started_at: int | None = None,
    home_name: str = "Arsenal",
    away_name: str = "Atlético Madrid",
) -> dict[str, Any]:
    code, kind, description, _, _ = STATUSES[status]

    def score(goals: int) -> dict[str, int]:
        return {} if status in SCORELESS else {"current": goals, "display": goals, "period1": 0}

    event: dict[str, Any] = {
        "id": event_id,
        "tournament": {"id": 1, "name": "PL", "uniqueTournament": {"id": 17, "name": "PL"}},
        "season": {"id": 2026, "year": "26/27"},
        "roundInfo": {"round": 3},
        "homeTeam": {"id": 42, "name": home_name, "shortName": home_name[:3]},
        "awayTeam": {"id": 43, "name": away_name, "shortName": away_name[:3]},
        "status": {"code": code, "type": kind, "description": description},
        "homeScore": score(home),
        "awayScore": score(away),
        "time": {},
        "startTimestamp": KICKOFF,
        "changes": {"changes": ["status.code"], "changeTimestamp": changed_at},
    }
    if period_started_at is not None:
        event["time"] = {"currentPeriodStartTimestamp": period_started_at}
    return event


def normalized(
    event: dict[str, Any], previous: ProviderMatchState | None = None
) -> tuple[MatchUpdated, ProviderMatchState]:
    result = normalize_event(event, previous=previous)
    assert result is not None
    return result


@st.composite
def events(draw: st.DrawFn) -> dict[str, Any]:
    status = draw(st.sampled_from(sorted(STATUSES)))
    changed_at = draw(st.integers(0, 4_000_000_000))
    return an_event(
        event_id=draw(st.integers(0, 10**12)),
        status=status,
        home=draw(st.integers(0, 20)),
        away=draw(st.integers(0, 20)),
        changed_at=changed_at,
        period_started_at=draw(st.none() | st.integers(0, changed_at)),
        home_name=draw(st.text(min_size=1, max_size=20).filter(str.strip)),
        away_name=draw(st.text(min_size=1, max_size=20).filter(str.strip)),
    )


# -- mapping ------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(events())
def test_every_valid_event_maps_field_for_field(event: dict[str, Any]) -> None:
    update, state = normalized(event)
    _, _, _, status, period = _status_of(event)
    assert update.match_id == str(event["id"]) == state.match_id
    assert update.tournament_id == "17"
    assert update.round == "3"
    assert (update.home_team_id, update.home_team_name) == ("42", event["homeTeam"]["name"])
    assert (update.away_team_id, update.away_team_name) == ("43", event["awayTeam"]["name"])
    assert update.status is status
    assert update.period == period
    expected_home = event["homeScore"].get("current", 0)
    assert (update.home_score, update.away_score) == (
        expected_home,
        event["awayScore"].get("current", 0),
    )
    assert update.kickoff_at == datetime.fromtimestamp(KICKOFF, UTC)
    assert update.kickoff_at.tzinfo is not None and update.kickoff_at.utcoffset() is not None
    changed_at = event["changes"]["changeTimestamp"]
    assert update.provider_version == changed_at * 1000
    assert update.updated_at == datetime.fromtimestamp(changed_at, UTC)
    assert update.result_version == (1 if status is MatchStatus.FINISHED else 0)
    assert update.provider == "sofascore-replay"
    if status is not MatchStatus.INPROGRESS or not event["time"]:
        assert update.minute is None
    else:
        assert update.minute is not None and update.minute >= 1
    assert len(state.payload_sha256) == 64


def _status_of(event: dict[str, Any]) -> tuple[int, str, str, MatchStatus, str | None]:
    return next(s for s in STATUSES.values() if s[0] == event["status"]["code"])


CODEC = AvroCodec()


@settings(max_examples=100, deadline=None)
@given(events())
def test_a_normalized_event_fits_the_avro_schema(event: dict[str, Any]) -> None:
    update, _ = normalized(event)
    codec = CODEC
    assert codec.decode(codec.encode(update, FIXTURES_MATCHES)) == update


def test_minute_comes_from_the_providers_clock_and_the_half() -> None:
    start = KICKOFF + 47 * 60
    first = an_event(status="first_half", changed_at=KICKOFF + 600, period_started_at=KICKOFF)
    second = an_event(status="second_half", changed_at=start + 5 * 60 + 30, period_started_at=start)
    assert normalized(first)[0].minute == 11
    assert normalized(second)[0].minute == 51


def test_scores_are_zero_before_kickoff() -> None:
    update, _ = normalized(an_event(status="notstarted"))
    assert (update.home_score, update.away_score) == (0, 0)
    assert update.minute is None and update.period is None


# -- change detection ------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(events())
def test_the_same_content_again_publishes_nothing(event: dict[str, Any]) -> None:
    _, state = normalized(event)
    assert normalize_event(event, previous=state) is None
    reordered = json.loads(json.dumps(dict(reversed(list(event.items()))), indent=3))
    assert normalize_event(reordered, previous=state) is None
    noise = copy.deepcopy(event)
    noise["changes"]["changes"] = ["homeTeam.shortName"]
    noise["homeTeam"]["shortName"] = "XYZ"
    noise["hasXg"] = True
    assert normalize_event(noise, previous=state) is None


def test_a_stale_update_publishes_nothing() -> None:
    _, state = normalized(an_event(status="first_half", home=1, changed_at=KICKOFF + 900))
    older = an_event(status="notstarted", changed_at=KICKOFF - 60)
    assert normalize_event(older, previous=state) is None


def test_a_goal_is_a_change() -> None:
    _, state = normalized(an_event(status="first_half", changed_at=KICKOFF + 60))
    update, new_state = normalized(
        an_event(status="first_half", home=1, changed_at=KICKOFF + 600), previous=state
    )
    assert (update.home_score, update.away_score, update.result_version) == (1, 0, 0)
    assert new_state.payload_sha256 != state.payload_sha256
    assert new_state.provider_version == (KICKOFF + 600) * 1000


def test_result_version_counts_final_scores_only() -> None:
    t = KICKOFF
    _, s = normalized(an_event(status="second_half", home=2, away=1, changed_at=t + 5000))
    assert s.result_version == 0
    final, s = normalized(an_event(status="finished", home=2, away=1, changed_at=t + 6000), s)
    assert final.result_version == 1
    # Same final score, other content (a later change timestamp is not content): nothing.
    assert (
        normalize_event(
            an_event(status="finished", home=2, away=1, changed_at=t + 6500), previous=s
        )
        is None
    )
    corrected, s = normalized(an_event(status="finished", home=2, away=2, changed_at=t + 9000), s)
    assert (corrected.home_score, corrected.away_score, corrected.result_version) == (2, 2, 2)
    renamed = an_event(status="finished", home=2, away=2, changed_at=t + 9500, home_name="AFC")
    again, s = normalized(renamed, s)
    assert again.result_version == 2, "a final score unchanged keeps its version"
    back, s = normalized(an_event(status="finished", home=2, away=1, changed_at=t + 9900), s)
    assert back.result_version == 3


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3)), min_size=1, max_size=12))
def test_each_change_of_the_final_score_bumps_the_result_version_by_one(
    finals: list[tuple[int, int]],
) -> None:
    previous: ProviderMatchState | None = None
    published: list[MatchUpdated] = []
    for step, (home, away) in enumerate(finals):
        event = an_event(status="finished", home=home, away=away, changed_at=KICKOFF + step)
        result = normalize_event(event, previous=previous)
        if result is not None:
            published.append(result[0])
            previous = result[1]
    distinct_runs = 1 + sum(1 for a, b in zip(finals, finals[1:], strict=False) if a != b)
    assert [u.result_version for u in published] == list(range(1, distinct_runs + 1))
    assert (published[-1].home_score, published[-1].away_score) == finals[-1]


# -- malformed events ------------------------------------------------------------------


def _without(path: str) -> Any:
    def mutate(event: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target = event
        for name in parents:
            target = target[name]
        del target[last]

    return mutate


def _set(path: str, value: Any) -> Any:
    def mutate(event: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target = event
        for name in parents:
            target = target[name]
        target[last] = value

    return mutate


@pytest.mark.parametrize(
    ("status", "mutate", "field", "words"),
    [
        ("notstarted", _without("id"), "event.id", "non-negative integer"),
        ("notstarted", _set("id", True), "event.id", "True"),
        ("notstarted", _set("id", -5), "event.id", "-5"),
        ("notstarted", _without("homeTeam"), "event.homeTeam", "expected an object, got null"),
        ("notstarted", _set("homeTeam.id", None), "event.homeTeam.id", "None"),
        ("notstarted", _set("awayTeam.name", " "), "event.awayTeam.name", "non-empty string"),
        ("notstarted", _set("status.type", "abandoned"), "event.status.type", "'abandoned'"),
        ("notstarted", _set("status.code", "6"), "event.status.code", "'6' (str)"),
        ("first_half", _set("homeScore.current", "two"), "event.homeScore.current", "'two'"),
        ("first_half", _set("awayScore", {}), "event.awayScore.current", "missing"),
        ("first_half", _set("awayScore.current", -1), "event.awayScore.current", "-1"),
        ("first_half", _set("homeScore.current", 2**40), "event.homeScore.current", "0.."),
        ("notstarted", _set("startTimestamp", "2026-09-01"), "event.startTimestamp", "str"),
        ("notstarted", _set("startTimestamp", float("nan")), "event.startTimestamp", "range"),
        ("notstarted", _without("changes"), "event.changes", "object"),
        ("notstarted", _without("changes.changeTimestamp"), "event.changes.changeTimestamp", ""),
        (
            "notstarted",
            _without("tournament.uniqueTournament"),
            "event.tournament.uniqueTournament",
            "object",
        ),
        ("notstarted", _set("roundInfo.round", "3"), "event.roundInfo.round", "'3'"),
        ("first_half", _set("time", "45:00"), "event.time", "got str"),
        (
            "first_half",
            _set("time", {"currentPeriodStartTimestamp": "x"}),
            "event.time.currentPeriodStartTimestamp",
            "'x'",
        ),
    ],
)
def test_a_malformed_event_names_the_field_and_what_is_wrong(
    status: str, mutate: Any, field: str, words: str
) -> None:
    event = an_event(status=status, changed_at=KICKOFF + 60, period_started_at=KICKOFF)
    mutate(event)
    with pytest.raises(MalformedPayloadError) as caught:
        normalize_event(event)
    assert caught.value.field == field
    assert str(caught.value).startswith(f"{field}: ")
    assert words in caught.value.reason
    assert isinstance(caught.value, PoisonRecordError)


def test_a_payload_that_is_not_an_object_is_malformed() -> None:
    with pytest.raises(MalformedPayloadError, match="^event: expected an object, got list"):
        normalize_event([1, 2])  # type: ignore[arg-type]


# -- response bodies -------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(
    st.lists(events(), max_size=5),
    st.sampled_from([None, 0, 2]),
    st.booleans(),
    st.sampled_from([(",", ":"), (", ", ": "), (" ,", " : ")]),
)
def test_each_event_keeps_its_exact_bytes(
    items: list[dict[str, Any]], indent: int | None, ascii_only: bool, separators: Any
) -> None:
    body = json.dumps(
        {"before": {"events": "decoy"}, "events": items, "after": [1, {"x": "]"}]},
        indent=indent,
        ensure_ascii=ascii_only,
        separators=separators,
    ).encode()
    slices = parse_event_list(body)
    assert [s.payload for s in slices] == items
    assert [s.index for s in slices] == list(range(len(items)))
    cursor = 0
    for item in slices:
        found = body.index(item.raw, cursor)
        cursor = found + len(item.raw)
        assert json.loads(item.raw) == item.payload


def test_event_detail_keeps_its_exact_bytes() -> None:
    body = b'{ "event" :  {"id": 7,  "name": "M\xc3\xbcnchen"} , "x": 1}'
    detail = parse_event_detail(body)
    assert detail.raw == b'{"id": 7,  "name": "M\xc3\xbcnchen"}'
    assert detail.payload == {"id": 7, "name": "München"}


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        (b"<html>502 Bad Gateway</html>", "body", "not JSON"),
        (b'{"events": [{"id": 1}', "body", "not JSON"),
        (b"\xff\xfe{}", "body", "not UTF-8"),
        (b'{"events": [NaN]}', "body", "NaN"),
        (b"[]", "body", "expected an object, got list"),
        (b'{"events": {"id": 1}}', "body.events", "expected a list, got dict"),
        (b'{"live": []}', "body.events", "expected a list, got null"),
    ],
)
def test_a_malformed_body_is_reported(body: bytes, field: str, words: str) -> None:
    with pytest.raises(MalformedPayloadError) as caught:
        parse_event_list(body)
    assert caught.value.field == field
    assert words in caught.value.reason


def test_rounds_list_gives_the_current_and_next_rounds() -> None:
    body = b'{"currentRound": {"round": 3}, "rounds": [{"round": 4}, {"round": 1}, {"round": 3}]}'
    index = parse_rounds(body)
    assert index == RoundsIndex(current=3, rounds=(1, 3, 4))
    assert index.upcoming(1) == (3, 4)
    assert RoundsIndex(current=4, rounds=(1, 2, 3, 4)).upcoming(2) == (4,)
    with pytest.raises(MalformedPayloadError, match=r"body.rounds\[1\].round"):
        parse_rounds(b'{"currentRound": {"round": 3}, "rounds": [{"round": 1}, {"r": 2}]}')
    with pytest.raises(MalformedPayloadError, match="body.currentRound"):
        parse_rounds(b'{"rounds": []}')


def test_canonical_json_ignores_key_order_and_whitespace() -> None:
    assert canonical_json({"b": 1, "a": [1, {"d": "é", "c": None}]}) == canonical_json(
        json.loads('{ "a" : [1, {"c": null, "d": "\\u00e9"}], "b": 1 }')
    )
    with pytest.raises(ValueError, match="Out of range float"):
        canonical_json({"x": float("inf")})
