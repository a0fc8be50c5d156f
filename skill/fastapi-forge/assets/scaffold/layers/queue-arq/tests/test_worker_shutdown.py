"""SIGTERM, as every deploy sends it, lets the worker's running jobs finish within
WORKER_SHUTDOWN_WAIT_SECONDS (no new job is taken meanwhile); a job still running after
that is stopped and recorded as failed ("interrupted"), never left `running`."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import pytest

from .conftest import SettingsFactory
from .helpers import app_client, settings_env
from .test_jobs import TERMINAL, submit, wait_for
from .test_worker_redis_outage import read, start_worker, stopped_at_exit, wait_for_log

pytestmark = pytest.mark.uses_database

DELAY = 0.05  # seconds per word of the fake agent
WORDS = 60  # a job of about 3 s


async def stop_with_a_running_job(
    make_settings: SettingsFactory,
    headers: dict[str, str],
    tmp_path: Path,
    wait_seconds: int,
) -> tuple[dict[str, object], dict[str, object], float, int]:
    """Starts a worker, runs a ~3 s job, sends SIGTERM once it runs, submits another job;
    returns both jobs as they end up, the seconds from SIGTERM to exit, the exit status."""
    settings = make_settings(fake_agent_delay_seconds=DELAY, log_json=False)
    env = {
        **os.environ,
        **settings_env(settings),
        "WORKER_SHUTDOWN_WAIT_SECONDS": str(wait_seconds),
    }
    log = tmp_path / "worker.log"
    process = await start_worker(env, log, tmp_path)
    with stopped_at_exit(process):
        await wait_for_log(process, log, "Starting worker", within=60)
        async with app_client(settings) as client:
            first = await submit(client, headers, " ".join(["word"] * WORDS))
            await wait_for(client, first, headers, {"running"} | TERMINAL)
            process.send_signal(signal.SIGTERM)
            stopped = time.monotonic()
            await asyncio.sleep(0.5)
            second = await submit(client, headers, "submitted during the shutdown")
            status = await asyncio.to_thread(process.wait, 60)
            took = time.monotonic() - stopped
            finished = await wait_for(client, first, headers, TERMINAL, within=5)
            await asyncio.sleep(0.5)
            waiting = (await client.get(f"/agents/jobs/{second}", headers=headers)).json()
    assert "Traceback" not in read(log), read(log)
    return finished, waiting, took, status


async def test_sigterm_lets_the_running_job_finish(
    make_settings: SettingsFactory, headers: dict[str, str], tmp_path: Path
) -> None:
    finished, waiting, took, status = await stop_with_a_running_job(
        make_settings, headers, tmp_path, wait_seconds=30
    )
    assert finished["status"] == "completed", finished
    assert waiting["status"] == "queued", waiting  # left for the next worker
    assert status == 0
    assert took < 30


async def test_sigterm_stops_a_job_that_outlasts_the_wait(
    make_settings: SettingsFactory, headers: dict[str, str], tmp_path: Path
) -> None:
    finished, _, took, status = await stop_with_a_running_job(
        make_settings, headers, tmp_path, wait_seconds=1
    )
    assert finished["status"] == "failed", finished
    assert finished["error"] == "interrupted: the worker stopped", finished
    assert status == 0
    assert took < 1 + 10, f"the worker took {took:.1f}s to exit"
