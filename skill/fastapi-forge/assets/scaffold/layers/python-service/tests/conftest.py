"""Tests run against a real PostgreSQL database and broker: DATABASE_URL (an empty
database of this package's own; migrated here) and BROKER_URL from the environment. Tokens
are signed with a key of this run's own, published on a loopback JWKS URL. Every name on
the broker starts with this run's own prefix, so the tests of the other packages, or
another run, sharing the broker never see this run's events."""

import json
import os
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from alembic import command
from alembic.config import Config
from cryptography.hazmat.primitives import serialization
from fastapi import FastAPI

from forge_app_platform.auth import SERVICE_USE
from forge_app_platform.keys import new_private_key_pem, public_jwk

from forge_service.config import Settings
from forge_service.main import create_app

ROOT = Path(__file__).resolve().parent.parent


class TestKey:
    """The run's signing key: user-service signs with it (JWT_PRIVATE_KEY_FILE), the other
    services fetch its public half from JWKS_URL, as they do from user-service."""

    def __init__(self, path: Path) -> None:
        self.pem = new_private_key_pem()
        path.write_bytes(self.pem)
        self.path = path
        self.private = serialization.load_pem_private_key(self.pem, password=None)
        self.jwk = public_jwk(self.private.public_key())  # type: ignore[union-attr]

    def sign(self, subject: str, audience: str, issuer: str, **extra: Any) -> str:
        now = datetime.now(UTC)
        claims = {"sub": subject, "aud": audience, "iss": issuer, "iat": now}
        claims |= {"exp": now + timedelta(minutes=5), **extra}
        return jwt.encode(claims, self.private, "RS256", headers={"kid": self.jwk["kid"]})  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def test_key(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestKey]:
    key = TestKey(tmp_path_factory.mktemp("keys") / "jwt-private.pem")
    body = json.dumps({"keys": [key.jwk]}).encode()

    class Jwks(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Jwks)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    os.environ["JWT_PRIVATE_KEY_FILE"] = str(key.path)
    os.environ["JWKS_URL"] = f"http://127.0.0.1:{server.server_port}/.well-known/jwks.json"
    yield key
    server.shutdown()


@pytest.fixture(scope="session")
def settings(test_key: TestKey) -> Settings:
    missing = [k for k in ("DATABASE_URL", "BROKER_URL") if not os.environ.get(k)]
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
def auth(settings: Settings, test_key: TestKey) -> Callable[[str], dict[str, str]]:
    """A user's token for `subject`."""

    def headers(subject: str) -> dict[str, str]:
        token = test_key.sign(subject, settings.jwt_audience, settings.jwt_issuer)
        return {"authorization": f"Bearer {token}"}

    return headers


@pytest.fixture
def service_auth(settings: Settings, test_key: TestKey) -> Callable[[str], dict[str, str]]:
    """A service token of client `client_id` addressed to this service (what user-service's
    client-credentials grant issues)."""

    def headers(client_id: str) -> dict[str, str]:
        token = test_key.sign(
            client_id, settings.service_name, settings.jwt_issuer, token_use=SERVICE_USE
        )
        return {"authorization": f"Bearer {token}"}

    return headers
