"""Jobs on a Celery worker (`celery -A forge_app.worker worker`), Redis as the broker.

Cancelling a running job revokes its task with `terminate=True`: Celery signals the pool
process running it (SIGTERM), the task turns that signal into asyncio cancellation of
the agent coroutine, and `execute_job` records the job as cancelled.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from celery import Celery

if TYPE_CHECKING:
    from ..config import Settings
    from ..resources import Backends

TASK_NAME = "forge_app.run_agent_job"
CANCEL_SIGNAL = "SIGTERM"


def make_celery(settings: Settings) -> Celery:
    app = Celery("forge_app", broker=settings.redis_url)
    app.conf.update(
        task_default_queue=settings.queue_name,
        task_ignore_result=True,
        # Agent runs are long and spend tokens: one at a time per process, never re-run.
        worker_prefetch_multiplier=1,
        task_acks_late=False,
        worker_concurrency=settings.worker_concurrency,
        broker_connection_retry_on_startup=True,
    )
    return app


class CeleryJobQueue:
    def __init__(self, app: Celery, backends: Backends) -> None:
        self.app = app
        self.backends = backends

    async def enqueue(self, job_id: str) -> None:
        # Celery's client is synchronous: keep its network calls off the event loop.
        await asyncio.to_thread(self.app.send_task, TASK_NAME, args=[job_id], task_id=job_id)

    async def cancel(self, job_id: str, *, wait_seconds: float) -> None:
        await asyncio.to_thread(
            self.app.control.revoke, job_id, terminate=True, signal=CANCEL_SIGNAL
        )
        deadline = time.monotonic() + wait_seconds
        while time.monotonic() < deadline:
            job = await self.backends.jobs.get(job_id)
            if job is None or job.status.terminal:
                return
            await asyncio.sleep(0.1)

    async def close(self) -> None:
        await asyncio.to_thread(self.app.close)


async def build_job_queue(
    settings: Settings, *, backends: Backends, execute: Callable[[str], Awaitable[None]]
) -> CeleryJobQueue:
    return CeleryJobQueue(make_celery(settings), backends)
