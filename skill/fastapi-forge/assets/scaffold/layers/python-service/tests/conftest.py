"""Tests run against a real PostgreSQL database and broker: DATABASE_URL (an empty
database of this package's own; migrated here), BROKER_URL and JWT_SECRET from the
environment. Every name on the broker starts with this run's own prefix, so the tests of
the other packages, or another run, sharing the broker never see this run's events."""

import os
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest
from alembic import command
from alembic.config import Config
from fastapi import FastAPI

from forge_service.config import Settings
from forge_service.main import create_app

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def settings() -> Settings:
    missing = [k for k in ("DATABASE_URL", "BROKER_URL", "JWT_SECRET") if not os.environ.get(k)]
    if missing:
        pytest.fail(f"set {', '.join(missing)} (a throwaway database and broker)")
    command.upgrade(Config(str(ROOT / "alembic.ini")), "head")
    run = f"test-{uuid.uuid4().hex[:8]}"
    return Settings(  # type: ignore[call-arg]
        broker_prefix=f"{run}.",
        consumer_name=run,
        # Fast retries: a failed event is claimed again, then dead-lettered, in about a second.
        consumer_max_deliveries=3,
        consumer_claim_idle_ms=200,
        outbox_poll_seconds=0.05,
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
