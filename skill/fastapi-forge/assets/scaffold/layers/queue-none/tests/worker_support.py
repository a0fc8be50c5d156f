"""Jobs run inside the API process: there is no separate worker to start."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx

from forge_app.config import Settings


class InProcessWorker:
    async def metrics(self, client: httpx.AsyncClient) -> str:
        return (await client.get("/metrics")).text


@asynccontextmanager
async def running_worker(settings: Settings) -> AsyncIterator[InProcessWorker]:
    yield InProcessWorker()
