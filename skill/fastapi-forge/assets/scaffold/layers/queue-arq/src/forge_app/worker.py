"""The ARQ worker that runs agent jobs: `python -m forge_app.worker`.

It opens the same backends as the API (database, Redis, agent runner) once, and runs
each job through `execute_job`. Run as many worker processes as you like; each takes up
to WORKER_CONCURRENCY jobs at a time.

When Redis goes away, ARQ alone would exit at once with a traceback. Here the worker keeps
its running jobs and reconnects with a growing delay; if Redis stays away longer than
WORKER_REDIS_OUTAGE_SECONDS it exits with status 1, for its supervisor (compose, Kubernetes,
systemd) to restart it and make the outage visible.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from contextlib import AsyncExitStack
from typing import Any

from arq import func
from arq.worker import Worker
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from .config import Settings, get_settings
from .logging_config import configure_logging
from .metrics import mark_process_dead
from .resources import open_backends
from .services.queue import JOB_FUNCTION, redis_settings

# ARQ's own limit sits above the agent timeout, so the agent's timeout fires first and
# the job is recorded as failed with a clear error instead of being killed by ARQ.
TIMEOUT_MARGIN_SECONDS = 30
RECONNECT_FIRST_DELAY_SECONDS = 1.0
RECONNECT_MAX_DELAY_SECONDS = 30.0
# What "Redis is unreachable" looks like through redis-py and ARQ's start-up.
REDIS_DOWN_ERRORS: tuple[type[Exception], ...] = (
    RedisConnectionError,
    RedisTimeoutError,
    OSError,
)

log = logging.getLogger(__name__)


class RedisOutageError(Exception):
    """Redis stayed away longer than the worker waits for it."""


class SupervisedWorker(Worker):
    """ARQ's worker, restarted in place after a Redis outage (see `run_supervised`)."""


async def run_supervised(worker: SupervisedWorker, outage_seconds: float) -> None:
    """Runs the worker until it is stopped; rides out Redis outages up to `outage_seconds`."""
    supervisor = asyncio.current_task()
    assert supervisor is not None
    # ARQ calls on_stop once a signal has stopped it (after the shutdown wait): during an
    # outage the supervisor waits between attempts, so stop that too.
    worker.on_stop = lambda _signal: supervisor.cancel()
    delay = RECONNECT_FIRST_DELAY_SECONDS
    down_since: float | None = None
    while True:
        try:
            await worker.async_run()
            return
        except REDIS_DOWN_ERRORS as error:
            problem = f"{type(error).__name__}: {error}"
            down_since = down_since if down_since is not None else time.monotonic()
        # Redis is down: the running jobs go on (their tasks are not touched), polling stops.
        while True:
            down_for = time.monotonic() - down_since
            if down_for >= outage_seconds:
                raise RedisOutageError(
                    f"Redis unreachable for {down_for:.0f}s (WORKER_REDIS_OUTAGE_SECONDS="
                    f"{outage_seconds:g}): {problem}"
                )
            log.warning(
                "redis_unavailable: %s; retrying in %.0fs (down %.0fs of at most %gs)",
                problem,
                delay,
                down_for,
                outage_seconds,
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, RECONNECT_MAX_DELAY_SECONDS)
            if worker._pool is None:
                break  # never connected yet: ARQ's start-up tries (and retries) itself
            try:
                await worker._pool.ping()
            except REDIS_DOWN_ERRORS as error:
                problem = f"{type(error).__name__}: {error}"
                continue
            log.warning("redis_reconnected after %.0fs", time.monotonic() - down_since)
            delay, down_since = RECONNECT_FIRST_DELAY_SECONDS, None
            break


async def startup(ctx: dict[str, Any]) -> None:
    if "backends" in ctx:  # ARQ runs this again after a Redis outage: keep what is open
        return
    stack = AsyncExitStack()
    ctx["exit_stack"] = stack
    ctx["backends"] = await stack.enter_async_context(open_backends(ctx["settings"]))


async def shutdown(ctx: dict[str, Any]) -> None:
    stack: AsyncExitStack | None = ctx.get("exit_stack")
    if stack is not None:
        await stack.aclose()
    mark_process_dead()


async def run_agent_job(ctx: dict[str, Any], job_id: str) -> None:
    await ctx["backends"].execute(job_id)


# --8<-- [start:worker]
def build_worker(settings: Settings, **overrides: Any) -> SupervisedWorker:
    options: dict[str, Any] = {
        "functions": [
            func(
                run_agent_job,
                name=JOB_FUNCTION,
                # Agent runs are not idempotent (they spend tokens): never re-run one.
                max_tries=1,
                timeout=settings.agent_timeout_seconds + TIMEOUT_MARGIN_SECONDS,
            )
        ],
        "queue_name": settings.queue_name,
        "redis_settings": redis_settings(settings),
        "on_startup": startup,
        "on_shutdown": shutdown,
        "allow_abort_jobs": True,
        # SIGTERM (a deploy): take no new job, let running ones finish for this long, then
        # cancel them (recorded as failed, "interrupted"). Keep it below the platform's
        # grace period before SIGKILL.
        "job_completion_wait": settings.worker_shutdown_wait_seconds,
        "max_jobs": settings.worker_concurrency,
        "keep_result": 3600,
        "ctx": {"settings": settings},
    }
    options.update(overrides)
    return SupervisedWorker(**options)
    # --8<-- [end:worker]


def main() -> int:
    settings = get_settings()
    configure_logging(settings.log_level, json=settings.log_json)
    worker = build_worker(settings)
    status = 0
    try:
        worker.loop.run_until_complete(run_supervised(worker, settings.worker_redis_outage_seconds))
    except asyncio.CancelledError:
        pass  # SIGINT or SIGTERM, after the shutdown wait: jobs still running were cancelled
    except RedisOutageError as error:
        log.error("redis_outage: giving up, exit status 1: %s", error)
        status = 1
    try:
        worker.loop.run_until_complete(worker.close())
    except REDIS_DOWN_ERRORS:
        # close() could not reach Redis before running on_shutdown: release the rest here.
        worker.loop.run_until_complete(shutdown(worker.ctx))
    return status


if __name__ == "__main__":
    sys.exit(main())
