"""A Redis that accepts connections and never answers (a stuck server, a black-holed
proxy) must cost each request a bounded wait, not hang it: the rate limiter lets the
request through after REDIS_TIMEOUT_SECONDS (fail open), and POST /agents/run/async
answers 503 and leaves no job `queued` that no worker will ever run."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest

from forge_app.config import Settings

from .conftest import SettingsFactory
from .helpers import uvicorn_process

pytestmark = pytest.mark.uses_database

REDIS_TIMEOUT = 1.0
# Connect, a timed-out read, the error handling: well under two timeouts per Redis call.
BOUND = 3 * REDIS_TIMEOUT + 2


@asynccontextmanager
async def silent_server() -> AsyncIterator[str]:
    """Accepts TCP connections on loopback, reads what comes and never writes a byte."""
    held: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)
        while await reader.read(65536):
            pass

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        for writer in held:
            writer.transport.abort()
        server.close()


async def test_hung_redis_costs_a_bounded_wait(
    make_settings: SettingsFactory, headers: dict[str, str]
) -> None:
    async with silent_server() as redis_url:
        settings = make_settings(
            redis_url=redis_url, redis_timeout_seconds=REDIS_TIMEOUT, rate_limit_requests=1
        )
        async with (
            uvicorn_process(settings, workers=1) as base,
            httpx.AsyncClient(base_url=base, headers=headers, timeout=60) as client,
        ):
            # The rate limiter fails open: both requests pass although the limit is 1.
            for _ in range(2):
                started = time.monotonic()
                run = await client.post("/agents/run", json={"prompt": "still served"})
                took = time.monotonic() - started
                assert run.status_code == 200, run.text
                assert took < BOUND, f"POST /agents/run took {took:.1f}s"

            started = time.monotonic()
            queued = await client.post("/agents/run/async", json={"prompt": "never queued"})
            took = time.monotonic() - started
            assert took < BOUND, f"POST /agents/run/async took {took:.1f}s"
            assert queued.status_code == 503, queued.text
            assert queued.headers["retry-after"]
            error = queued.json()["error"]
            if not database_backed(settings):
                # The job store is the hung Redis itself: nothing was stored.
                assert error["code"] == "service_unavailable", error
                return
            # Stored in the database before the queue failed: recorded as failed (its id in
            # the details), not left `queued` for a worker that will never see it.
            assert error["code"] == "queue_unavailable", error
            job = await client.get(f"/agents/jobs/{error['details'][0]['job_id']}")
            assert job.status_code == 200, job.text
            assert job.json()["status"] == "failed", job.json()
            assert job.json()["error"].startswith("not queued"), job.json()


def database_backed(settings: Settings) -> bool:
    """Jobs stored in PostgreSQL or MongoDB (else in Redis)."""
    return any(getattr(settings, name, None) for name in ("database_url", "mongodb_url"))
