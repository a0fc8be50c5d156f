"""Credentials for tests: JWTs signed with a test secret."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from forge_app.security import AuthSettings, create_access_token

from .helpers import ArgumentsOnly

TEST_SECRET = "test-secret-long-enough-for-every-hmac-algorithm-0123456789abcdef0123"


@pytest.fixture(scope="session")
def auth_settings() -> dict[str, Any]:
    # One key per line: the project name replaces `forge-app` and may be much longer.
    return {
        "jwt_secret": TEST_SECRET,
        "jwt_audience": "forge-app",
        "jwt_issuer": "forge-app",
    }


@dataclass
class Credentials:
    settings: AuthSettings

    def token(self, subject: str) -> str:
        return create_access_token(self.settings, subject)

    def headers(self, subject: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(subject)}"}


@pytest.fixture(scope="session")
def credentials(auth_settings: dict[str, Any]) -> Credentials:
    return Credentials(TestAuthSettings(**auth_settings))


class TestAuthSettings(ArgumentsOnly, AuthSettings):
    __test__ = False
