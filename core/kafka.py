"""Kafka clients, made in one place so every role talks to the broker the same way."""

from __future__ import annotations

from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from core.settings import Settings
from core.stack import resolve_urls


def bootstrap_servers(settings: Settings) -> str:
    return resolve_urls(settings).kafka_bootstrap_servers


def is_embedded_broker(settings: Settings) -> bool:
    """True on the embedded broker, whose gaps (docs/broker.md) some settings contain."""
    return settings.kafka_bootstrap_servers is None


def admin_client(settings: Settings, **overrides: Any) -> AIOKafkaAdminClient:
    options: dict[str, Any] = {
        "bootstrap_servers": bootstrap_servers(settings),
        "request_timeout_ms": 15000,
        "client_id": "scoreline-admin",
    }
    options.update(overrides)
    return AIOKafkaAdminClient(**options)


def producer(settings: Settings, **overrides: Any) -> AIOKafkaProducer:
    """An idempotent producer (acks=all); pass transactional_id for transactions."""
    options: dict[str, Any] = {
        "bootstrap_servers": bootstrap_servers(settings),
        "enable_idempotence": True,
        "acks": "all",
        "linger_ms": 5,
    }
    options.update(overrides)
    return AIOKafkaProducer(**options)


def consumer(settings: Settings, *topics: str, **overrides: Any) -> AIOKafkaConsumer:
    """A read_committed consumer without auto-commit: callers own their offsets."""
    options: dict[str, Any] = {
        "bootstrap_servers": bootstrap_servers(settings),
        "isolation_level": "read_committed",
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
    }
    options.update(overrides)
    return AIOKafkaConsumer(*topics, **options)
