"""single_api.py with zero setup: one real uvicorn process in an empty folder, no
database server, no Redis. What only this mode does: SQLite, the dev secret and the
`token` command, in-process rate limits and tickets, timeouts on a short setting. The
contract itself is tests/contract's (PostgreSQL + Redis, two workers)."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from forge_testing import TEMPLATES
from forge_testing.jobs import await_job
from forge_testing.tokens import bearer
from websockets.asyncio.client import connect

from one_file_templates.helpers import (
    TOKENS,
    Server,
    log_records,
    read_sse,
    start_template,
)

RATE_LIMIT = 100  # polling a job costs requests too
SLOW_PROMPT = " ".join(f"w{i}" for i in range(40))  # 40 x 0.05 s: past the timeout


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("zero-setup")


@pytest.fixture(scope="module")
def server(workdir: Path) -> Iterator[Server]:
    env = {
        "FAKE_AGENT_DELAY_SECONDS": "0.05",
        "AGENT_TIMEOUT_SECONDS": "1",
        "RATE_LIMIT_REQUESTS": str(RATE_LIMIT),
        "RATE_LIMIT_WINDOW_SECONDS": "60",
        "JOB_POLL_SECONDS": "0.2",
    }
    server = start_template("single_api", cwd=workdir, env=env)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def secret(server: Server, workdir: Path) -> str:
    """Zero setup signs with a generated secret: a token from the `token` command (the
    documented way) must be accepted; the secret file lets the tests mint more."""
    out = subprocess.run(
        [sys.executable, str(TEMPLATES / "single_api.py"), "token", "first-user"],
        cwd=workdir,
        capture_output=True,
        text=True,
        check=True,
    )
    token = out.stdout.strip().splitlines()[-1]
    response = httpx.post(
        f"{server.url}/agents/run",
        json={"prompt": "hi"},
        headers=bearer(token),
        timeout=10,
    )
    assert response.status_code == 200, response.text
    assert response.json()["output"] == "You said: hi"
    return (workdir / ".forge-dev-secret").read_text().strip()


@pytest.fixture
async def client(server: Server) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        yield client


@pytest.fixture
def auth(secret: str) -> dict[str, str]:
    """A fresh user per test, so the per-user rate limit never couples tests."""
    return TOKENS.fresh_caller(secret=secret)


def test_start_up_logs_zero_setup_and_creates_sqlite_file(
    server: Server, workdir: Path
) -> None:
    records = [r for r in log_records(server) if r.get("event") == "startup.zero_setup"]
    assert len(records) == 1, server.process.log_text()
    record = records[0]
    assert record["database"] == "sqlite"
    assert record["rate_limiter"] == "memory"
    assert "in-process job runner" in record["message"]
    assert Path(record["database_file"]) == workdir / "forge_app.db"


async def test_health_and_readiness(client: httpx.AsyncClient) -> None:
    assert (await client.get("/health")).json()["status"] == "ok"
    ready = await client.get("/health/ready")
    assert ready.json() == {"status": "ready", "checks": {"database": "ok"}}


async def test_job_state_lives_in_the_sqlite_file(
    client: httpx.AsyncClient, auth: dict[str, str], workdir: Path
) -> None:
    started = await client.post(
        "/agents/run/async", json={"prompt": "a b c"}, headers=auth
    )
    assert started.status_code == 202, started.text
    job_id = started.json()["job_id"]
    done = await await_job(client, job_id, {"completed", "failed"}, headers=auth)
    assert done["status"] == "completed", done
    with sqlite3.connect(workdir / "forge_app.db") as db:
        row = db.execute(
            "SELECT status, result FROM agent_jobs WHERE id = ?", (job_id,)
        ).fetchone()
    assert row == ("completed", "You said: a b c")


async def test_in_process_rate_limit(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    codes = [
        (await client.get("/agents/jobs/none", headers=auth)).status_code
        for _ in range(RATE_LIMIT + 1)
    ]
    assert codes[:RATE_LIMIT] == [422] * RATE_LIMIT
    assert codes[-1] == 429


async def test_in_process_tickets_are_single_use(
    client: httpx.AsyncClient, auth: dict[str, str], server: Server
) -> None:
    ticket = (await client.post("/auth/tickets", headers=auth)).json()["ticket"]
    async with connect(f"{server.ws_url}/agents/ws?ticket={ticket}") as ws:
        assert json.loads(await ws.recv()) == {"type": "ready"}
    again = await client.get(
        "/agents/run/stream", params={"prompt": "x", "ticket": ticket}
    )
    assert again.status_code == 401
    assert again.json()["error"]["code"] == "invalid_ticket"


async def test_timeouts_run_504_stream_error_job_failed(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    run = await client.post("/agents/run", json={"prompt": SLOW_PROMPT}, headers=auth)
    assert run.status_code == 504
    assert run.json()["error"]["code"] == "agent_timeout"
    async with client.stream(
        "GET", "/agents/run/stream", params={"prompt": SLOW_PROMPT}, headers=auth
    ) as response:
        read = await read_sse(response.aiter_lines())
    assert read.events[-1].event == "error"
    assert "in time" in json.loads(read.events[-1].data)["text"]
    job_id = (
        await client.post(
            "/agents/run/async", json={"prompt": SLOW_PROMPT}, headers=auth
        )
    ).json()["job_id"]
    failed = await await_job(client, job_id, {"failed", "completed"}, headers=auth)
    assert failed["status"] == "failed"
    assert "timed out" in failed["error"]


def test_log_lines_are_json_with_request_id(server: Server) -> None:
    requests = [r for r in log_records(server) if r.get("event") == "request"]
    assert requests
    assert all(len(r["request_id"]) >= 1 and r["level"] == "info" for r in requests)
