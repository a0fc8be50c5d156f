from functools import lru_cache

from pydantic import Field

from forge_app_platform.settings import ServiceSettings


class Settings(ServiceSettings):
    service_name: str = "order-query"
    # The order-command relay process, which serves the event log (GET /events).
    event_feed_url: str = "http://order-relay:8000"
    rebuild_page_size: int = Field(default=500, ge=1, le=1000)


@lru_cache
def get_settings() -> Settings:
    return Settings()  # type: ignore[call-arg]  # JWT_SECRET comes from the environment
