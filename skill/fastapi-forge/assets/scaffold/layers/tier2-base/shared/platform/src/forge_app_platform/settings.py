"""Settings every service has; a service subclasses `ServiceSettings` for its own fields."""

from __future__ import annotations

import socket

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class DatabaseSettings(BaseSettings):
    """All that migrations need (the migrate job gets DATABASE_URL and nothing else)."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    database_url: str = "postgresql+asyncpg://postgres@localhost:5432/postgres"
    db_pool_size: int = Field(default=10, ge=1)


class ServiceSettings(DatabaseSettings):
    service_name: str
    # redis://..., amqp://... or kafka://host:port (the scaffold picked one broker).
    broker_url: str = "redis://localhost:6379/0"
    # Starts every stream, topic, queue and exchange name: systems, or test runs, sharing
    # one broker each see only their own events.
    broker_prefix: str = Field(default="", pattern=r"^[A-Za-z0-9._-]*$")
    # Stable per replica (the pod name): a restarted consumer first finishes its own
    # pending deliveries.
    consumer_name: str = Field(default_factory=socket.gethostname)
    consumer_batch_size: int = Field(default=10, ge=1, le=500)
    # Deliveries before an event is moved to the dead-letter topic.
    consumer_max_deliveries: int = Field(default=5, ge=1)
    # Redis Streams: a delivery unacknowledged this long belongs to a dead consumer.
    consumer_claim_idle_ms: int = Field(default=30_000, ge=100)
    outbox_poll_seconds: float = Field(default=0.5, gt=0)

    # User tokens: signed by user-service only (RS256), verified with its public keys.
    jwt_audience: str = "forge-api"
    jwt_issuer: str = "forge-api"
    jwt_leeway_seconds: int = Field(default=0, ge=0)
    log_level: str = "INFO"


class VerifyingSettings(ServiceSettings):
    """A service that verifies tokens with user-service's published keys."""

    # user-service's internal URL: http://user-service:8000/.well-known/jwks.json
    jwks_url: str = Field(pattern=r"^https?://")
    jwks_cache_seconds: float = Field(default=300, gt=0)
    # At most one refetch per this many seconds for a `kid` not in the cached set.
    jwks_refetch_seconds: float = Field(default=30, ge=0)
    jwks_timeout_seconds: float = Field(default=5, gt=0)
