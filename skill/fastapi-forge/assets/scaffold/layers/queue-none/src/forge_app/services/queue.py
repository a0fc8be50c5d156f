"""Jobs as asyncio tasks inside the API process: no worker to run, same state machine.

Single process only: a job lives in the process that accepted it, so with several
uvicorn workers a cancel request can reach a process that does not hold the task, and
jobs still running at shutdown are recorded as interrupted. Use `--queue arq` for that.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import structlog

if TYPE_CHECKING:
    from ..config import Settings
    from ..resources import Backends

log = structlog.get_logger(__name__)


class InProcessJobQueue:
    def __init__(self, execute: Callable[[str], Awaitable[None]], concurrency: int) -> None:
        self.execute = execute
        self.slots = asyncio.Semaphore(concurrency)
        self.tasks: dict[str, asyncio.Task[None]] = {}

    async def enqueue(self, job_id: str) -> None:
        task = asyncio.create_task(self.run(job_id), name=f"job-{job_id}")
        self.tasks[job_id] = task
        task.add_done_callback(lambda _: self.tasks.pop(job_id, None))

    async def run(self, job_id: str) -> None:
        try:
            async with self.slots:
                await self.execute(job_id)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("job_task_failed", job_id=job_id)

    async def cancel(self, job_id: str, *, wait_seconds: float) -> None:
        task = self.tasks.get(job_id)
        if task is None:
            return
        task.cancel()
        if wait_seconds > 0:
            await asyncio.wait({task}, timeout=wait_seconds)

    async def close(self) -> None:
        tasks = list(self.tasks.values())
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=10)


async def build_job_queue(
    settings: Settings, *, backends: Backends, execute: Callable[[str], Awaitable[None]]
) -> InProcessJobQueue:
    return InProcessJobQueue(execute, settings.worker_concurrency)
