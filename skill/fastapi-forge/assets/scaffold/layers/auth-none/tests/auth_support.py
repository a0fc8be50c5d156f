"""No credentials: every caller is anonymous."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture(scope="session")
def auth_settings() -> dict[str, Any]:
    return {}


class Credentials:
    def token(self, subject: str) -> str | None:
        return None

    def headers(self, subject: str) -> dict[str, str]:
        return {}


@pytest.fixture(scope="session")
def credentials() -> Credentials:
    return Credentials()
