"""The topic catalog: the one source for topic names, keys, values and policies.

No module spells a topic name by hand: use the constants below and :func:`topic` for the
physical name (a prefix isolates tests and environments).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from core.exceptions import ConfigurationError

CleanupPolicy = Literal["delete", "compact", "compact,delete"]
SubjectStrategy = Literal["topic_name", "topic_record_name"]

DAY_MS = 24 * 60 * 60 * 1000
FOREVER = -1  # retention.ms that never deletes
RAW_RETENTION_MS = 90 * DAY_MS
#: Partitions of everything keyed by fixture, member or bet; co-partitioned topics share it.
KEYED_PARTITIONS = 4

RAW_FOOTBALL_EVENTS = "raw.football.events"
RAW_FOOTBALL_ROUNDS = "raw.football.rounds"
RAW_MARKETS_MARKETS = "raw.markets.markets"
RAW_MARKETS_PRICES = "raw.markets.prices"
RAW_F1_RESULTS = "raw.f1.results"
FIXTURES_MATCHES = "fixtures.matches"
FIXTURES_RACES = "fixtures.races"
FIXTURES_MARKETS = "fixtures.markets"
FIXTURES_PLAYER_STATS = "fixtures.player-stats"
ENTRIES_PREDICTIONS = "entries.predictions"
ENTRIES_BETS = "entries.bets"
ENTRIES_LINEUPS = "entries.lineups"
ENTRIES_REJECTED = "entries.rejected"
RULES = "rules"
SCORES = "scores"
SETTLEMENTS = "settlements"
#: The credits ledger: every balance change of the credit games, once per key.
CREDITS_LEDGER = "credits.ledger"
LEADERBOARD_UPDATES = "leaderboard.updates"
NOTIFICATIONS = "notifications"
#: Internal state of the predictions worker: MatchState as JSON per match (changelog).
PREDICTIONS_MATCH_STATE = "streams.predictions.match-state"
#: Internal state of the settlement processor: JSON per judged bet and per partition's
#: progress (changelog; docs/markets.md).
SETTLEMENT_STATE = "streams.settlement.state"
DLQ_PRODUCERS = "dlq.producers"
DLQ_STREAMS = "dlq.streams"
DLQ_SINKS = "dlq.sinks"
#: Which dead letters were replayed (``scoreline dlq replay``): key the letter id, compacted.
DLQ_REPLAYED = "dlq.replayed"


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """A topic as the catalog declares it.

    ``value_schemas`` names the ``.avsc`` files a value may be (empty: raw bytes). With a
    schema registry, values are registered under ``<topic>-value`` (Confluent's
    TopicNameStrategy, one schema per topic) or, for topics that carry several record
    types, under ``<topic>-<namespace.Name>`` (TopicRecordNameStrategy).
    """

    name: str
    key: str
    value_schemas: tuple[str, ...]
    partitions: int
    cleanup_policy: CleanupPolicy
    retention_ms: int | None
    description: str
    subject_strategy: SubjectStrategy = "topic_name"

    def __post_init__(self) -> None:
        if self.subject_strategy == "topic_name" and len(self.value_schemas) > 1:
            raise ValueError(
                f"{self.name} carries {len(self.value_schemas)} value schemas: "
                "use subject_strategy='topic_record_name'"
            )

    def value_subject(self, schema_fullname: str, prefix: str = "") -> str:
        """The schema-registry subject of a value of this topic."""
        physical = prefix + self.name
        if self.subject_strategy == "topic_name":
            return f"{physical}-value"
        return f"{physical}-{schema_fullname}"


class UnknownTopicError(ConfigurationError, KeyError):
    """A topic name the catalog does not have."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


def _raw(name: str, key: str, description: str) -> TopicSpec:
    return TopicSpec(
        name=name,
        key=key,
        value_schemas=(),
        partitions=KEYED_PARTITIONS,
        cleanup_policy="delete",
        retention_ms=RAW_RETENTION_MS,
        description=f"{description}, exactly as fetched; headers: provider, url, fetched_at, "
        "content sha256, poll execution id",
    )


def _dlq(consumer: str) -> TopicSpec:
    return TopicSpec(
        name=f"dlq.{consumer}",
        key="original key",
        value_schemas=(),
        partitions=1,
        cleanup_policy="delete",
        retention_ms=FOREVER,
        description=f"Records the {consumer} could not process: original key and value bytes; "
        "headers as in DeadLetter.avsc (error_class, error_message, source_topic, "
        "source_partition, source_offset, attempts, failed_at)",
    )


def _keyed(
    name: str,
    key: str,
    value_schema: str,
    cleanup_policy: CleanupPolicy,
    retention_ms: int,
    description: str,
) -> TopicSpec:
    return TopicSpec(
        name=name,
        key=key,
        value_schemas=(value_schema,),
        partitions=KEYED_PARTITIONS,
        cleanup_policy=cleanup_policy,
        retention_ms=retention_ms,
        description=description,
    )


CATALOG: tuple[TopicSpec, ...] = (
    _raw(RAW_FOOTBALL_EVENTS, "provider event id", "Football provider event payloads"),
    _raw(RAW_FOOTBALL_ROUNDS, "provider round id", "Football provider round payloads"),
    _raw(RAW_MARKETS_MARKETS, "provider market id", "Prediction-market provider markets"),
    _raw(RAW_MARKETS_PRICES, "provider market id", "Prediction-market provider prices"),
    _raw(RAW_F1_RESULTS, "provider race id", "F1 provider race results"),
    _keyed(
        FIXTURES_MATCHES,
        "match_id",
        "MatchUpdated",
        "compact",
        FOREVER,
        "Match state per provider update: status, score, minute, period, provider version; "
        "compacted, so the latest state of every match is kept",
    ),
    _keyed(
        FIXTURES_RACES,
        "race_id",
        "RaceClassified",
        "compact",
        FOREVER,
        "Race classifications; a correction is a higher version",
    ),
    TopicSpec(
        name=FIXTURES_MARKETS,
        key="market_id",
        value_schemas=("MarketUpdated", "MarketResolved"),
        partitions=KEYED_PARTITIONS,
        cleanup_policy="delete",
        retention_ms=FOREVER,
        description="Prediction-market updates (prices) and resolutions; not compacted, so a "
        "late update never hides a resolution",
        subject_strategy="topic_record_name",
    ),
    _keyed(
        FIXTURES_PLAYER_STATS,
        "match_id",
        "PlayerStat",
        "delete",
        FOREVER,
        "Player statistic events for live fantasy scoring; co-partitioned with fixtures.matches",
    ),
    _keyed(
        ENTRIES_PREDICTIONS,
        "match_id",
        "PredictionPlaced",
        "delete",
        FOREVER,
        "Score guesses; keyed by match_id to be co-partitioned with fixtures.matches",
    ),
    _keyed(
        ENTRIES_BETS,
        "member_id",
        "BetPlaced",
        "delete",
        FOREVER,
        "Bets: singles, parlays and credits positions; keyed by member (docs/markets.md: a "
        "member's balance decides acceptance, so a member's bets must stay in order)",
    ),
    _keyed(
        ENTRIES_LINEUPS,
        "member_id",
        "LineupSet",
        "delete",
        FOREVER,
        "Fantasy lineups with their captain",
    ),
    _keyed(
        ENTRIES_REJECTED,
        "member_id",
        "EntryRejected",
        "delete",
        RAW_RETENTION_MS,
        "Entries the streams refused, with a reason code",
    ),
    TopicSpec(
        name=RULES,
        key="ruleset_id",
        value_schemas=("RuleSet",),
        partitions=1,
        cleanup_policy="compact",
        retention_ms=FOREVER,
        description="Rule sets, versioned per league or tournament; one partition so every "
        "worker reads all of them in order",
    ),
    _keyed(
        SCORES,
        "member_id",
        "ScoreAwarded",
        "delete",
        FOREVER,
        "Points awarded, with idempotency keys; output for downstream consumers",
    ),
    _keyed(
        SETTLEMENTS,
        "bet_id",
        "BetSettled",
        "delete",
        FOREVER,
        "Bet settlements; a resettlement is a new version, never an edit",
    ),
    _keyed(
        CREDITS_LEDGER,
        "member_id",
        "LedgerEntryPosted",
        "delete",
        FOREVER,
        "Credit balance changes (grant, stake, payout, refund, reversal), each key once",
    ),
    _keyed(
        LEADERBOARD_UPDATES,
        "board_id",
        "LeaderboardEntryChanged",
        # Not compacted: the key is the board, so compaction would keep one member per board.
        "delete",
        FOREVER,
        "A member's new absolute total and tiebreakers on a board",
    ),
    TopicSpec(
        name=NOTIFICATIONS,
        key="member_id",
        value_schemas=("ResultCorrected",),
        partitions=KEYED_PARTITIONS,
        cleanup_policy="delete",
        retention_ms=RAW_RETENTION_MS,
        description="Messages for members: corrected results and similar",
        subject_strategy="topic_record_name",
    ),
    _dlq("producers"),
    _dlq("streams"),
    _dlq("sinks"),
    TopicSpec(
        name=DLQ_REPLAYED,
        key="letter id: <dlq topic>/<partition>/<offset>",
        value_schemas=(),
        partitions=1,
        cleanup_policy="compact",
        retention_ms=FOREVER,
        description="The replay catalog: one JSON record per dead letter that `scoreline dlq "
        "replay --execute` re-published (where to, when), written in the same transaction "
        "as the re-published record, so a letter is replayed at most once",
    ),
    TopicSpec(
        name=PREDICTIONS_MATCH_STATE,
        key="match_id",
        value_schemas=(),
        partitions=KEYED_PARTITIONS,
        cleanup_policy="compact",
        retention_ms=FOREVER,
        description="Internal: the predictions worker's state per match (JSON), its changelog",
    ),
    TopicSpec(
        name=SETTLEMENT_STATE,
        key="bet:<bet_id> or progress:<partition>",
        value_schemas=(),
        partitions=KEYED_PARTITIONS,
        cleanup_policy="compact",
        retention_ms=FOREVER,
        description="Internal: the settlement processor's state per entries.bets partition "
        "(JSON): each judged bet once, and the partition's progress (market positions "
        "applied, a settlement under way); its changelog",
    ),
)

#: Groups of topics joined by key: each group must have one partition count.
CO_PARTITIONED: tuple[tuple[str, ...], ...] = (
    (FIXTURES_MATCHES, ENTRIES_PREDICTIONS, FIXTURES_PLAYER_STATS, PREDICTIONS_MATCH_STATE),
    (ENTRIES_BETS, CREDITS_LEDGER, SETTLEMENT_STATE),
)

_BY_NAME = {s.name: s for s in CATALOG}


def spec(name: str) -> TopicSpec:
    """The catalog entry of a topic (its logical name, without prefix)."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise UnknownTopicError(
            f"topic {name!r} is not in the catalog (schemas/catalog.py); "
            f"known: {', '.join(sorted(_BY_NAME))}"
        ) from None


def topic(name: str, prefix: str = "") -> str:
    """The physical name of a catalog topic: ``prefix + name``."""
    return prefix + spec(name).name


def topics_for_schema(schema_name: str) -> tuple[TopicSpec, ...]:
    """The topics whose values may be records of ``schema_name``."""
    return tuple(s for s in CATALOG if schema_name in s.value_schemas)
