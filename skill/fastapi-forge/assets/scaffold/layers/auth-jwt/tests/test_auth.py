"""JWT verification: every way a token can be wrong gets a 401, never a 500."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest

from .auth_support import TEST_SECRET, Credentials
from .conftest import SettingsFactory
from .helpers import app_client


def claims(**overrides: Any) -> dict[str, Any]:
    now = datetime.now(UTC)
    values: dict[str, Any] = {
        "sub": "alice",
        "iat": now,
        "exp": now + timedelta(minutes=5),
        "aud": "forge-app",
        "iss": "forge-app",
    }
    values.update(overrides)
    return {k: v for k, v in values.items() if v is not None}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


async def test_valid_token_is_accepted(client: httpx.AsyncClient, credentials: Credentials) -> None:
    response = await client.get("/me", headers=credentials.headers("alice"))
    assert response.status_code == 200
    assert response.json() == {"subject": "alice", "scopes": []}


async def test_missing_token_is_401_with_challenge(client: httpx.AsyncClient) -> None:
    response = await client.get("/me")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["error"]["code"] == "missing_credentials"


# --8<-- [start:bad-tokens]
@pytest.mark.parametrize(
    ("token", "code"),
    [
        pytest.param(
            jwt.encode(claims(), "another-secret-that-is-long-enough-0123456789", "HS256"),
            "invalid_token",
            id="wrong-signature",
        ),
        pytest.param(
            jwt.encode(claims(exp=datetime.now(UTC) - timedelta(minutes=5)), TEST_SECRET, "HS256"),
            "token_expired",
            id="expired",
        ),
        pytest.param(
            jwt.encode(claims(aud="someone-else"), TEST_SECRET, "HS256"),
            "invalid_token",
            id="wrong-audience",
        ),
        pytest.param(
            jwt.encode(claims(iss="https://evil.example"), TEST_SECRET, "HS256"),
            "invalid_token",
            id="wrong-issuer",
        ),
        pytest.param(
            jwt.encode(claims(exp=None), TEST_SECRET, "HS256"), "invalid_token", id="no-expiry"
        ),
        pytest.param(
            jwt.encode(claims(), TEST_SECRET, "HS512"), "invalid_token", id="other-algorithm"
        ),
        pytest.param(
            b64({"alg": "none", "typ": "JWT"}) + "." + b64({"sub": "alice"}) + ".",
            "invalid_token",
            id="alg-none",
        ),
        pytest.param("not-a-jwt", "invalid_token", id="garbage"),
    ],
)
async def test_bad_tokens_are_rejected(client: httpx.AsyncClient, token: str, code: str) -> None:
    response = await client.get("/me", headers=bearer(token))
    assert response.status_code == 401
    body = response.json()
    assert body["error"]["code"] == code
    assert "Traceback" not in response.text
    # --8<-- [end:bad-tokens]


async def test_other_scheme_is_treated_as_missing(client: httpx.AsyncClient) -> None:
    response = await client.get("/me", headers={"Authorization": "Basic eDp5"})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "missing_credentials"


async def test_public_routes_need_no_token(client: httpx.AsyncClient) -> None:
    assert (await client.get("/health")).status_code == 200
    assert (await client.get("/metrics")).status_code == 200


async def test_a_verified_token_is_refused_once_it_expires(
    make_settings: SettingsFactory,
) -> None:
    # Verified tokens are cached: the repeat skips the signature check, never the expiry.
    expires = int(time.time()) + 2
    token = jwt.encode(claims(exp=expires), TEST_SECRET, "HS256")
    async with app_client(make_settings(jwt_leeway_seconds=0)) as client:
        for _ in range(2):
            assert (await client.get("/me", headers=bearer(token))).status_code == 200
        await asyncio.sleep(expires - time.time() + 0.1)
        expired = await client.get("/me", headers=bearer(token))
        again = await client.get("/me", headers=bearer(token))
    assert expired.status_code == again.status_code == 401
    assert expired.json()["error"]["code"] == again.json()["error"]["code"] == "token_expired"


async def test_a_cached_token_does_not_admit_a_forged_one(
    client: httpx.AsyncClient, credentials: Credentials
) -> None:
    token = credentials.token("alice")
    assert (await client.get("/me", headers=bearer(token))).status_code == 200
    # Same header and claims, another signature: the cache is keyed by the whole token.
    forged = token.rsplit(".", 1)[0] + "." + "A" * 43
    response = await client.get("/me", headers=bearer(forged))
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_token"
