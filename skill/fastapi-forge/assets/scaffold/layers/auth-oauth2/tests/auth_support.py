"""A fake identity provider on loopback: OIDC discovery and a JWKS, served over real HTTP,
so the app's real PyJWKClient code fetches and caches the keys."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

AUDIENCE = "forge-app"
KEY_ID = "test-key-1"


class IdentityProvider:
    def __init__(self) -> None:
        self.private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.private_key.public_key()))
        self.jwks = {"keys": [{**jwk, "kid": KEY_ID, "use": "sig", "alg": "RS256"}]}
        self.jwks_fetches = 0
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/.well-known/openid-configuration":
                    body = {"issuer": provider.issuer, "jwks_uri": f"{provider.issuer}/jwks"}
                elif self.path == "/jwks":
                    provider.jwks_fetches += 1
                    body = provider.jwks
                else:
                    self.send_error(404)
                    return
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.issuer = f"http://127.0.0.1:{self.server.server_address[1]}"

    def claims(self, subject: str, **overrides: Any) -> dict[str, Any]:
        now = datetime.now(UTC)
        values: dict[str, Any] = {
            "sub": subject,
            "iat": now,
            "exp": now + timedelta(minutes=5),
            "aud": AUDIENCE,
            "iss": self.issuer,
            "scope": "agents:run",
        }
        values.update(overrides)
        return values

    def sign(self, claims: dict[str, Any], *, kid: str = KEY_ID) -> str:
        return jwt.encode(claims, self.private_key, algorithm="RS256", headers={"kid": kid})


@pytest.fixture(scope="session")
def identity_provider() -> Iterator[IdentityProvider]:
    provider = IdentityProvider()
    thread = threading.Thread(target=provider.server.serve_forever, daemon=True)
    thread.start()
    yield provider
    provider.server.shutdown()
    provider.server.server_close()


@pytest.fixture(scope="session")
def auth_settings(identity_provider: IdentityProvider) -> dict[str, Any]:
    return {"oidc_issuer": identity_provider.issuer, "oidc_audience": AUDIENCE}


class Credentials:
    def __init__(self, provider: IdentityProvider) -> None:
        self.provider = provider

    def token(self, subject: str) -> str:
        return self.provider.sign(self.provider.claims(subject))

    def headers(self, subject: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(subject)}"}


@pytest.fixture(scope="session")
def credentials(identity_provider: IdentityProvider) -> Credentials:
    return Credentials(identity_provider)
