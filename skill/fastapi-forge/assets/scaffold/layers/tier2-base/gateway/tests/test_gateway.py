"""The gateway against a service that is down: real sockets, no mocks."""

import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from microservice_gateway import GatewaySettings, create_app

KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
JWK = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(KEY.public_key())) | {"kid": "k1"}


@pytest.fixture(scope="module")
def jwks_url() -> Iterator[str]:
    """The token issuer's JWKS on loopback (user-service's /.well-known/jwks.json)."""
    body = json.dumps({"keys": [JWK]}).encode()

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
    yield f"http://127.0.0.1:{server.server_port}/jwks"
    server.shutdown()


def dead_url() -> str:
    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def token() -> str:
    now = int(time.time())
    claims = {"sub": "u1", "aud": "forge-api", "iss": "forge-api", "iat": now}
    claims["exp"] = now + 60
    return jwt.encode(claims, KEY, algorithm="RS256", headers={"kid": "k1"})


async def test_a_dead_service_opens_its_breaker_and_fails_fast(jwks_url: str) -> None:
    settings = GatewaySettings(
        services={"users": dead_url()},  # type: ignore[dict-item]
        jwks_url=jwks_url,
        jwt_audience="forge-api",
        jwt_issuer="forge-api",
        breaker_failure_threshold=2,
        breaker_open_seconds=30,
        retry_attempts=0,
    )
    app = create_app(settings)
    headers = {"authorization": f"Bearer {token()}"}
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://gw"
        ) as client,
    ):
        assert (await client.get("/users/me")).status_code == 401  # no token, no call
        for _ in range(2):
            response = await client.get("/users/me", headers=headers)
            assert response.status_code == 502
        response = await client.get("/users/me", headers=headers)
        assert response.status_code == 503
        error = response.json()["error"]
        assert (error["code"], error["service"], error["breaker"]) == (
            "circuit_open",
            "users",
            "open",
        )
        assert int(response.headers["retry-after"]) >= 1
