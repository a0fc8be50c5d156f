"""Tests run against a real PostgreSQL database and broker: DATABASE_URL (an empty
database; migrated here), BROKER_URL and JWT_SECRET from the environment."""

import os
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest
from alembic import command
from alembic.config import Config
from fastapi import FastAPI

from order_query.config import Settings
from order_query.main import create_app

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def settings() -> Settings:
    missing = [k for k in ("DATABASE_URL", "BROKER_URL", "JWT_SECRET") if not os.environ.get(k)]
    if missing:
        pytest.fail(f"set {', '.join(missing)} (a throwaway database and broker)")
    command.upgrade(Config(str(ROOT / "alembic.ini")), "head")
    return Settings(  # type: ignore[call-arg]
        consumer_name=f"test-{uuid.uuid4().hex[:6]}", consumer_claim_idle_ms=200
    )


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


@pytest.fixture
def auth(app: FastAPI) -> Callable[[str], dict[str, str]]:
    def headers(subject: str) -> dict[str, str]:
        token, _ = app.state.runtime.tokens.issue(subject)
        return {"authorization": f"Bearer {token}"}

    return headers
