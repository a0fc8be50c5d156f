from functools import lru_cache

from forge_app_platform.settings import ServiceSettings


class Settings(ServiceSettings):
    service_name: str = "user-service"


@lru_cache
def get_settings() -> Settings:
    return Settings()  # type: ignore[call-arg]  # JWT_SECRET comes from the environment
