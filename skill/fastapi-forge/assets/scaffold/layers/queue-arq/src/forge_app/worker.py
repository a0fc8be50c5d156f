"""The ARQ worker that runs agent jobs: `python -m forge_app.worker`.

It opens the same backends as the API (database, Redis, agent runner) once, and runs
each job through `execute_job`. Run as many worker processes as you like; each takes up
to WORKER_CONCURRENCY jobs at a time.
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from typing import Any

from arq import func
from arq.worker import Worker

from .config import Settings, get_settings
from .logging_config import configure_logging
from .metrics import mark_process_dead
from .resources import open_backends
from .services.queue import JOB_FUNCTION, redis_settings

# ARQ's own limit sits above the agent timeout, so the agent's timeout fires first and
# the job is recorded as failed with a clear error instead of being killed by ARQ.
TIMEOUT_MARGIN_SECONDS = 30


async def startup(ctx: dict[str, Any]) -> None:
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
def build_worker(settings: Settings, **overrides: Any) -> Worker:
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
        "max_jobs": settings.worker_concurrency,
        "keep_result": 3600,
        "ctx": {"settings": settings},
    }
    options.update(overrides)
    return Worker(**options)
    # --8<-- [end:worker]


def main() -> None:
    settings = get_settings()
    configure_logging(settings.log_level, json=settings.log_json)
    build_worker(settings).run()


if __name__ == "__main__":
    main()
