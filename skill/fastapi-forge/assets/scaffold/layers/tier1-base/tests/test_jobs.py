"""Job lifecycle on a real worker: queued -> running -> completed, failed or cancelled."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from forge_app.config import Settings

from .conftest import SettingsFactory
from .helpers import app_client
from .worker_support import running_worker

pytestmark = pytest.mark.uses_database

TERMINAL = {"completed", "failed", "cancelled"}


async def wait_for(
    client: httpx.AsyncClient,
    job_id: str,
    headers: dict[str, str],
    statuses: set[str],
    within: float = 15,
) -> dict[str, Any]:
    async with asyncio.timeout(within):
        while True:
            response = await client.get(f"/agents/jobs/{job_id}", headers=headers)
            assert response.status_code == 200, response.text
            job: dict[str, Any] = response.json()
            if job["status"] in statuses:
                return job
            await asyncio.sleep(0.05)


async def submit(client: httpx.AsyncClient, headers: dict[str, str], prompt: str) -> str:
    response = await client.post("/agents/run/async", json={"prompt": prompt}, headers=headers)
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["status"] == "queued"
    assert response.headers["location"] == f"/agents/jobs/{body['job_id']}"
    job_id: str = body["job_id"]
    return job_id


async def test_job_completes_with_result_and_usage(
    settings: Settings, headers: dict[str, str]
) -> None:
    async with app_client(settings) as client, running_worker(settings) as worker:
        job_id = await submit(client, headers, "count these words")
        job = await wait_for(client, job_id, headers, TERMINAL)
        metrics = await worker.metrics(client)
    assert job["status"] == "completed", job
    assert job["result"] == "You said: count these words"
    assert job["progress"] == 1.0
    assert job["usage"][0]["model"] == "fake-model"
    assert job["usage"][0]["input_tokens"] == 3
    assert job["started_at"] is not None
    assert job["finished_at"] is not None
    assert 'agent_runs_total{mode="job",outcome="completed"}' in metrics


async def test_running_job_is_cancelled_for_real(
    make_settings: SettingsFactory, headers: dict[str, str]
) -> None:
    settings = make_settings(fake_agent_delay_seconds=0.1, cancel_wait_seconds=5)
    async with app_client(settings) as client, running_worker(settings):
        job_id = await submit(client, headers, " ".join(["slow"] * 300))
        running = await wait_for(client, job_id, headers, {"running"} | TERMINAL)
        assert running["status"] == "running"
        await asyncio.sleep(0.3)
        cancel = await client.delete(f"/agents/jobs/{job_id}", headers=headers)
        assert cancel.status_code == 202, cancel.text
        assert cancel.json()["cancel_requested"] is True
        job = await wait_for(client, job_id, headers, TERMINAL)
        assert job["status"] == "cancelled"
        assert job["cancel_requested"] is True
        assert job["result"] is None
        # The agent really stopped: its progress no longer moves.
        frozen = job["progress"]
        await asyncio.sleep(0.6)
        again = (await client.get(f"/agents/jobs/{job_id}", headers=headers)).json()
        assert again["progress"] == frozen
        assert again["status"] == "cancelled"


async def test_queued_job_is_cancelled_before_it_runs(
    make_settings: SettingsFactory, headers: dict[str, str]
) -> None:
    # One job at a time: the second waits in the queue behind the first.
    settings = make_settings(worker_concurrency=1, fake_agent_delay_seconds=0.1)
    async with app_client(settings) as client, running_worker(settings):
        first = await submit(client, headers, " ".join(["slow"] * 300))
        await wait_for(client, first, headers, {"running"})
        second = await submit(client, headers, "never runs")
        cancel = await client.delete(f"/agents/jobs/{second}", headers=headers)
        assert cancel.status_code == 202
        assert cancel.json()["status"] == "cancelled"
        await client.delete(f"/agents/jobs/{first}", headers=headers)
        await wait_for(client, first, headers, TERMINAL)
        await asyncio.sleep(0.3)
        job = (await client.get(f"/agents/jobs/{second}", headers=headers)).json()
    assert job["status"] == "cancelled"
    assert job["started_at"] is None


async def test_cancelling_a_finished_job_is_409(
    settings: Settings, headers: dict[str, str]
) -> None:
    async with app_client(settings) as client, running_worker(settings):
        job_id = await submit(client, headers, "quick")
        await wait_for(client, job_id, headers, TERMINAL)
        response = await client.delete(f"/agents/jobs/{job_id}", headers=headers)
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "job_finished"


async def test_job_times_out_and_fails(
    make_settings: SettingsFactory, headers: dict[str, str]
) -> None:
    settings = make_settings(fake_agent_delay_seconds=0.2, agent_timeout_seconds=0.5)
    async with app_client(settings) as client, running_worker(settings):
        job_id = await submit(client, headers, " ".join(["slow"] * 50))
        job = await wait_for(client, job_id, headers, TERMINAL)
    assert job["status"] == "failed"
    assert "timed out" in job["error"]


async def test_failing_agent_fails_the_job(
    make_settings: SettingsFactory, headers: dict[str, str]
) -> None:
    settings = make_settings(fake_agent_fail=True)
    async with app_client(settings) as client, running_worker(settings):
        job_id = await submit(client, headers, "boom")
        job = await wait_for(client, job_id, headers, TERMINAL)
    assert job["status"] == "failed"
    assert job["error"] == "the agent failed (FAKE_AGENT_FAIL is set)"


async def test_unknown_job_is_404_and_bad_id_is_422(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    missing = await client.get("/agents/jobs/5b0c6d0e-4a4b-4e8c-9d6e-0d6a3f1b2c3d", headers=headers)
    assert missing.status_code == 404
    assert (await client.get("/agents/jobs/not-a-uuid", headers=headers)).status_code == 422
