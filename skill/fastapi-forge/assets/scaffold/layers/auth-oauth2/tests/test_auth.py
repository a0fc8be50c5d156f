"""OIDC tokens: keys come from the issuer's JWKS; every bad token is a 401."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from .auth_support import IdentityProvider
from .conftest import SettingsFactory
from .helpers import app_client, free_port


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


async def test_valid_token_is_accepted(
    client: httpx.AsyncClient, identity_provider: IdentityProvider
) -> None:
    token = identity_provider.sign(identity_provider.claims("alice"))
    response = await client.get("/me", headers=bearer(token))
    assert response.status_code == 200
    assert response.json() == {"subject": "alice", "scopes": ["agents:run"]}


async def test_missing_token_is_401(client: httpx.AsyncClient) -> None:
    response = await client.get("/me")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


def other_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.mark.parametrize(
    ("case", "code"),
    [
        ("expired", "token_expired"),
        ("wrong-audience", "invalid_token"),
        ("wrong-issuer", "invalid_token"),
        ("unknown-kid", "invalid_token"),
        ("foreign-key-same-kid", "invalid_token"),
        ("alg-none", "invalid_token"),
        ("hs256-with-public-key", "invalid_token"),
        ("garbage", "invalid_token"),
    ],
)
async def test_bad_tokens_are_rejected(
    client: httpx.AsyncClient, identity_provider: IdentityProvider, case: str, code: str
) -> None:
    idp = identity_provider
    claims = idp.claims("alice")
    past = datetime.now(UTC) - timedelta(minutes=10)
    public_pem = (
        idp.private_key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    tokens = {
        "expired": lambda: idp.sign({**claims, "iat": past, "exp": past + timedelta(minutes=1)}),
        "wrong-audience": lambda: idp.sign({**claims, "aud": "another-api"}),
        "wrong-issuer": lambda: idp.sign({**claims, "iss": "https://evil.example"}),
        "unknown-kid": lambda: idp.sign(claims, kid="rotated-away"),
        "foreign-key-same-kid": lambda: jwt.encode(
            claims, other_key(), algorithm="RS256", headers={"kid": "test-key-1"}
        ),
        "alg-none": lambda: (
            b64({"alg": "none", "kid": "test-key-1"}) + "." + b64({"sub": "a"}) + "."
        ),
        "hs256-with-public-key": lambda: (
            b64({"alg": "HS256", "kid": "test-key-1", "typ": "JWT"})
            + "."
            + b64({"sub": "a"})
            + "."
            + base64.urlsafe_b64encode(public_pem.encode()[:32]).rstrip(b"=").decode()
        ),
        "garbage": lambda: "not-a-jwt",
    }
    response = await client.get("/me", headers=bearer(tokens[case]()))
    assert response.status_code == 401
    assert response.json()["error"]["code"] == code


async def test_unreachable_issuer_is_401_not_500(make_settings: SettingsFactory) -> None:
    settings = make_settings(oidc_issuer=f"http://127.0.0.1:{free_port()}")
    async with app_client(settings) as client:
        token = jwt.encode(
            {"sub": "a"}, other_key(), algorithm="RS256", headers={"kid": "test-key-1"}
        )
        response = await client.get("/me", headers=bearer(token))
    assert response.status_code == 401


async def test_random_key_ids_are_401s_without_a_jwks_fetch_each(
    make_settings: SettingsFactory, identity_provider: IdentityProvider
) -> None:
    idp = identity_provider
    async with app_client(make_settings()) as client:  # its own, empty key cache
        valid = await client.get("/me", headers=bearer(idp.sign(idp.claims("alice"))))
        assert valid.status_code == 200
        before = idp.jwks_fetches
        kids: list[Any] = [uuid.uuid4().hex for _ in range(30)] + [123, ["a"], {"k": 1}, None]
        tokens = [
            b64({"alg": "RS256", "typ": "JWT"} | ({} if kid is None else {"kid": kid}))
            + "."
            + b64({"sub": "alice"})
            + ".c2lnbmF0dXJl"
            for kid in kids
        ]
        answers = [await client.get("/me", headers=bearer(token)) for token in tokens]
    assert {a.status_code for a in answers} == {401}
    assert {a.json()["error"]["code"] for a in answers} == {"invalid_token"}
    # PyJWKClient refetches for an unknown kid at most once per cooldown (30 s).
    assert idp.jwks_fetches - before <= 1, f"{idp.jwks_fetches - before} fetches"
