"""The routers `create_app` mounts, in order, and the per-process cap on agent runs."""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi import Depends, FastAPI

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
    # One Depends object for every route that runs the agent, so they share one limit of
    # AGENT_MAX_CONCURRENT_RUNS per process: a request beyond it waits for a free slot.
    # scope="request" keeps the slot until the response is fully sent, which for SSE
    # means until the stream ends; a WebSocket holds it while connected.
    run_slot = Depends(
        agent_run_slot, scope="request", max_concurrency=settings.agent_max_concurrent_runs
    )
    app.include_router(agents.run_router, dependencies=[run_slot])
    # --8<-- [end:run-cap]
