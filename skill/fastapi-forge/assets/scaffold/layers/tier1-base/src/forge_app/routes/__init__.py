"""The routers `create_app` mounts, in order, and the per-process cap on agent runs."""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi import APIRouter, Depends, FastAPI
from starlette.requests import HTTPConnection

from ..config import Settings
from ..dependencies import ResourcesDep
from ..middleware.rate_limit import rate_key
from ..services.run_slots import run_slot
from . import agents, health, identity, tickets


async def agent_run_slot() -> AsyncIterator[None]:
    """Held for as long as a run's request lasts (see `include_routes`)."""
    yield


async def caller_run_slot(
    connection: HTTPConnection, resources: ResourcesDep
) -> AsyncIterator[None]:
    """One of the caller's AGENT_MAX_CONCURRENT_RUNS_PER_USER slots while the response
    lasts, or 429; a WebSocket takes one per run instead (`WsSession.run`)."""
    if connection.scope["type"] == "websocket":
        yield
        return
    async with run_slot(resources, rate_key(connection.scope)):
        yield


# --8<-- [start:run-cap]
def include_routes(app: FastAPI, settings: Settings) -> None:
    app.include_router(health.router)
    app.include_router(identity.router)
    app.include_router(tickets.router)
    app.include_router(agents.router)
    # One Depends object, declared on the APIRouter around the routes that run the agent,
    # so they share one limit of AGENT_MAX_CONCURRENT_RUNS per process: a request beyond
    # it waits for a free slot, held until the response is sent (an SSE stream's end; a
    # WebSocket's close). The caller's own cap is checked first: 429 without waiting.
    capped = APIRouter(
        dependencies=[
            Depends(caller_run_slot, scope="request"),
            Depends(
                agent_run_slot,
                scope="request",
                max_concurrency=settings.agent_max_concurrent_runs,
            ),
        ]
    )
    capped.include_router(agents.run_router)
    app.include_router(capped)
    # --8<-- [end:run-cap]
