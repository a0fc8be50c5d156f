"""PostgreSQL for tests: DATABASE_URL (a throwaway database), migrated once per session."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/forge_app_test"


def database_url() -> str:
    return os.environ.get("DATABASE_URL", DEFAULT_URL)


def alembic(*args: str) -> None:
    # A child process: Alembic's env.py runs its own event loop.
    subprocess.run(  # noqa: S603 - fixed argv
        [sys.executable, "-m", "alembic", *args],
        cwd=PROJECT_ROOT,
        env={**os.environ, "DATABASE_URL": database_url()},
        check=True,
    )


@pytest.fixture(scope="session")
def database_settings() -> dict[str, Any]:
    alembic("upgrade", "head")
    return {"database_url": database_url()}
