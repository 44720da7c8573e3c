"""The upstream app, simulated: members, leagues and their score guesses on a season.

:func:`generate_entries` is pure and deterministic from a seed. It makes what the real
app would send, warts included: guesses placed before kick-off, some placed at or after it
(to be rejected downstream), some redelivered (the same entry twice in the publish list),
some re-guessed (a new entry, placed later, that supersedes the first). The publishers
send them to Kafka; :func:`oracle_for` says what every board must hold in the end.
"""

from __future__ import annotations

import asyncio
import bisect
import hashlib
import random
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from core.kafka import producer as kafka_producer
from core.logging import get_logger
from core.settings import Settings
from producers.season import MatchPlan, Season, final_score, score_at
from schemas.catalog import ENTRIES_PREDICTIONS, RULES, topic
from schemas.codec import AvroCodec
from schemas.records import Game, PredictionPlaced, RuleSet
from streams.rules.boards import BoardLine
from streams.rules.predictions import MatchResult, PredictionRules, Score, oracle_totals

__all__ = [
    "GUESS_WINDOW",
    "LATE_WINDOW",
    "League",
    "Member",
    "SimulatedEntries",
    "generate_entries",
    "oracle_for",
    "publish_entries",
    "publish_rules",
    "publish_simulation",
]

log = get_logger("simulator")

#: On-time guesses are placed up to this long before kick-off.
GUESS_WINDOW = timedelta(days=3)
#: Late guesses are placed at kick-off or up to this long after it.
LATE_WINDOW = timedelta(minutes=30)
_MS = timedelta(milliseconds=1)
#: P(goals <= n) for n = 0..3 (a guess is 0 to 4 goals: 25%, 35%, 22%, 12%, 6%).
_GOAL_CUMULATIVE = (0.25, 0.60, 0.82, 0.94)
_SEND_BATCH = 10_000


@dataclass(frozen=True, slots=True)
class League:
    league_id: str
    tournament_id: str
    name: str
    private: bool
    access_token: str | None = None


@dataclass(frozen=True, slots=True)
class Member:
    member_id: str
    name: str
    league_ids: tuple[str, ...]


@dataclass(frozen=True)
class SimulatedEntries:
    """What the upstream app sends for a season, and what the test harness knows of it.

    ``predictions`` is the publish order, redeliveries included. ``late_entry_ids`` were
    placed at or after kick-off; ``superseded_entry_ids`` were replaced by a later guess;
    ``duplicated_entry_ids`` appear twice.
    """

    tournament_id: str
    leagues: tuple[League, ...]
    members: tuple[Member, ...]
    predictions: tuple[PredictionPlaced, ...]
    ruleset: RuleSet
    late_entry_ids: frozenset[str] = field(default_factory=frozenset)
    superseded_entry_ids: frozenset[str] = field(default_factory=frozenset)
    duplicated_entry_ids: frozenset[str] = field(default_factory=frozenset)

    @property
    def rules(self) -> PredictionRules:
        return PredictionRules.from_ruleset(self.ruleset)


def ruleset_for(season: Season, rules: PredictionRules | None = None) -> RuleSet:
    """The tournament's rule set, version 1, in force before any guess was placed."""
    ruleset_id = f"predictions:{season.tournament_id}"
    rules = rules or PredictionRules(ruleset_id, 1)
    first_kickoff = min((m.kickoff for m in season.matches), default=None)
    if first_kickoff is None:
        raise ValueError("a season without matches has no rule set")
    return RuleSet(
        ruleset_id=ruleset_id,
        game=Game.PREDICTIONS,
        version=rules.version,
        params=rules.to_params(),
        effective_from=first_kickoff - GUESS_WINDOW - timedelta(days=1),
    )


def _ids(prefix: str, count: int, width: int) -> list[str]:
    width = max(width, len(str(count)))
    return [f"{prefix}{i:0{width}d}" for i in range(1, count + 1)]


def _goals(rng: random.Random) -> int:
    return bisect.bisect(_GOAL_CUMULATIVE, rng.random())


def _between(rng: random.Random, low: int, high: int) -> int:
    """An int in [low, high]; cheaper than ``randint`` for the hot loop."""
    return low + int(rng.random() * (high - low + 1))


def _guess(rng: random.Random) -> tuple[int, int]:
    return _goals(rng), _goals(rng)


def _entry(
    plan: MatchPlan, member: Member, n: int, offset_ms: int, goals: tuple[int, int]
) -> PredictionPlaced:
    """Entry ``n`` of a member on a match, placed ``offset_ms`` from kick-off."""
    return PredictionPlaced(
        entry_id=f"e-{plan.id}-{member.member_id}-{n}",
        member_id=member.member_id,
        match_id=plan.match_id,
        league_ids=member.league_ids,
        home_goals=goals[0],
        away_goals=goals[1],
        placed_at=plan.kickoff + offset_ms * _MS,
    )


def generate_entries(
    season: Season,
    *,
    members: int,
    leagues: int,
    seed: int,
    guess_rate: float = 0.9,
    late_rate: float = 0.02,
    duplicate_rate: float = 0.02,
    regues_rate: float = 0.03,
    rounds: Collection[int] | None = None,
) -> SimulatedEntries:
    """Members, leagues and guesses on the season's matches (of ``rounds``, default all).

    Each member is in 1-3 leagues; every fourth league (``l002``, ``l006``, ...) is private,
    with an access token. Per match, a member guesses with ``guess_rate``; a guess is late
    with ``late_rate`` (half of those after an on-time guess, which stays the one that
    counts); an on-time guess is re-guessed with ``regues_rate`` (a new entry, placed
    later, with another score); any entry is redelivered with ``duplicate_rate``.
    Entry ids are ``e-{match}-{member}-{n}``; ``placed_at`` has millisecond precision.
    """
    for name, rate in (
        ("guess_rate", guess_rate),
        ("late_rate", late_rate),
        ("duplicate_rate", duplicate_rate),
        ("regues_rate", regues_rate),
    ):
        if not 0 <= rate <= 1:
            raise ValueError(f"{name} must be in [0, 1]: {rate}")
    rng = random.Random(seed)  # noqa: S311 - a simulation, not security
    tournament_id = season.tournament_id
    league_list = tuple(
        League(
            league_id=league_id,
            tournament_id=tournament_id,
            name=f"League {i}",
            private=i % 4 == 2,
            access_token=f"{rng.getrandbits(128):032x}" if i % 4 == 2 else None,
        )
        for i, league_id in enumerate(_ids("l", leagues, 3), start=1)
    )
    league_ids = [league.league_id for league in league_list]
    member_list = tuple(
        Member(
            member_id=member_id,
            name=f"Member {i}",
            league_ids=tuple(sorted(rng.sample(league_ids, rng.randint(1, min(3, leagues)))))
            if leagues
            else (),
        )
        for i, member_id in enumerate(_ids("m", members, 5), start=1)
    )
    matches = [m for m in season.matches if rounds is None or m.round in rounds]
    placed: list[PredictionPlaced] = []
    late: set[str] = set()
    superseded: set[str] = set()
    window_ms = int(GUESS_WINDOW / _MS)
    late_ms = int(LATE_WINDOW / _MS)
    for plan in matches:
        for member in member_list:
            if rng.random() >= guess_rate:
                continue
            before_ms = _between(rng, 2, window_ms)
            first = _entry(plan, member, 1, -before_ms, _guess(rng))
            if rng.random() < late_rate:
                after_ms = 0 if rng.random() < 0.2 else _between(rng, 1, late_ms)
                after_first = rng.random() < 0.5
                guess = _entry(plan, member, 2 if after_first else 1, after_ms, _guess(rng))
                late.add(guess.entry_id)
                placed.extend((first, guess) if after_first else (guess,))
                continue
            placed.append(first)
            if rng.random() < regues_rate:
                goals = (first.home_goals, (first.away_goals + rng.randint(1, 4)) % 5)
                placed.append(_entry(plan, member, 2, -_between(rng, 1, before_ms - 1), goals))
                superseded.add(first.entry_id)
    keyed: list[tuple[datetime, int, PredictionPlaced]] = []
    duplicated: set[str] = set()
    for index, record in enumerate(placed):
        keyed.append((record.placed_at, index, record))
        if rng.random() < duplicate_rate:
            keyed.append((record.placed_at + rng.randint(1, 60_000) * _MS, index, record))
            duplicated.add(record.entry_id)
    keyed.sort(key=lambda item: (item[0], item[1]))
    return SimulatedEntries(
        tournament_id=tournament_id,
        leagues=league_list,
        members=member_list,
        predictions=tuple(record for _, _, record in keyed),
        ruleset=ruleset_for(season),
        late_entry_ids=frozenset(late),
        superseded_entry_ids=frozenset(superseded),
        duplicated_entry_ids=frozenset(duplicated),
    )


def _result(season: Season, plan: MatchPlan, when: datetime | None) -> MatchResult | None:
    if when is None:
        home, away = final_score(plan)
        version = 2 if plan.correction is not None else 1
    elif when < plan.full_time:
        return None
    else:
        score = score_at(plan, when)
        home, away = sum(score["home"]), sum(score["away"])
        corrected = plan.corrected_at is not None and when >= plan.corrected_at
        version = 2 if corrected else 1
    return MatchResult(
        plan.match_id, season.tournament_id, Score(home, away), version, plan.kickoff
    )


def oracle_for(
    season: Season, entries: SimulatedEntries, *, when: datetime | None = None
) -> dict[str, dict[str, BoardLine]]:
    """What every board must hold: ``{board_id: {member_id: BoardLine}}``.

    From the final (post-correction) results, or with ``when`` the results as they stand
    then (only matches finished by then, corrected if the correction has landed), and the
    entries as published; :func:`streams.rules.predictions.oracle_totals` does the rest.
    """
    results = {
        plan.match_id: result
        for plan in season.matches
        if (result := _result(season, plan, when)) is not None
    }
    return oracle_totals(entries.predictions, results, entries.rules)


async def publish_entries(
    producer: Any,
    codec: AvroCodec,
    entries: SimulatedEntries | Iterable[PredictionPlaced],
    prefix: str = "",
) -> int:
    """Send guesses to ``entries.predictions`` in order, keyed by match_id; flush.

    ``producer`` is a started idempotent ``AIOKafkaProducer`` (``core.kafka.producer``).
    Returns the number of records sent (redeliveries included). Raises what the producer
    raises when a send fails.
    """
    records = entries.predictions if isinstance(entries, SimulatedEntries) else entries
    name = topic(ENTRIES_PREDICTIONS, prefix)
    pending: list[asyncio.Future[Any]] = []
    sent = 0
    for record in records:
        value = codec.encode(record, ENTRIES_PREDICTIONS)
        pending.append(await producer.send(name, value=value, key=record.match_id.encode()))
        sent += 1
        if len(pending) >= _SEND_BATCH:
            await asyncio.gather(*pending)
            pending.clear()
    await producer.flush()
    await asyncio.gather(*pending)
    log.info("simulator.published", topic=name, records=sent)
    return sent


async def publish_rules(
    producer: Any, codec: AvroCodec, ruleset: RuleSet, prefix: str = ""
) -> None:
    """Send a rule set to the compacted ``rules`` topic, keyed by ruleset_id; flush."""
    name = topic(RULES, prefix)
    value = codec.encode(ruleset, RULES)
    metadata = await producer.send_and_wait(name, value=value, key=ruleset.ruleset_id.encode())
    log.info(
        "simulator.rules",
        topic=name,
        partition=metadata.partition,
        offset=metadata.offset,
        ruleset_id=ruleset.ruleset_id,
        version=ruleset.version,
    )


async def publish_simulation(settings: Settings, entries: SimulatedEntries) -> int:
    """Rules, then guesses, with a fresh idempotent producer and the settings' codec."""
    codec = AvroCodec.from_settings(settings)
    producer = kafka_producer(settings)
    await producer.start()
    try:
        await publish_rules(producer, codec, entries.ruleset, settings.topic_prefix)
        return await publish_entries(producer, codec, entries, settings.topic_prefix)
    finally:
        await producer.stop()
        codec.close()


async def register_leagues(database_url: str, leagues: Iterable[League]) -> None:
    """Write the leagues to Postgres, as the upstream app does (private ones by token hash)."""
    import asyncpg

    conn = await asyncpg.connect(database_url)
    try:
        await conn.executemany(
            """
            insert into leagues (league_id, tournament_id, name, private, access_token_sha256)
            values ($1, $2, $3, $4, $5)
            on conflict (league_id) do update set name = excluded.name,
                private = excluded.private, access_token_sha256 = excluded.access_token_sha256
            """,
            [
                (
                    league.league_id,
                    league.tournament_id,
                    league.name,
                    league.private,
                    hashlib.sha256(league.access_token.encode()).hexdigest()
                    if league.access_token
                    else None,
                )
                for league in leagues
            ],
        )
    finally:
        await conn.close()
