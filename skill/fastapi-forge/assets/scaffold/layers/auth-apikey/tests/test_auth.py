"""API keys: known keys map to their client, anything else is a 401."""

from __future__ import annotations

import httpx
import pytest
from pydantic import ValidationError

from forge_app.security import AuthSettings, digest

from .auth_support import KEYS


async def test_known_key_identifies_its_client(client: httpx.AsyncClient) -> None:
    response = await client.get("/me", headers={"X-API-Key": KEYS["alice"]})
    assert response.status_code == 200
    assert response.json()["subject"] == "alice"


async def test_missing_key_is_401_with_challenge(client: httpx.AsyncClient) -> None:
    response = await client.get("/me")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "ApiKey"
    assert response.json()["error"]["code"] == "missing_credentials"


@pytest.mark.parametrize(
    "key", [KEYS["alice"] + "x", KEYS["alice"][:-1], digest(KEYS["alice"]), "", " "]
)
async def test_wrong_keys_are_rejected(client: httpx.AsyncClient, key: str) -> None:
    response = await client.get("/me", headers={"X-API-Key": key})
    assert response.status_code == 401


def test_plain_keys_in_settings_are_refused() -> None:
    with pytest.raises(ValidationError, match="SHA-256 hex digest"):
        AuthSettings(api_keys={"alice": KEYS["alice"]})
