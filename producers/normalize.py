"""Provider JSON (SofaScore-like) to ``MatchUpdated``: pure, no I/O, no clock.

Mapping of an event:

- ``match_id`` = ``str(id)``; ``tournament_id`` = ``str(tournament.uniqueTournament.id)``;
  ``round`` = ``str(roundInfo.round)`` (``None`` without ``roundInfo``).
- ``status.type``: notstarted, inprogress (code 31: halftime), finished, postponed,
  canceled/cancelled. ``period``: 1H (code 6), HT (31), 2H (7), ET (41, 42), PEN (50),
  FT once finished, else ``None``.
- Scores: ``homeScore.current``; an empty score object counts 0 only while the match has
  not started (or never will: postponed, cancelled).
- ``minute``: while in play, derived from the provider's own clock, ``(changeTimestamp -
  time.currentPeriodStartTimestamp) // 60 + 1`` plus 45 in the 2nd half (90, 105 in extra
  time); ``None`` when the payload lacks what it needs.
- ``kickoff_at`` = ``startTimestamp`` (epoch seconds) as a UTC datetime;
  ``updated_at`` = ``changes.changeTimestamp`` (epoch seconds) as a UTC datetime.
- ``provider_version`` = ``changes.changeTimestamp`` in **epoch milliseconds** (the
  provider sends seconds); an update with a lower one than already stored is stale.
- ``result_version``: 0 until the match first finishes, 1 for the first final score, and
  +1 for every later change of the final score (a correction). It never decreases.

Change detection: ``payload_sha256`` (stored in ``provider_match_state``) is the SHA-256
of the canonical JSON (sorted keys, compact, UTF-8) of the event's *semantic content*:
every ``MatchUpdated`` field but the versions and ``updated_at``. A payload that differs
from the stored one only in what ``MatchUpdated`` does not carry (``changes``, team short
names, key order, whitespace) publishes nothing.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from producers.exceptions import MalformedPayloadError
from schemas.records import MatchStatus, MatchUpdated

DEFAULT_PROVIDER = "sofascore-replay"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MAX_EPOCH_S = 253_402_300_799  # 9999-12-31T23:59:59Z
_INT32_MAX = 2**31 - 1

_STATUS_BY_TYPE: Mapping[str, MatchStatus] = {
    "notstarted": MatchStatus.NOTSTARTED,
    "inprogress": MatchStatus.INPROGRESS,
    "finished": MatchStatus.FINISHED,
    "postponed": MatchStatus.POSTPONED,
    "canceled": MatchStatus.CANCELLED,
    "cancelled": MatchStatus.CANCELLED,
}
HALFTIME_CODE = 31
_PERIOD_BY_CODE: Mapping[int, str] = {6: "1H", 31: "HT", 7: "2H", 41: "ET", 42: "ET", 50: "PEN"}
_MINUTE_OFFSET_BY_CODE: Mapping[int, int] = {6: 0, 7: 45, 41: 90, 42: 105}
#: Statuses where an empty score object means 0 - 0.
_SCORELESS = frozenset({MatchStatus.NOTSTARTED, MatchStatus.POSTPONED, MatchStatus.CANCELLED})


@dataclass(frozen=True, slots=True)
class ProviderMatchState:
    """What the poller last published for a match (a row of ``provider_match_state``)."""

    provider: str
    match_id: str
    payload_sha256: str
    status: MatchStatus
    home_score: int | None
    away_score: int | None
    result_version: int
    provider_version: int


@dataclass(frozen=True, slots=True)
class EventSlice:
    """One event of a response: its parsed JSON and its exact bytes in the body."""

    index: int
    payload: Any
    raw: bytes


@dataclass(frozen=True, slots=True)
class RoundsIndex:
    """A season's rounds list: the current round and every round number, ascending."""

    current: int
    rounds: tuple[int, ...]

    def upcoming(self, ahead: int = 1) -> tuple[int, ...]:
        """The current round and the next ``ahead`` rounds after it."""
        later = [r for r in self.rounds if r > self.current][:ahead]
        return (self.current, *later)


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no whitespace, UTF-8: equal JSON values give equal bytes."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def normalize_event(
    payload: Mapping[str, Any],
    *,
    provider: str = DEFAULT_PROVIDER,
    previous: ProviderMatchState | None = None,
) -> tuple[MatchUpdated, ProviderMatchState] | None:
    """The ``MatchUpdated`` to publish and the state to store, or ``None`` for no change.

    ``None`` when the semantic content equals ``previous`` or the update is older than it
    (a lower ``provider_version``). Raises :class:`MalformedPayloadError` naming the field.
    """
    event = _require_object(payload, "event")
    match_id = event_id(event)
    if previous is not None and (previous.match_id, previous.provider) != (match_id, provider):
        raise ValueError(
            f"previous state is {previous.provider}/{previous.match_id}, "
            f"the event is {provider}/{match_id}"
        )
    changes = _require_object(event.get("changes"), "event.changes")
    changed_at_ms = _epoch_ms(changes.get("changeTimestamp"), "event.changes.changeTimestamp")
    if previous is not None and changed_at_ms < previous.provider_version:
        return None
    status_obj = _require_object(event.get("status"), "event.status")
    status, code = _status(status_obj)
    home_score = _score(event.get("homeScore"), "event.homeScore", status)
    away_score = _score(event.get("awayScore"), "event.awayScore", status)
    tournament = _require_object(event.get("tournament"), "event.tournament")
    unique = _require_object(
        tournament.get("uniqueTournament"), "event.tournament.uniqueTournament"
    )
    home = _require_object(event.get("homeTeam"), "event.homeTeam")
    away = _require_object(event.get("awayTeam"), "event.awayTeam")
    content: dict[str, Any] = {
        "match_id": match_id,
        "tournament_id": _id(unique.get("id"), "event.tournament.uniqueTournament.id"),
        "round": _round(event.get("roundInfo")),
        "home_team_id": _id(home.get("id"), "event.homeTeam.id"),
        "home_team_name": _text(home.get("name"), "event.homeTeam.name"),
        "away_team_id": _id(away.get("id"), "event.awayTeam.id"),
        "away_team_name": _text(away.get("name"), "event.awayTeam.name"),
        "status": status.value,
        "home_score": home_score,
        "away_score": away_score,
        "minute": _minute(event.get("time"), status, code, changed_at_ms),
        "period": "FT" if status is MatchStatus.FINISHED else _period(status, code),
        "kickoff_at": _epoch_ms(event.get("startTimestamp"), "event.startTimestamp"),
    }
    digest = hashlib.sha256(canonical_json(content)).hexdigest()
    if previous is not None and digest == previous.payload_sha256:
        return None
    result_version = _result_version(previous, status, home_score, away_score)
    update = MatchUpdated(
        **{**content, "status": status, "kickoff_at": _datetime(content["kickoff_at"])},
        provider=provider,
        provider_version=changed_at_ms,
        result_version=result_version,
        updated_at=_datetime(changed_at_ms),
    )
    state = ProviderMatchState(
        provider=provider,
        match_id=match_id,
        payload_sha256=digest,
        status=status,
        home_score=home_score,
        away_score=away_score,
        result_version=result_version,
        provider_version=changed_at_ms,
    )
    return update, state


def event_id(event: Mapping[str, Any]) -> str:
    """The provider event id as a string (the match id and the Kafka key)."""
    return _id(event.get("id"), "event.id")


def parse_event_list(body: bytes) -> list[EventSlice]:
    """The events of ``{"events": [...]}`` with the exact bytes of each one."""
    text, document = _parse_document(body)
    events = document.get("events")
    if not isinstance(events, list):
        raise MalformedPayloadError("body.events", f"expected a list, got {_kind(events)}")
    spans = _array_spans(text, _member_span(text, "events"))
    return [
        EventSlice(index, payload, text[start:end].encode("utf-8"))
        for index, (payload, (start, end)) in enumerate(zip(events, spans, strict=True))
    ]


def parse_event_detail(body: bytes) -> EventSlice:
    """The event of ``{"event": {...}}`` with its exact bytes."""
    text, document = _parse_document(body)
    if "event" not in document:
        raise MalformedPayloadError("body.event", "missing")
    start, end = _member_span(text, "event")
    return EventSlice(0, document["event"], text[start:end].encode("utf-8"))


def parse_rounds(body: bytes) -> RoundsIndex:
    """``{"currentRound": {"round": n}, "rounds": [{"round": 1}, ...]}``."""
    _, document = _parse_document(body)
    current = _require_object(document.get("currentRound"), "body.currentRound")
    rounds = document.get("rounds")
    if not isinstance(rounds, list):
        raise MalformedPayloadError("body.rounds", f"expected a list, got {_kind(rounds)}")
    numbers = {
        _int(_require_object(item, f"body.rounds[{i}]").get("round"), f"body.rounds[{i}].round")
        for i, item in enumerate(rounds)
    }
    return RoundsIndex(
        _int(current.get("round"), "body.currentRound.round"), tuple(sorted(numbers))
    )


# -- the parts of an event ------------------------------------------------------------


def _status(status: Mapping[str, Any]) -> tuple[MatchStatus, int]:
    code = _int(status.get("code"), "event.status.code")
    kind = status.get("type")
    if not isinstance(kind, str) or kind not in _STATUS_BY_TYPE:
        raise MalformedPayloadError(
            "event.status.type",
            f"expected one of {', '.join(sorted(_STATUS_BY_TYPE))}, got {kind!r}",
        )
    mapped = _STATUS_BY_TYPE[kind]
    if mapped is MatchStatus.INPROGRESS and code == HALFTIME_CODE:
        return MatchStatus.HALFTIME, code
    return mapped, code


def _score(value: Any, field: str, status: MatchStatus) -> int:
    score = _require_object(value, field)
    if "current" not in score:
        if status in _SCORELESS:
            return 0
        raise MalformedPayloadError(f"{field}.current", f"missing for a match {status.value}")
    return _int(score["current"], f"{field}.current")


def _round(value: Any) -> str | None:
    if value is None:
        return None
    info = _require_object(value, "event.roundInfo")
    return str(_int(info.get("round"), "event.roundInfo.round"))


def _period(status: MatchStatus, code: int) -> str | None:
    if status in (MatchStatus.INPROGRESS, MatchStatus.HALFTIME):
        return _PERIOD_BY_CODE.get(code)
    return None


def _minute(time: Any, status: MatchStatus, code: int, changed_at_ms: int) -> int | None:
    offset = _MINUTE_OFFSET_BY_CODE.get(code)
    if status is not MatchStatus.INPROGRESS or offset is None or time is None:
        return None
    clock = _require_object(time, "event.time")
    if clock.get("currentPeriodStartTimestamp") is None:
        return None
    started_ms = _epoch_ms(
        clock["currentPeriodStartTimestamp"], "event.time.currentPeriodStartTimestamp"
    )
    return offset + max(0, changed_at_ms - started_ms) // 60_000 + 1


def _result_version(
    previous: ProviderMatchState | None, status: MatchStatus, home: int, away: int
) -> int:
    before = 0 if previous is None else previous.result_version
    if status is not MatchStatus.FINISHED:
        return before
    if (
        previous is not None
        and previous.status is MatchStatus.FINISHED
        and (previous.home_score, previous.away_score) == (home, away)
    ):
        return before
    return before + 1


# -- checked accessors ----------------------------------------------------------------


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _require_object(value: Any, field: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise MalformedPayloadError(field, f"expected an object, got {_kind(value)}")
    return value


def _int(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise MalformedPayloadError(
            field, f"expected a non-negative integer, got {value!r} ({_kind(value)})"
        )
    if not 0 <= value <= _INT32_MAX:
        raise MalformedPayloadError(field, f"expected 0..{_INT32_MAX}, got {value}")
    return int(value)


def _id(value: Any, field: str) -> str:
    if isinstance(value, str) and value.strip():
        return value
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return str(value)
    raise MalformedPayloadError(
        field, f"expected a non-negative integer or a non-empty string, got {value!r}"
    )


def _text(value: Any, field: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise MalformedPayloadError(field, f"expected a non-empty string, got {value!r}")
    return value


def _epoch_ms(value: Any, field: str) -> int:
    """Epoch seconds (an integer or not) as epoch milliseconds."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise MalformedPayloadError(
            field, f"expected epoch seconds (a number), got {value!r} ({_kind(value)})"
        )
    if not math.isfinite(value) or not 0 <= value <= _MAX_EPOCH_S:
        raise MalformedPayloadError(field, f"epoch seconds out of range: {value!r}")
    if isinstance(value, int):
        return value * 1000
    return round(float(value) * 1000)


def _datetime(epoch_ms: int) -> datetime:
    return _EPOCH + timedelta(milliseconds=epoch_ms)


# -- response bodies and the exact bytes of each event ----------------------------------

_DECODER = json.JSONDecoder()
_WHITESPACE = re.compile(r"[ \t\n\r]*")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _parse_document(body: bytes) -> tuple[str, Mapping[str, Any]]:
    try:
        text = body.decode("utf-8")
        document = json.loads(text, parse_constant=_reject_constant)
    except UnicodeDecodeError as e:
        raise MalformedPayloadError("body", f"not UTF-8: {e}") from e
    except ValueError as e:  # json.JSONDecodeError is a ValueError
        raise MalformedPayloadError("body", f"not JSON: {e}") from e
    return text, _require_object(document, "body")


def _skip(text: str, index: int) -> int:
    match = _WHITESPACE.match(text, index)
    return index if match is None else match.end()


def _member_span(text: str, name: str) -> tuple[int, int]:
    """Where the value of the top-level member ``name`` is (the last one, as json.loads).

    Only called on text ``json.loads`` accepted, so the grammar holds.
    """
    found: tuple[int, int] | None = None
    index = _skip(text, _skip(text, 0) + 1)  # past "{"
    while text[index] != "}":
        key, index = _DECODER.raw_decode(text, index)
        index = _skip(text, _skip(text, index) + 1)  # past ":"
        _, end = _DECODER.raw_decode(text, index)
        if key == name:
            found = (index, end)
        index = _skip(text, end)
        if text[index] == ",":
            index = _skip(text, index + 1)
    if found is None:
        raise MalformedPayloadError(f"body.{name}", "missing")
    return found


def _array_spans(text: str, span: tuple[int, int]) -> Sequence[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    index = _skip(text, span[0] + 1)  # past "["
    while text[index] != "]":
        _, end = _DECODER.raw_decode(text, index)
        spans.append((index, end))
        index = _skip(text, end)
        if text[index] == ",":
            index = _skip(text, index + 1)
    return spans
