"""Jobs on an ARQ worker (`python -m forge_app.worker`), through Redis.

Cancelling uses ARQ's abort: the worker (started with `allow_abort_jobs=True`) cancels
the running task, so the agent coroutine really stops, and `execute_job` records it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from arq.connections import ArqRedis, RedisSettings
from arq.jobs import Job
from redis.asyncio import ConnectionPool

if TYPE_CHECKING:
    from ..config import Settings
    from ..resources import Backends

JOB_FUNCTION = "run_agent_job"


class ArqJobQueue:
    def __init__(self, pool: ArqRedis, queue_name: str) -> None:
        self.pool = pool
        self.queue_name = queue_name

    async def enqueue(self, job_id: str) -> None:
        # The job id doubles as ARQ's id: enqueueing twice is a no-op, and abort finds it.
        await self.pool.enqueue_job(
            JOB_FUNCTION, job_id, _job_id=job_id, _queue_name=self.queue_name
        )

    async def cancel(self, job_id: str, *, wait_seconds: float) -> None:
        job = Job(job_id, self.pool, _queue_name=self.queue_name)
        # On timeout the job is still stopping; the client sees cancel_requested and polls.
        with contextlib.suppress(TimeoutError):
            await job.abort(timeout=wait_seconds, poll_delay=0.1)

    async def close(self) -> None:
        await self.pool.aclose()


def redis_settings(settings: Settings) -> RedisSettings:
    # ARQ's connect timeout is whole seconds; round up so it is never 0.
    return dataclasses.replace(
        RedisSettings.from_dsn(settings.redis_url),
        conn_timeout=max(1, math.ceil(settings.redis_timeout_seconds)),
    )


async def build_job_queue(
    settings: Settings, *, backends: Backends, execute: Callable[[str], Awaitable[None]]
) -> ArqJobQueue:
    # Built without arq's create_pool, which insists on reaching Redis first: the API must
    # start (and report not-ready) while Redis is down.
    pool = ArqRedis(
        ConnectionPool.from_url(
            settings.redis_url,
            socket_connect_timeout=settings.redis_timeout_seconds,
            socket_timeout=settings.redis_timeout_seconds,
        ),
        default_queue_name=settings.queue_name,
    )
    return ArqJobQueue(pool, settings.queue_name)
