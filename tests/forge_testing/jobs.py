"""Waiting on an agent job through the job API every app under test has alike
(`GET /agents/jobs/{id}`: the generated projects, single_api.py, agent_routes.py)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any

import httpx


def _settled(response: httpx.Response, until: set[str]) -> dict[str, Any] | None:
    assert response.status_code == 200, response.text
    job: dict[str, Any] = response.json()
    return job if job["status"] in until else None


def wait_for_job(
    client: httpx.Client,
    job_id: str,
    until: set[str],
    *,
    headers: Mapping[str, str] | None = None,
    timeout: float = 60,
) -> dict[str, Any]:
    """The job once its status is one of `until`; fails naming the status it stuck in."""
    deadline = time.monotonic() + timeout
    while True:
        response = client.get(f"/agents/jobs/{job_id}", headers=headers)
        if (job := _settled(response, until)) is not None:
            return job
        assert time.monotonic() < deadline, f"job stuck: {response.json()}"
        time.sleep(0.2)


async def await_job(
    client: httpx.AsyncClient,
    job_id: str,
    until: set[str],
    *,
    headers: Mapping[str, str] | None = None,
    timeout: float = 20,
) -> dict[str, Any]:
    """`wait_for_job` from a test's event loop."""
    deadline = time.monotonic() + timeout
    while True:
        response = await client.get(f"/agents/jobs/{job_id}", headers=headers)
        if (job := _settled(response, until)) is not None:
            return job
        assert time.monotonic() < deadline, f"job stuck: {response.json()}"
        await asyncio.sleep(0.05)
