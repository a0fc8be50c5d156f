"""PostgreSQL for tests: a database the tests may wipe, created when missing and migrated
once per session. TEST_DATABASE_URL names it; unset, it is DATABASE_URL's database with
`_test` appended, on the same server (both from the process environment, never `.env`).

Never DATABASE_URL's database itself: `test_migrations` downgrades it to nothing, and a
developer who exported DATABASE_URL to run the app must not lose their data to `pytest`.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import make_url

from forge_app.db.create import create_database

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/forge_app_test"


def database_url() -> str:
    if explicit := os.environ.get("TEST_DATABASE_URL"):
        return explicit
    if app := os.environ.get("DATABASE_URL"):
        url = make_url(app)
        return url.set(database=f"{url.database}_test").render_as_string(hide_password=False)
    return DEFAULT_URL


def alembic(*args: str) -> None:
    # A child process: Alembic's env.py runs its own event loop. The variable set here wins
    # over a DATABASE_URL in the developer's `.env`.
    subprocess.run(  # noqa: S603 - fixed argv
        [sys.executable, "-m", "alembic", *args],
        cwd=PROJECT_ROOT,
        env={**os.environ, "DATABASE_URL": database_url()},
        check=True,
    )


@pytest.fixture(scope="session")
def database_settings() -> dict[str, Any]:
    asyncio.run(create_database(database_url()))
    alembic("upgrade", "head")
    return {"database_url": database_url()}
