"""Credentials for tests: two API keys, configured by digest."""

from __future__ import annotations

from typing import Any

import pytest

from forge_app.security import digest

KEYS = {"alice": "alice-test-key-0123456789abcdef", "mallory": "mallory-test-key-0123456789ab"}


@pytest.fixture(scope="session")
def auth_settings() -> dict[str, Any]:
    return {"api_keys": {name: digest(key) for name, key in KEYS.items()}}


class Credentials:
    def token(self, subject: str) -> str:
        return KEYS[subject]

    def headers(self, subject: str) -> dict[str, str]:
        return {"X-API-Key": KEYS[subject]}


@pytest.fixture(scope="session")
def credentials() -> Credentials:
    return Credentials()
