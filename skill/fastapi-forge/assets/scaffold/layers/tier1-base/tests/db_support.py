"""The job store is Redis itself: nothing to prepare beyond REDIS_URL."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture(scope="session")
def database_settings() -> dict[str, Any]:
    return {}
