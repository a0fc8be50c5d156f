"""The gateway against a service that is down: real sockets, no mocks."""

import socket
import time

import httpx
import jwt

from microservice_gateway import GatewaySettings, create_app

SECRET = "gateway-test-secret-" + "x" * 32


def dead_url() -> str:
    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def token() -> str:
    now = int(time.time())
    claims = {"sub": "u1", "aud": "forge-api", "iat": now, "exp": now + 60}
    return jwt.encode(claims, SECRET, algorithm="HS256")


async def test_a_dead_service_opens_its_breaker_and_fails_fast() -> None:
    settings = GatewaySettings(
        services={"users": dead_url()},  # type: ignore[dict-item]
        jwt_secret=SECRET,  # type: ignore[arg-type]
        jwt_audience="forge-api",
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
