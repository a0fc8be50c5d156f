"""A worker killed outright (SIGKILL, the OOM killer, a lost node) cannot record anything:
its running job's lease stops being renewed, and the API's reaper fails the job
("interrupted", never re-run: the run spent tokens) once the lease has expired."""

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
from .test_worker_redis_outage import start_worker, stopped_at_exit, wait_for_log

pytestmark = pytest.mark.uses_database

LEASE = 3.0


async def test_a_killed_workers_job_is_failed_when_its_lease_expires(
    make_settings: SettingsFactory, headers: dict[str, str], tmp_path: Path
) -> None:
    settings = make_settings(
        fake_agent_delay_seconds=0.1,
        job_heartbeat_seconds=0.5,
        job_lease_seconds=LEASE,
        log_json=False,
    )
    log = tmp_path / "worker.log"
    process = await start_worker({**os.environ, **settings_env(settings)}, log, tmp_path)
    with stopped_at_exit(process):
        await wait_for_log(process, log, "Starting worker", within=60)
        async with app_client(settings) as client:
            job_id = await submit(client, headers, " ".join(["slow"] * 300))
            await wait_for(client, job_id, headers, {"running"})
            await asyncio.sleep(1)  # a few renewals of the lease
            process.send_signal(signal.SIGKILL)
            await asyncio.to_thread(process.wait, 10)
            killed = time.monotonic()
            job = await wait_for(client, job_id, headers, TERMINAL, within=LEASE + 15)
            took = time.monotonic() - killed
    assert job["status"] == "failed", job
    assert job["error"] == "interrupted: the worker stopped", job
    assert job["finished_at"] is not None
    assert took < LEASE + 10, f"reaped {took:.1f}s after the kill"
