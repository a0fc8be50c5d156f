"""A real ARQ worker in this event loop, against the test Redis."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx

from forge_app.config import Settings
from forge_app.worker import build_worker


class InProcessWorker:
    async def metrics(self, client: httpx.AsyncClient) -> str:
        """The worker shares this process's metrics registry, which the app serves."""
        return (await client.get("/metrics")).text


@asynccontextmanager
async def running_worker(settings: Settings) -> AsyncIterator[InProcessWorker]:
    worker = build_worker(settings, burst=False, handle_signals=False, poll_delay=0.05)
    task = asyncio.create_task(worker.async_run())
    try:
        yield InProcessWorker()
    finally:
        # close() gathers the job tasks it cancels; their CancelledError is expected.
        with contextlib.suppress(asyncio.CancelledError):
            await worker.close()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
