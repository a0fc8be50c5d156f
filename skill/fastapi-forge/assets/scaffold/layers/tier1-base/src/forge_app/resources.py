"""Everything a process opens once and shares: Redis, the database, the job store, the
agent runner and the job queue. The API opens it in its lifespan, with the reaper of jobs
whose worker died; the worker opens the `Backends` part (it runs jobs, it does not
enqueue them)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from redis.asyncio import Redis

from .agents.base import AgentRunner
from .agents.factory import build_runner
from .config import Settings
from .db.session import Database, open_database
from .principal import Authenticator
from .security import build_authenticator
from .services.job_store import build_job_store
from .services.jobs import JobQueue, JobStore, execute_job, reap_stale_jobs
from .services.queue import build_job_queue


@dataclass(slots=True)
class Backends:
    settings: Settings
    redis: Redis
    database: Database | None
    jobs: JobStore
    runner: AgentRunner

    async def execute(self, job_id: str) -> None:
        await execute_job(job_id, store=self.jobs, runner=self.runner, settings=self.settings)


@dataclass(slots=True)
class Resources(Backends):
    authenticator: Authenticator
    queue: JobQueue


def open_redis(settings: Settings) -> Redis:
    return Redis.from_url(
        settings.redis_url,
        decode_responses=True,
        socket_connect_timeout=settings.redis_timeout_seconds,
        socket_timeout=settings.redis_timeout_seconds,
        health_check_interval=30,
    )


@asynccontextmanager
async def open_backends(settings: Settings) -> AsyncIterator[Backends]:
    redis = open_redis(settings)
    database = await open_database(settings)
    try:
        jobs = build_job_store(settings, redis=redis, database=database)
        yield Backends(
            settings=settings,
            redis=redis,
            database=database,
            jobs=jobs,
            runner=build_runner(settings),
        )
    finally:
        if database is not None:
            await database.close()
        await redis.aclose()


@asynccontextmanager
async def open_resources(
    settings: Settings, authenticator: Authenticator | None = None
) -> AsyncIterator[Resources]:
    async with open_backends(settings) as backends:
        queue = await build_job_queue(settings, backends=backends, execute=backends.execute)
        reaper = asyncio.create_task(reap_stale_jobs(backends.jobs, settings))
        try:
            yield Resources(
                settings=settings,
                redis=backends.redis,
                database=backends.database,
                jobs=backends.jobs,
                runner=backends.runner,
                authenticator=authenticator or build_authenticator(settings),
                queue=queue,
            )
        finally:
            reaper.cancel()
            await queue.close()
