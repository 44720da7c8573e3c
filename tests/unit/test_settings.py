"""Settings: environment names, embedded defaults, masked URLs."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.settings import ENVIRONMENT_NAMES, Settings, mask_url
from core.stack import resolve_urls


def test_mask_url_hides_only_the_password() -> None:
    assert (
        mask_url("postgresql://app:s3cret@db.example:5432/scoreline")
        == "postgresql://app:***@db.example:5432/scoreline"
    )
    assert mask_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"


def test_unset_urls_mean_the_embedded_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENVIRONMENT_NAMES:
        monkeypatch.delenv(name, raising=False)
    urls = resolve_urls(Settings())
    assert urls.kafka_bootstrap_servers == "127.0.0.1:19092"
    assert urls.database_url == "postgresql://postgres@127.0.0.1:5432/scoreline"
    assert urls.redis_url == "redis://127.0.0.1:6379/0"
    assert urls.schema_registry_url is None


def test_urls_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "kafka:9092")
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:p@db/x")
    monkeypatch.setenv("REDIS_URL", "redis://cache:6379/1")
    monkeypatch.setenv("SCHEMA_REGISTRY_URL", "http://registry:8081")
    settings = Settings()
    urls = resolve_urls(settings)
    assert urls.kafka_bootstrap_servers == "kafka:9092"
    assert urls.database_url == "postgresql://u:p@db/x"
    assert urls.redis_url == "redis://cache:6379/1"
    assert urls.schema_registry_url == "http://registry:8081"
    assert "p@db" not in repr(settings), "secrets never show in a repr"


def test_environment_names_cover_the_contract() -> None:
    assert {
        "KAFKA_BOOTSTRAP_SERVERS",
        "SCHEMA_REGISTRY_URL",
        "DATABASE_URL",
        "REDIS_URL",
    } <= ENVIRONMENT_NAMES


def test_only_the_documented_names_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """A field's own name (HOME, LOG_LEVEL...) is not an environment name of ours."""
    for name in ENVIRONMENT_NAMES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", "/somewhere/else")
    monkeypatch.setenv("LOG_LEVEL", "DEBUG")
    settings = Settings()
    assert str(settings.home) == ".scoreline"
    assert settings.log_level == "INFO"


async def test_every_producer_compresses_with_the_setting(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from core.kafka import compression_type, producer
    from streams.app import create_app

    for name in ENVIRONMENT_NAMES:
        monkeypatch.delenv(name, raising=False)
    default = Settings(kafka_bootstrap_servers="127.0.0.1:1", home=tmp_path)
    assert default.kafka_compression == "zstd"
    assert compression_type(default) == "zstd"
    built = producer(default)  # built, never started
    assert built._compression_type == "zstd"
    await built.stop()
    assert create_app(default).conf.producer_compression_type == "zstd"

    monkeypatch.setenv("SCORELINE_KAFKA_COMPRESSION", "none")
    off = Settings(kafka_bootstrap_servers="127.0.0.1:1", home=tmp_path)
    assert compression_type(off) is None
    built = producer(off)
    assert built._compression_type is None
    await built.stop()
    assert create_app(off).conf.producer_compression_type is None

    monkeypatch.setenv("SCORELINE_KAFKA_COMPRESSION", "brotli")
    with pytest.raises(ValueError, match="SCORELINE_KAFKA_COMPRESSION"):
        Settings()
