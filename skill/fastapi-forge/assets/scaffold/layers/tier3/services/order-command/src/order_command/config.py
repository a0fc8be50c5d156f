from functools import lru_cache

from pydantic import Field

from forge_app_platform.settings import VerifyingSettings


class Settings(VerifyingSettings):
    service_name: str = "order-command"
    # The relay process: how often the outbox gauge is refreshed and how long published
    # rows are kept (for inspection) before they are deleted.
    outbox_watch_seconds: float = Field(default=5.0, gt=0)
    outbox_retention_hours: float = Field(default=24.0, ge=0)
    event_feed_max_page: int = Field(default=1000, ge=1)
    # Services whose tokens may read the event log (GET /events on the relay); users never.
    event_feed_readers: list[str] = Field(default_factory=lambda: ["order-query"])
    # How long a replayed `Idempotency-Key` of POST /orders answers with its first response;
    # the relay deletes older keys (a retry after that creates a new order).
    idempotency_key_retention_hours: float = Field(default=24.0, gt=0)


@lru_cache
def get_settings() -> Settings:
    return Settings()  # type: ignore[call-arg]  # JWKS_URL comes from the environment
