"""`SessionDep` commits before the response is sent: a route's writes are stored when it
answers 2xx, and a commit that fails (here a deferred foreign key, checked only at
COMMIT) is a 5xx with the error envelope, never a 200 for a change that was not stored."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from sqlalchemy import text

from forge_app.config import Settings
from forge_app.db.session import Database, DatabaseSettings, SessionDep
from forge_app.main import create_app

from .helpers import free_port

pytestmark = pytest.mark.uses_database


@asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[str]:
    """`app` under a real uvicorn server on a loopback port, in this event loop."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="on")
    )
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(10):
            while not server.started:
                if task.done():
                    task.result()
                await asyncio.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


async def stored_ids(database: Database) -> list[int]:
    async with database.sessions() as session:
        return list(await session.scalars(text("SELECT id FROM session_commit_probe ORDER BY id")))


async def test_writes_commit_before_the_response(
    settings: Settings, database_settings: dict[str, Any], headers: dict[str, str]
) -> None:
    database = Database(DatabaseSettings(**database_settings))
    async with database.engine.begin() as connection:
        await connection.execute(text("DROP TABLE IF EXISTS session_commit_probe"))
        await connection.execute(
            text(
                "CREATE TABLE session_commit_probe (id int PRIMARY KEY, parent int"
                " REFERENCES session_commit_probe (id) DEFERRABLE INITIALLY DEFERRED)"
            )
        )
    app = create_app(settings)

    @app.post("/probe/{row_id}/{parent}")
    async def probe(row_id: int, parent: int, session: SessionDep) -> dict[str, int]:
        await session.execute(
            text("INSERT INTO session_commit_probe (id, parent) VALUES (:id, :parent)"),
            {"id": row_id, "parent": parent},
        )
        return {"stored": row_id}

    try:
        async with (
            serving(app) as base,
            httpx.AsyncClient(base_url=base, headers=headers) as client,
        ):
            stored = await client.post("/probe/1/1")
            assert stored.status_code == 200, stored.text
            assert await stored_ids(database) == [1]

            # The parent does not exist: PostgreSQL refuses the row at COMMIT only.
            refused = await client.post("/probe/2/999")
            assert refused.status_code >= 500, refused.text
            assert refused.json()["error"]["code"] == "internal_error", refused.text
            assert await stored_ids(database) == [1]
    finally:
        async with database.engine.begin() as connection:
            await connection.execute(text("DROP TABLE IF EXISTS session_commit_probe"))
        await database.close()
