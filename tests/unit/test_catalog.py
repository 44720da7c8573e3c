"""The topic catalog: complete, consistent with the schemas, co-partitioned where joined."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

from core.exceptions import ConfigurationError
from schemas import catalog
from schemas.catalog import CATALOG, CO_PARTITIONED, UnknownTopicError, spec, topic
from schemas.loader import schema_names

pytestmark = pytest.mark.unit

DESIGN_TOPICS = {
    "credits.ledger",
    "dlq.replayed",
    "raw.football.events",
    "raw.football.rounds",
    "raw.markets.markets",
    "raw.markets.prices",
    "raw.f1.results",
    "fixtures.matches",
    "fixtures.races",
    "fixtures.markets",
    "fixtures.player-stats",
    "entries.predictions",
    "entries.bets",
    "entries.lineups",
    "entries.rejected",
    "rules",
    "scores",
    "settlements",
    "leaderboard.updates",
    "notifications",
    "dlq.producers",
    "dlq.streams",
    "dlq.sinks",
    # internal state of the workers (changelogs)
    "streams.predictions.match-state",
    "streams.settlement.state",
}
DESIGN = Path("/work/shared/DESIGN.md")


def test_every_design_topic_is_in_the_catalog() -> None:
    assert {s.name for s in CATALOG} == DESIGN_TOPICS


def test_the_design_table_topics_are_in_the_catalog() -> None:
    if not DESIGN.is_file():
        pytest.skip(f"{DESIGN} is not available here")
    table = re.findall(r"^\| `([^`]+)` \|", DESIGN.read_text(encoding="utf-8"), re.MULTILINE)
    names = {s.name for s in CATALOG}
    for name in table:
        if "<" in name:  # raw.<provider>.<feed>, dlq.<consumer>
            prefix = name.split("<", 1)[0]
            assert any(n.startswith(prefix) for n in names), name
        else:
            assert name in names, name


def test_names_are_unique_and_have_constants() -> None:
    counts = Counter(s.name for s in CATALOG)
    assert [n for n, c in counts.items() if c > 1] == []
    constants = {v for k, v in vars(catalog).items() if k.isupper() and isinstance(v, str)}
    assert counts.keys() <= constants


def test_every_value_schema_exists_as_an_avsc() -> None:
    known = set(schema_names())
    for s in CATALOG:
        assert set(s.value_schemas) <= known, s.name


def test_every_schema_but_the_dead_letter_headers_is_the_value_of_exactly_one_topic() -> None:
    owners = Counter(name for s in CATALOG for name in s.value_schemas)
    assert set(schema_names()) - set(owners) == {"DeadLetter"}
    assert [n for n, c in owners.items() if c > 1] == []


def test_raw_and_dlq_topics_carry_bytes() -> None:
    for s in CATALOG:
        if s.name.startswith(("raw.", "dlq.")):
            assert s.value_schemas == (), s.name


@pytest.mark.parametrize("group", CO_PARTITIONED)
def test_co_partitioned_topics_have_equal_partitions(group: tuple[str, ...]) -> None:
    assert len({spec(name).partitions for name in group}) == 1, group


def test_predictions_are_keyed_like_matches() -> None:
    assert spec(catalog.ENTRIES_PREDICTIONS).key == spec(catalog.FIXTURES_MATCHES).key
    assert spec(catalog.FIXTURES_PLAYER_STATS).key == spec(catalog.FIXTURES_MATCHES).key


def test_policies() -> None:
    assert spec(catalog.RULES).partitions == 1
    for name in (catalog.FIXTURES_MATCHES, catalog.RULES):
        assert "compact" in spec(name).cleanup_policy
    # Keyed by board: compaction would keep one member per board.
    assert "compact" not in spec(catalog.LEADERBOARD_UPDATES).cleanup_policy
    for s in CATALOG:
        assert s.partitions >= 1
        assert s.retention_ms is None or s.retention_ms == -1 or s.retention_ms > 0
        if s.name.startswith("raw."):
            assert s.retention_ms is not None and s.retention_ms >= 90 * catalog.DAY_MS


def test_topic_applies_the_prefix_and_refuses_unknown_names() -> None:
    assert topic(catalog.SCORES) == "scores"
    assert topic(catalog.SCORES, prefix="t-1234.") == "t-1234.scores"
    with pytest.raises(UnknownTopicError, match="'score' is not in the catalog"):
        topic("score")
    with pytest.raises(KeyError):
        spec("nope")
    with pytest.raises(ConfigurationError):
        spec("nope")


def test_value_subjects() -> None:
    assert spec(catalog.SCORES).value_subject("scoreline.v1.ScoreAwarded") == "scores-value"
    markets = spec(catalog.FIXTURES_MARKETS)
    assert markets.value_subject("scoreline.v1.MarketResolved", prefix="p.") == (
        "p.fixtures.markets-scoreline.v1.MarketResolved"
    )


def test_a_multi_schema_topic_needs_the_record_subject_strategy() -> None:
    with pytest.raises(ValueError, match="topic_record_name"):
        catalog.TopicSpec("x", "id", ("A", "B"), 1, "delete", None, "two record types")
