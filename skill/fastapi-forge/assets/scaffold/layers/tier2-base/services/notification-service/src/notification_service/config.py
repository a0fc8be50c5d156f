from functools import lru_cache

from pydantic import Field

from forge_app_platform.settings import VerifyingSettings


class Settings(VerifyingSettings):
    service_name: str = "notification-service"
    # Time one delivery takes (an e-mail or push call); 0 in production, where the call
    # itself takes the time. Tests use it to kill the consumer mid-batch.
    notify_send_delay_seconds: float = Field(default=0.0, ge=0)


@lru_cache
def get_settings() -> Settings:
    return Settings()  # type: ignore[call-arg]  # JWKS_URL comes from the environment
