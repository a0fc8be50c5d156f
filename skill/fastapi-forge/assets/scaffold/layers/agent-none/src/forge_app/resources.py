"""Everything a process opens once and shares: Redis and the database."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from redis.asyncio import Redis

from .config import Settings
from .db.session import Database, open_database
from .principal import Authenticator
from .security import build_authenticator


@dataclass(slots=True)
class Resources:
    settings: Settings
    redis: Redis
    database: Database | None
    authenticator: Authenticator


def open_redis(settings: Settings) -> Redis:
    return Redis.from_url(
        settings.redis_url,
        decode_responses=True,
        socket_connect_timeout=settings.redis_timeout_seconds,
        socket_timeout=settings.redis_timeout_seconds,
        health_check_interval=30,
    )


@asynccontextmanager
async def open_resources(
    settings: Settings, authenticator: Authenticator | None = None
) -> AsyncIterator[Resources]:
    redis = open_redis(settings)
    database = await open_database(settings)
    try:
        yield Resources(
            settings=settings,
            redis=redis,
            database=database,
            authenticator=authenticator or build_authenticator(settings),
        )
    finally:
        if database is not None:
            await database.close()
        await redis.aclose()
