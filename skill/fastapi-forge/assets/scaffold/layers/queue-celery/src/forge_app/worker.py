"""The Celery worker that runs agent jobs: `python -m forge_app.worker` (the same command
as with ARQ), or `celery -A forge_app.worker worker` for Celery's full command line.

Each task runs the async `execute_job` with `asyncio.run` in the pool process. A revoke
with terminate (the API's cancel) arrives as SIGTERM, which cancels the agent coroutine
so the job is recorded as cancelled instead of the process dying mid-write.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal

from .config import get_settings
from .logging_config import configure_logging
from .resources import open_backends
from .services.queue import TASK_NAME, make_celery

settings = get_settings()
configure_logging(settings.log_level, json=settings.log_json)
app = make_celery(settings)


async def run_job(job_id: str) -> None:
    loop = asyncio.get_running_loop()
    current = asyncio.current_task()
    assert current is not None
    loop.add_signal_handler(signal.SIGTERM, current.cancel)
    try:
        async with open_backends(settings) as backends:
            await backends.execute(job_id)
    except asyncio.CancelledError:
        # execute_job has recorded the outcome; the task itself ends normally.
        current.uncancel()
    finally:
        with contextlib.suppress(RuntimeError):
            loop.remove_signal_handler(signal.SIGTERM)


@app.task(name=TASK_NAME)
def run_agent_job(job_id: str) -> None:
    asyncio.run(run_job(job_id))


if __name__ == "__main__":
    app.worker_main(["worker", "--loglevel", settings.log_level])
