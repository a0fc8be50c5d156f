"""Jobs run inside the API process: there is no separate worker to start."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from forge_app.config import Settings


@asynccontextmanager
async def running_worker(settings: Settings) -> AsyncIterator[None]:
    yield
