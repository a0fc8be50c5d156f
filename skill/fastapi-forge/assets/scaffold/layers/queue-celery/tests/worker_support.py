"""A real Celery worker process (prefork pool) against the test Redis."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from prometheus_client import CollectorRegistry, generate_latest, multiprocess

from forge_app.config import Settings
from forge_app.services.queue import make_celery

from .helpers import settings_env


class WorkerProcess:
    def __init__(self, metrics_dir: str) -> None:
        self.metrics_dir = metrics_dir

    async def metrics(self, client: object) -> str:
        """The worker's samples, from its PROMETHEUS_MULTIPROC_DIR (as /metrics would
        show them with the API sharing that folder)."""
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=self.metrics_dir)
        return generate_latest(registry).decode()


@asynccontextmanager
async def running_worker(settings: Settings) -> AsyncIterator[WorkerProcess]:
    metrics_dir = tempfile.TemporaryDirectory(prefix="celery-metrics-")
    env = {**settings_env(settings), "PROMETHEUS_MULTIPROC_DIR": metrics_dir.name}
    process = subprocess.Popen(  # noqa: ASYNC220, S603 - a long-lived child; fixed argv
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "forge_app.worker",
            "worker",
            "--pool",
            "prefork",
            "--concurrency",
            str(settings.worker_concurrency),
            "--without-gossip",
            "--without-mingle",
            "--loglevel",
            "WARNING",
        ],
        env={**os.environ, **env},
    )
    app = make_celery(settings)
    try:
        async with asyncio.timeout(30):
            while not await asyncio.to_thread(app.control.ping, timeout=0.5):
                if process.poll() is not None:
                    raise RuntimeError(f"celery worker exited with {process.returncode}")
        yield WorkerProcess(metrics_dir.name)
    finally:
        process.terminate()
        await asyncio.to_thread(process.wait, 30)
        app.close()
        metrics_dir.cleanup()
