"""Stateless: no database. Job records live in Redis (REDIS_URL, needed anyway for rate
limiting and the queue) and expire after JOB_TTL_SECONDS, so nothing accumulates.
Use `--db postgres` when job history must be kept and queried."""

from __future__ import annotations

from typing import Protocol

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

UNAVAILABLE_ERRORS: tuple[type[Exception], ...] = ()


class DatabaseSettings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    job_ttl_seconds: int = Field(default=86_400, ge=1)


class Database(Protocol):
    async def ping(self) -> None: ...

    async def close(self) -> None: ...


async def open_database(settings: DatabaseSettings) -> Database | None:
    return None
