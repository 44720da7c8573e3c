"""The one settings object, read from the environment.

Every URL left unset means "use the embedded default": ``scoreline stack up`` starts (or
finds) the service and records where it answers in ``.scoreline/stack.json``.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


def mask_url(url: str) -> str:
    """The URL with its password replaced by ``***`` (safe to log and to print)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    netloc = f"{user}:***@{host}"
    if parts.port is not None:
        netloc = f"{netloc}:{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


class Settings(BaseSettings):
    """Configuration shared by every role. Environment names are the field names in capitals."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore")

    # -- where the services are (None: the embedded default) --------------------------
    kafka_bootstrap_servers: str | None = Field(
        default=None, validation_alias=AliasChoices("KAFKA_BOOTSTRAP_SERVERS")
    )
    schema_registry_url: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("SCHEMA_REGISTRY_URL")
    )
    database_url: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("DATABASE_URL")
    )
    redis_url: SecretStr | None = Field(default=None, validation_alias=AliasChoices("REDIS_URL"))

    # -- the embedded stack ------------------------------------------------------------
    home: Path = Field(default=Path(".scoreline"), validation_alias=AliasChoices("SCORELINE_HOME"))
    kafka_port: int = Field(default=19092, validation_alias=AliasChoices("SCORELINE_KAFKA_PORT"))
    postgres_port: int = Field(
        default=5432, validation_alias=AliasChoices("SCORELINE_POSTGRES_PORT")
    )
    redis_port: int = Field(default=6379, validation_alias=AliasChoices("SCORELINE_REDIS_PORT"))
    database_name: str = Field(
        default="scoreline", validation_alias=AliasChoices("SCORELINE_DATABASE_NAME")
    )
    startup_timeout_s: float = Field(
        default=30.0, validation_alias=AliasChoices("SCORELINE_STARTUP_TIMEOUT_S")
    )
    connect_timeout_s: float = Field(
        default=3.0, validation_alias=AliasChoices("SCORELINE_CONNECT_TIMEOUT_S")
    )

    # -- topics and clients ------------------------------------------------------------
    topic_prefix: str = Field(default="", validation_alias=AliasChoices("SCORELINE_TOPIC_PREFIX"))
    idle_fetch_backoff_ms: int | None = Field(
        default=None, validation_alias=AliasChoices("SCORELINE_IDLE_FETCH_BACKOFF_MS")
    )
    #: Compression of every record batch Scoreline produces ("none" to turn it off). The
    #: embedded broker walks every record of an uncompressed batch and keeps a compressed
    #: one whole (5.5 -> 1.2 CPU-s per 200,000-guess match); the clients pay no more.
    #: Apache Kafka keeps batches as produced too. docs/broker.md, gap g.
    kafka_compression: Literal["lz4", "zstd", "snappy", "gzip", "none"] = Field(
        default="zstd", validation_alias=AliasChoices("SCORELINE_KAFKA_COMPRESSION")
    )
    worker_id: str = Field(default="worker-0", validation_alias=AliasChoices("SCORELINE_WORKER_ID"))
    redis_prefix: str = Field(
        default="scoreline:", validation_alias=AliasChoices("SCORELINE_REDIS_PREFIX")
    )
    #: Extra Avro writer schemas (``*.avsc``) the codec accepts: newer or older versions
    #: of the shipped records, so values written with them decode (docs/operations.md, "dlq").
    writer_schemas_dir: Path | None = Field(
        default=None, validation_alias=AliasChoices("SCORELINE_WRITER_SCHEMAS_DIR")
    )

    # -- the football provider and the season the pollers follow -----------------------
    provider_url: str = Field(
        default="http://127.0.0.1:8765", validation_alias=AliasChoices("PROVIDER_URL")
    )
    tournament_id: str = Field(
        default="17", validation_alias=AliasChoices("SCORELINE_TOURNAMENT_ID")
    )
    season_id: str = Field(default="2026", validation_alias=AliasChoices("SCORELINE_SEASON_ID"))
    live_interval_s: float = Field(
        default=5.0, validation_alias=AliasChoices("SCORELINE_LIVE_INTERVAL_S")
    )
    round_interval_s: float = Field(
        default=60.0, validation_alias=AliasChoices("SCORELINE_ROUND_INTERVAL_S")
    )

    # -- the prediction-market provider the market poller follows (docs/providers.md) --
    #: None: the football provider's URL (the replay provider serves both).
    markets_provider_url: str | None = Field(
        default=None, validation_alias=AliasChoices("MARKETS_PROVIDER_URL")
    )
    markets_interval_s: float = Field(
        default=300.0, validation_alias=AliasChoices("SCORELINE_MARKETS_INTERVAL_S")
    )
    market_prices_interval_s: float = Field(
        default=30.0, validation_alias=AliasChoices("SCORELINE_MARKET_PRICES_INTERVAL_S")
    )
    market_resolutions_interval_s: float = Field(
        default=60.0, validation_alias=AliasChoices("SCORELINE_MARKET_RESOLUTIONS_INTERVAL_S")
    )

    # -- logging and the API -----------------------------------------------------------
    log_level: str = Field(default="INFO", validation_alias=AliasChoices("SCORELINE_LOG_LEVEL"))
    log_format: Literal["console", "json"] = Field(
        default="console", validation_alias=AliasChoices("SCORELINE_LOG_FORMAT")
    )
    api_host: str = Field(default="127.0.0.1", validation_alias=AliasChoices("API_HOST"))
    api_port: int = Field(default=8000, validation_alias=AliasChoices("API_PORT"))
    metrics_port: int = Field(default=9100, validation_alias=AliasChoices("SCORELINE_METRICS_PORT"))

    @property
    def stack_file(self) -> Path:
        return self.home / "stack.json"


#: Environment names the settings read. docker-compose.kafka.yml may only use these.
ENVIRONMENT_NAMES: frozenset[str] = frozenset(
    str(alias)
    for field in Settings.model_fields.values()
    if isinstance(field.validation_alias, AliasChoices)
    for alias in field.validation_alias.choices
)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
