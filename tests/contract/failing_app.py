"""A contract target (FORGE_TARGET) with two routes that fail the way real code does: an
exception raised with the caller's credentials in local variables, and a database error
with an API key as a bound parameter (on the targets that have a database).
`project_unconfigured`: the project's create_app without its logging configuration, as an
app assembled from the references' excerpts may well be."""

from __future__ import annotations

import os
from typing import Any

from fastapi import FastAPI, Request
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine


def engine_of(request: Request) -> AsyncEngine:
    state: Any = request.state
    if os.environ["FORGE_TARGET"].startswith("project"):
        engine: AsyncEngine = state.resources.database.engine
    else:
        engine = state.services.engine
    return engine


def create_app() -> FastAPI:
    target = os.environ["FORGE_TARGET"]
    if target == "project":
        from contract_app.main import create_app as build
    elif target == "project_unconfigured":
        import contract_app.main

        contract_app.main.configure_logging = lambda *_, **__: None  # type: ignore[assignment]
        build = contract_app.main.create_app
    elif target == "single_api":
        from single_api import create_app as build
    else:
        from host_app import create_app as build
    app: FastAPI = build()

    @app.get("/fail/route")
    async def fail_in_route(request: Request) -> None:
        authorization = request.headers.get("authorization")
        api_key = request.headers.get("x-api-key")
        assert authorization and api_key
        raise RuntimeError("the route failed")

    @app.get("/fail/database")
    async def fail_in_database(request: Request) -> None:
        api_key = request.headers.get("x-api-key")
        async with engine_of(request).connect() as connection:
            query = text("SELECT owner FROM no_such_table WHERE api_key = :key")
            await connection.execute(query, {"key": api_key})

    return app
