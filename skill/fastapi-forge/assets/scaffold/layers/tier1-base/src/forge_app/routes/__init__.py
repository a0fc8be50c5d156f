"""The routers `create_app` mounts, in order, and the per-process cap on agent runs."""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi import APIRouter, Depends, FastAPI

from ..config import Settings
from . import agents, health, identity, tickets


async def agent_run_slot() -> AsyncIterator[None]:
    """Held for as long as a run's request lasts (see `include_routes`)."""
    yield


# --8<-- [start:run-cap]
def include_routes(app: FastAPI, settings: Settings) -> None:
    app.include_router(health.router)
    app.include_router(identity.router)
    app.include_router(tickets.router)
    app.include_router(agents.router)
    # One Depends object, declared on the APIRouter around the routes that run the agent,
    # so they share one limit of AGENT_MAX_CONCURRENT_RUNS per process: a request beyond
    # it waits for a free slot. scope="request" keeps the slot until the response is fully
    # sent, which for SSE means until the stream ends; a WebSocket holds it while connected.
    # The limit is a setting, so this router is made per app.
    capped = APIRouter(
        dependencies=[
            Depends(
                agent_run_slot,
                scope="request",
                max_concurrency=settings.agent_max_concurrent_runs,
            )
        ]
    )
    capped.include_router(agents.run_router)
    app.include_router(capped)
    # --8<-- [end:run-cap]
