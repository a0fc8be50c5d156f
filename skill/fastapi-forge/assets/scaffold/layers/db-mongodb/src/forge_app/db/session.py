"""MongoDB through PyMongo's native async client (`pymongo.AsyncMongoClient`).

The client connects lazily, so the API starts while MongoDB is down and reports it on
/health/ready; MONGODB_TIMEOUT_MS bounds how long an operation waits for a server.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import ConnectionFailure

# Errors meaning "the database is down" (answered 503, not 500).
UNAVAILABLE_ERRORS: tuple[type[Exception], ...] = (ConnectionFailure,)


class DatabaseSettings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    mongodb_url: str = "mongodb://localhost:27017"
    mongodb_database: str = "forge_app"
    mongodb_timeout_ms: int = Field(default=2000, ge=1)


class Database:
    def __init__(self, settings: DatabaseSettings) -> None:
        self.client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
            settings.mongodb_url,
            tz_aware=True,
            serverSelectionTimeoutMS=settings.mongodb_timeout_ms,
            connectTimeoutMS=settings.mongodb_timeout_ms,
        )
        self.db: AsyncDatabase[dict[str, Any]] = self.client[settings.mongodb_database]

    async def ping(self) -> None:
        await self.client.admin.command("ping")

    async def close(self) -> None:
        await self.client.close()


async def open_database(settings: DatabaseSettings) -> Database:
    return Database(settings)
