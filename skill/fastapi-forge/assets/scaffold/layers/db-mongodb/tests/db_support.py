"""MongoDB for tests: MONGODB_URL, a fresh database per test session, dropped afterwards.

Tests that reach the database are marked `mongodb`, so a machine without a MongoDB
server can run everything else: pytest -m "not mongodb".
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from pymongo import MongoClient


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("uses_database"):
            item.add_marker(pytest.mark.mongodb)


@pytest.fixture(scope="session")
def database_settings() -> Iterator[dict[str, Any]]:
    url = os.environ.get("MONGODB_URL", "mongodb://127.0.0.1:27017")
    name = f"forge_app_test_{uuid.uuid4().hex[:12]}"
    yield {"mongodb_url": url, "mongodb_database": name, "mongodb_timeout_ms": 1000}
    client: MongoClient[dict[str, Any]] = MongoClient(url, serverSelectionTimeoutMS=1000)
    try:
        client.drop_database(name)
    except Exception:  # noqa: S110 - no server: nothing was created
        pass
    finally:
        client.close()
