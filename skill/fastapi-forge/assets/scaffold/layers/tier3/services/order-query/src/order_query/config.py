from functools import lru_cache

from pydantic import Field, SecretStr

from forge_app_platform.settings import VerifyingSettings


class Settings(VerifyingSettings):
    service_name: str = "order-query"
    # The order-command relay process, which serves the event log (GET /events).
    event_feed_url: str = "http://order-relay:8000"
    rebuild_page_size: int = Field(default=500, ge=1, le=1000)
    # The rebuild's own credentials for user-service's client-credentials grant (its
    # service token for GET /events); only the rebuild job needs them.
    token_url: str = "http://user-service:8000/oauth/token"  # noqa: S105 - a URL
    service_client_secret: SecretStr | None = None


@lru_cache
def get_settings() -> Settings:
    return Settings()  # type: ignore[call-arg]  # JWKS_URL comes from the environment
