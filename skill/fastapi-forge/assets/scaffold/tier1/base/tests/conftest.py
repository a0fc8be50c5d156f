"""Fixtures. Services come from the environment, as in production:

    REDIS_URL     default redis://127.0.0.1:6379/0
    DATABASE_URL  (PostgreSQL projects) default postgresql+asyncpg://postgres@127.0.0.1:5432/forge_app_test
    MONGODB_URL   (MongoDB projects)    default mongodb://127.0.0.1:27017

Every test gets its own Redis key prefix and queue name, so test runs (and other apps)
sharing one Redis do not see each other's keys.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from forge_app.config import Settings

from .auth_support import Credentials, auth_settings, credentials
from .db_support import DATABASE_KIND, database_settings
from .helpers import app_client

__all__ = ["auth_settings", "credentials", "database_settings"]

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")

SettingsFactory = Callable[..., Settings]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Lets a machine without a MongoDB server deselect those tests: -m "not mongodb".
    if DATABASE_KIND == "mongodb":
        for item in items:
            if item.get_closest_marker("uses_database"):
                item.add_marker(pytest.mark.mongodb)


@pytest.fixture
def make_settings(
    auth_settings: dict[str, Any], database_settings: dict[str, Any]
) -> SettingsFactory:
    unique = uuid.uuid4().hex[:12]

    def factory(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "environment": "test",
            "redis_url": REDIS_URL,
            "redis_key_prefix": f"test-{unique}:",
            "queue_name": f"test-{unique}:jobs",
            "agent_runner": "fake",
            "fake_agent_delay_seconds": 0.0,
            "rate_limit_requests": 10_000,
            **auth_settings,
            **database_settings,
        }
        values.update(overrides)
        return Settings(**values)

    return factory


@pytest.fixture
def settings(make_settings: SettingsFactory) -> Settings:
    return make_settings()


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(settings) as client:
        yield client


@pytest.fixture
def headers(credentials: Credentials) -> dict[str, str]:
    return credentials.headers("alice")
