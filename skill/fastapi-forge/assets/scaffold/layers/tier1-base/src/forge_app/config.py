"""All configuration, from environment variables (or a `.env` file), validated at start-up.

Every field is listed in `.env.example`. Option-specific fields live next to the code that
uses them (`security.AuthSettings`, `db.session.DatabaseSettings`,
`services.run_slots.RunSlotSettings`) and are merged here.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from .db.session import DatabaseSettings
from .security import AuthSettings
from .services.run_slots import RunSlotSettings


# --8<-- [start:settings]
class Settings(AuthSettings, DatabaseSettings, RunSlotSettings, BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    app_name: str = "forge-app"
    environment: Literal["dev", "test", "prod"] = "dev"
    docs_enabled: bool = True
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # JSON lines for machines; False renders readable console logs for local work.
    log_json: bool = True

    # JSON list, e.g. CORS_ORIGINS='["https://app.example.com"]'. Empty: no CORS headers.
    cors_origins: list[str] = Field(default_factory=list)
    cors_allow_credentials: bool = False

    redis_url: str = "redis://localhost:6379/0"
    # Prefix of every Redis key this app writes, so several apps can share one Redis.
    redis_key_prefix: str = "forge_app:"
    # Connect and read timeout of every Redis call: a hung Redis costs a request this
    # long, then the caller gets 503 (or, for the rate limiter, the request passes).
    redis_timeout_seconds: float = Field(default=2.0, gt=0)

    # Per caller (token subject or API key), per client address when unauthenticated;
    # counted in Redis, so the limit holds across workers and replicas.
    rate_limit_requests: int = Field(default=60, ge=1)
    rate_limit_window_seconds: int = Field(default=60, ge=1)
    readiness_timeout_seconds: float = Field(default=2.0, gt=0)
    # Larger request bodies get 413 before they are read (a prompt is at most 50,000
    # characters).
    max_request_body_bytes: int = Field(default=1024 * 1024, ge=1024)

    # Lifetime of a ticket from POST /auth/tickets (single use: ?ticket= on SSE or WebSocket).
    ticket_ttl_seconds: int = Field(default=30, ge=1, le=300)
    ws_ping_interval_seconds: float = Field(default=20.0, gt=0)

    # Job queue (ARQ or Celery queue name; in-process: unused).
    queue_name: str = "forge_app:jobs"
    worker_concurrency: int = Field(default=10, ge=1)
    # A job worker that cannot reach Redis for this long exits (status 1) for its supervisor
    # to restart it; shorter outages it rides out, reconnecting (ARQ worker).
    worker_redis_outage_seconds: float = Field(default=300.0, gt=0)
    # On SIGTERM the ARQ worker takes no new job and lets running ones finish for up to
    # this long, then stops them (failed, "interrupted"); below the deploy's grace period.
    worker_shutdown_wait_seconds: int = Field(default=45, ge=0)
    # A running job renews its lease this often; one whose lease is older than
    # JOB_LEASE_SECONDS lost its worker (killed, OOM, node gone) and is failed as interrupted.
    job_heartbeat_seconds: float = Field(default=10.0, gt=0)
    job_lease_seconds: float = Field(default=60.0, gt=0)
    # How long POST /agents/run/async remembers an Idempotency-Key (per caller).
    idempotency_key_ttl_seconds: int = Field(default=86_400, ge=60)
    # How long DELETE /agents/jobs/{id} waits for a running job to stop before answering 202.
    cancel_wait_seconds: float = Field(default=2.0, ge=0)

    agent_runner: Literal["fake", "sdk"] = "fake"
    agent_model: str = "fake-model"
    # Models a request may choose (`model`) besides AGENT_MODEL, a JSON list: any other is
    # refused (422 model_not_allowed), so callers cannot pick a pricier model.
    agent_allowed_models: list[str] = Field(default_factory=list)
    agent_api_key: SecretStr | None = None
    agent_base_url: str | None = None
    agent_timeout_seconds: float = Field(default=300.0, gt=0)
    agent_max_turns: int = Field(default=15, ge=1)
    # Agent runs at once in one API process (POST /agents/run, SSE streams, WebSocket
    # sessions); more wait for a free slot. Jobs are bounded by WORKER_CONCURRENCY.
    agent_max_concurrent_runs: int = Field(default=16, ge=1)
    fake_agent_delay_seconds: float = Field(default=0.05, ge=0)
    fake_agent_fail: bool = False


@lru_cache
def get_settings() -> Settings:
    return Settings()
    # --8<-- [end:settings]
