"""``scoreline topics apply``: create what the catalog has and the broker lacks; report drift."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from core.kafka import admin_client
from core.logging import get_logger
from core.settings import Settings
from schemas.catalog import CATALOG, TopicSpec

log = get_logger("topics")

Action = Literal["created", "would create", "ok", "drift"]


@dataclass(frozen=True, slots=True)
class TopicReport:
    """One line of ``scoreline topics apply``."""

    topic: str
    action: Action
    partitions_expected: int
    partitions_actual: int | None
    detail: str = ""


def topic_configs(spec: TopicSpec) -> dict[str, str]:
    configs: dict[str, str] = {"cleanup.policy": spec.cleanup_policy}
    if spec.retention_ms is not None:
        configs["retention.ms"] = str(spec.retention_ms)
    return configs


def drift_of(spec: TopicSpec, actual_partitions: int) -> str:
    """What differs between the catalog and the broker ('' when nothing does)."""
    if actual_partitions < spec.partitions:
        return (
            f"has {actual_partitions} partitions, the catalog says {spec.partitions}: "
            "keys co-partitioned with it would land on other partitions; "
            "recreate the topic or raise its partitions before any data is keyed"
        )
    if actual_partitions > spec.partitions:
        return (
            f"has {actual_partitions} partitions, the catalog says {spec.partitions}: "
            "co-partitioned topics no longer line up; fix the catalog or the topic"
        )
    return ""


async def partition_counts(admin: AIOKafkaAdminClient) -> dict[str, int]:
    """Partitions per existing topic, from cluster metadata."""
    metadata = await admin.describe_topics()
    counts: dict[str, int] = {}
    for topic in metadata:
        if topic.get("error_code", 0) == 0:
            counts[str(topic["topic"])] = len(topic["partitions"])
    return counts


async def apply_topics(
    admin: AIOKafkaAdminClient,
    *,
    prefix: str = "",
    dry_run: bool = False,
    catalog: tuple[TopicSpec, ...] = CATALOG,
) -> list[TopicReport]:
    """Create missing topics (unless dry_run); report existing ones and their drift."""
    existing = await partition_counts(admin)
    reports: list[TopicReport] = []
    missing: list[TopicSpec] = []
    for spec in catalog:
        name = prefix + spec.name
        if name in existing:
            drift = drift_of(spec, existing[name])
            action: Action = "drift" if drift else "ok"
            reports.append(TopicReport(name, action, spec.partitions, existing[name], drift))
        else:
            missing.append(spec)
    if missing and not dry_run:
        new_topics = [
            NewTopic(
                name=prefix + spec.name,
                num_partitions=spec.partitions,
                replication_factor=_replication_factor(admin),
                topic_configs=topic_configs(spec),
            )
            for spec in missing
        ]
        try:
            await admin.create_topics(new_topics)
        except TopicAlreadyExistsError:
            log.info("topics.raced", operation="create", detail="created concurrently")
    for spec in missing:
        action = "would create" if dry_run else "created"
        reports.append(TopicReport(prefix + spec.name, action, spec.partitions, None))
        log.info("topics.apply", operation=action, topic=prefix + spec.name)
    return sorted(reports, key=lambda report: report.topic)


def _replication_factor(admin: AIOKafkaAdminClient) -> int:
    """3 where the cluster has three brokers or more, else one per broker."""
    client = getattr(admin, "_client", None)
    brokers = client.cluster.brokers() if client is not None else set()
    return max(1, min(3, len(brokers)))


async def apply_catalog(
    settings: Settings, *, prefix: str | None = None, dry_run: bool = False
) -> list[TopicReport]:
    """:func:`apply_topics` with an admin client made from the settings."""
    admin = admin_client(settings)
    await admin.start()
    try:
        chosen = settings.topic_prefix if prefix is None else prefix
        return await apply_topics(admin, prefix=chosen, dry_run=dry_run)
    finally:
        await admin.close()


def drifted(reports: list[TopicReport]) -> list[str]:
    return [report.topic for report in reports if report.action == "drift"]
