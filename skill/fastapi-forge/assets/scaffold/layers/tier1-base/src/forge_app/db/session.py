"""No separate database: the jobs live in Redis (REDIS_URL), which the app needs anyway
for rate limiting and the queue. Use `--db postgres` for durable, queryable history."""

from __future__ import annotations

from typing import Protocol

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

# Errors meaning "the database is down" (answered 503, not 500); Redis's are always added.
UNAVAILABLE_ERRORS: tuple[type[Exception], ...] = ()


class DatabaseSettings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    # Seconds a job record is kept after its last change; 0 keeps it until deleted.
    job_ttl_seconds: int = Field(default=0, ge=0)


class Database(Protocol):
    """What a separate database offers the app; this variant has none."""

    async def ping(self) -> None: ...

    async def close(self) -> None: ...


async def open_database(settings: DatabaseSettings) -> Database | None:
    return None
