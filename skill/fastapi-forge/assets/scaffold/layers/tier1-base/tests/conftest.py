"""Fixtures. Services come from the environment, as in production:

    REDIS_URL          default redis://127.0.0.1:6379/0
    TEST_DATABASE_URL  (PostgreSQL projects) default: DATABASE_URL's database + `_test`,
                       else postgresql+asyncpg://postgres@127.0.0.1:5432/forge_app_test;
                       created if missing; never the app's own database, since the tests
                       migrate theirs down and up
    MONGODB_URL        (MongoDB projects) default mongodb://127.0.0.1:27017

Every test gets its own Redis key prefix and queue name, so test runs (and other apps)
sharing one Redis do not see each other's keys.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol

import httpx
import pytest

from forge_app.config import Settings

from .helpers import TestSettings, app_client

# The option-specific fixtures: `auth_settings` and `credentials` for the auth scheme,
# `database_settings` for the database (which also marks MongoDB tests).
pytest_plugins = ["tests.auth_support", "tests.db_support"]

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")

SettingsFactory = Callable[..., Settings]


class Credentials(Protocol):
    def token(self, subject: str) -> str | None: ...

    def headers(self, subject: str) -> dict[str, str]: ...


# --8<-- [start:make-settings]
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
        return TestSettings(**values)

    return factory
    # --8<-- [end:make-settings]


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


@pytest.fixture
def other_caller_headers(credentials: Credentials) -> dict[str, str]:
    return credentials.headers("mallory")
