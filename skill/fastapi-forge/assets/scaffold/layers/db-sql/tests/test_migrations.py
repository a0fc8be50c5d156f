"""The migrations apply, reverse and re-apply cleanly, and match the models."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import create_async_engine

from .db_support import alembic, database_url

pytestmark = pytest.mark.uses_database


async def table_names() -> set[str]:
    engine = create_async_engine(database_url())
    try:
        async with engine.connect() as connection:
            names: list[str] = await connection.run_sync(
                lambda sync: inspect(sync).get_table_names()
            )
            return set(names)
    finally:
        await engine.dispose()


async def test_downgrade_and_upgrade(database_settings: dict[str, Any]) -> None:
    assert "agent_jobs" in await table_names()
    alembic("downgrade", "base")
    assert "agent_jobs" not in await table_names()
    alembic("upgrade", "head")
    assert "agent_jobs" in await table_names()


def test_models_match_the_migrations(database_settings: dict[str, Any]) -> None:
    # `alembic check` fails when autogenerate would produce a new migration.
    alembic("check")
