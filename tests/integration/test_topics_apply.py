"""`topics apply`: creates what is missing, is idempotent, and reports drift."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from core.topics import apply_topics, partition_counts
from schemas.catalog import CATALOG, FIXTURES_MATCHES, spec
from tests.conftest import Services


@pytest.fixture
async def admin(services: Services) -> AsyncIterator[AIOKafkaAdminClient]:
    client = AIOKafkaAdminClient(bootstrap_servers=services.kafka, request_timeout_ms=15000)
    await client.start()
    yield client
    await client.close()


async def test_apply_creates_every_catalog_topic_once(
    admin: AIOKafkaAdminClient, topic_prefix: str
) -> None:
    dry = await apply_topics(admin, prefix=topic_prefix, dry_run=True)
    assert {r.action for r in dry} == {"would create"}
    assert not [t for t in await admin.list_topics() if t.startswith(topic_prefix)], (
        "a dry run creates nothing"
    )

    first = await apply_topics(admin, prefix=topic_prefix)
    assert sorted(r.topic for r in first) == sorted(topic_prefix + s.name for s in CATALOG)
    assert {r.action for r in first} == {"created"}
    counts = await partition_counts(admin)
    for topic_spec in CATALOG:
        assert counts[topic_prefix + topic_spec.name] == topic_spec.partitions

    second = await apply_topics(admin, prefix=topic_prefix)
    assert {r.action for r in second} == {"ok"}


async def test_apply_reports_a_topic_with_fewer_partitions_as_drift(
    admin: AIOKafkaAdminClient, topic_prefix: str
) -> None:
    matches = topic_prefix + FIXTURES_MATCHES
    await admin.create_topics([NewTopic(matches, num_partitions=1, replication_factor=1)])

    reports = {r.topic: r for r in await apply_topics(admin, prefix=topic_prefix)}

    drift = reports[matches]
    assert drift.action == "drift"
    assert drift.partitions_actual == 1
    assert drift.partitions_expected == spec(FIXTURES_MATCHES).partitions
    assert "fewer" in drift.detail or "has 1 partitions" in drift.detail
    others = [r for name, r in reports.items() if name != matches]
    assert {r.action for r in others} == {"created"}
