"""single_api.py with zero setup: one real uvicorn process in an empty folder, driven
over HTTP, SSE and WebSocket from outside."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from templates.helpers import (
    TEMPLATES,
    Server,
    bearer,
    log_records,
    make_token,
    metric_value,
    read_sse,
    start_template,
    unsigned_token,
    wait_for_job,
)

LONG_PROMPT = " ".join(
    f"word{i}" for i in range(200)
)  # 200 x 0.05 s = 10 s of fake agent
RATE_LIMIT = 8


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("zero-setup")


@pytest.fixture(scope="module")
def server(workdir: Path) -> Iterator[Server]:
    env = {
        "FAKE_AGENT_DELAY_SECONDS": "0.05",
        "SSE_HEARTBEAT_SECONDS": "0.02",
        "RATE_LIMIT_REQUESTS": str(RATE_LIMIT),
        "RATE_LIMIT_WINDOW_SECONDS": "60",
        "JOB_POLL_SECONDS": "0.2",
        "WS_AUTH_TIMEOUT_SECONDS": "1",
    }
    server = start_template("single_api", cwd=workdir, env=env)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def secret(server: Server, workdir: Path) -> str:
    """Zero setup signs with a generated secret: get a token from the `token` command
    (the documented way), and read the secret to forge the bad ones."""
    out = subprocess.run(
        [sys.executable, str(TEMPLATES / "single_api.py"), "token", "first-user"],
        cwd=workdir,
        capture_output=True,
        text=True,
        check=True,
    )
    token = out.stdout.strip().splitlines()[-1]
    value = (workdir / ".forge-dev-secret").read_text().strip()
    assert make_token("first-user", secret=value).split(".")[0] == token.split(".")[0]
    response = httpx.post(
        f"{server.url}/agents/run",
        json={"prompt": "hi"},
        headers=bearer(token),
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return value


@pytest.fixture
async def client(server: Server) -> httpx.AsyncClient:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        yield client  # type: ignore[misc]


@pytest.fixture
def auth(secret: str) -> dict[str, str]:
    """A fresh user per test, so the per-user rate limit never couples tests."""
    return bearer(make_token(secret=secret))


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
    assert (workdir / "forge_app.db").is_file()


async def test_health_and_readiness(client: httpx.AsyncClient) -> None:
    assert (await client.get("/health")).json()["status"] == "ok"
    ready = await client.get("/health/ready")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "checks": {"database": "ok"}}


async def test_run_returns_text_usage_and_request_id(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    response = await client.post(
        "/agents/run",
        json={"prompt": "alpha beta gamma delta", "model": "model-x"},
        headers={**auth, "X-Request-ID": "req-123"},
    )
    assert response.status_code == 200, response.text
    assert response.headers["x-request-id"] == "req-123"
    body = response.json()
    assert body["text"] == "alpha beta gamma delta"
    assert body["usage"][0] == {
        "model": "model-x",
        "input_tokens": 4,
        "output_tokens": 4,
        "cache_read_tokens": 0,
        "cache_write_tokens": 0,
        "cost_usd": None,
    }
    assert body["tool_calls"][0]["name"] == "word_count"


@pytest.mark.parametrize(
    ("case", "code"),
    [
        ("missing", "not_authenticated"),
        ("garbage", "invalid_token"),
        ("wrong_secret", "invalid_token"),
        ("expired", "token_expired"),
        ("wrong_audience", "invalid_token"),
        ("alg_none", "invalid_token"),
        ("other_algorithm", "invalid_token"),
    ],
)
async def test_auth_rejections(
    client: httpx.AsyncClient, secret: str, case: str, code: str
) -> None:
    tokens = {
        "garbage": "not.a.jwt",
        "wrong_secret": make_token(secret="another-secret-" + "y" * 32),
        "expired": make_token(secret=secret, expires_in=timedelta(minutes=-5)),
        "wrong_audience": make_token(secret=secret, audience="someone-else"),
        "alg_none": unsigned_token(),
        # Right secret, but not the pinned algorithm: the header must not choose it.
        "other_algorithm": make_token(secret=secret, algorithm="HS512"),
    }
    headers = bearer(tokens[case]) if case in tokens else {}
    response = await client.post("/agents/run", json={"prompt": "x"}, headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    error = response.json()["error"]
    assert error["code"] == code
    assert error["request_id"] == response.headers["x-request-id"]


async def test_structured_errors_without_internals(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    missing = await client.get("/nowhere")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"

    invalid = await client.post("/agents/run", json={"prompt": ""}, headers=auth)
    assert invalid.status_code == 422
    error = invalid.json()["error"]
    assert error["code"] == "validation_error"
    assert error["details"][0]["loc"] == ["body", "prompt"]
    assert "input" not in error["details"][0]


async def test_rate_limit_answers_429_with_retry_after(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    statuses = []
    for _ in range(RATE_LIMIT + 3):
        response = await client.post("/agents/run", json={"prompt": "hi"}, headers=auth)
        statuses.append(response.status_code)
    assert statuses[:RATE_LIMIT] == [200] * RATE_LIMIT
    assert statuses[RATE_LIMIT:] == [429] * 3
    assert 1 <= int(response.headers["retry-after"]) <= 60
    assert response.json()["error"]["code"] == "rate_limited"
    # Status polling and cancel stay available to a limited user.
    assert (await client.get("/agents/jobs/none", headers=auth)).status_code == 404


async def test_async_job_completes_with_progress_and_usage(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    started = await client.post(
        "/agents/run/async", json={"prompt": "one two three"}, headers=auth
    )
    assert started.status_code == 202
    job = started.json()
    assert job["status"] == "queued"
    done = await wait_for_job(client, job["job_id"], auth, {"completed", "failed"})
    assert done["status"] == "completed", done
    assert done["result"] == "one two three"
    assert done["progress"] == 1.0
    assert done["usage"][0]["input_tokens"] == 3
    assert done["finished_at"] >= done["started_at"] >= done["created_at"]


async def test_job_of_another_user_is_not_found(
    client: httpx.AsyncClient, auth: dict[str, str], secret: str
) -> None:
    job = (
        await client.post("/agents/run/async", json={"prompt": "a b"}, headers=auth)
    ).json()
    other = bearer(make_token(secret=secret))
    assert (
        await client.get(f"/agents/jobs/{job['job_id']}", headers=other)
    ).status_code == 404
    assert (
        await client.delete(f"/agents/jobs/{job['job_id']}", headers=other)
    ).status_code == 404


async def test_cancel_stops_a_running_job(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    job = (
        await client.post(
            "/agents/run/async", json={"prompt": LONG_PROMPT}, headers=auth
        )
    ).json()
    running = await wait_for_job(client, job["job_id"], auth, {"running"})
    # Wait until progress is being saved, so "it stopped" is observable.
    while running["steps"] == 0:
        await asyncio.sleep(0.1)
        running = (
            await client.get(f"/agents/jobs/{job['job_id']}", headers=auth)
        ).json()

    cancelled = await client.delete(f"/agents/jobs/{job['job_id']}", headers=auth)
    assert cancelled.status_code == 200, cancelled.text
    body = cancelled.json()
    assert body["status"] == "cancelled"
    assert body["error"]["code"] == "cancelled"
    steps = body["steps"]
    assert 0 < steps < 200

    await asyncio.sleep(1.0)
    later = (await client.get(f"/agents/jobs/{job['job_id']}", headers=auth)).json()
    assert later["status"] == "cancelled"
    assert later["steps"] == steps  # the agent really stopped

    again = await client.delete(f"/agents/jobs/{job['job_id']}", headers=auth)
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "job_finished"


async def test_job_timeout_is_recorded(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    job = (
        await client.post(
            "/agents/run/async",
            json={"prompt": LONG_PROMPT, "timeout_seconds": 0.5},
            headers=auth,
        )
    ).json()
    failed = await wait_for_job(client, job["job_id"], auth, {"failed", "completed"})
    assert failed["status"] == "failed"
    assert failed["error"]["code"] == "agent_timeout"


async def test_sync_run_timeout_is_504(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    response = await client.post(
        "/agents/run",
        json={"prompt": LONG_PROMPT, "timeout_seconds": 0.3},
        headers=auth,
    )
    assert response.status_code == 504
    assert response.json()["error"]["code"] == "agent_timeout"


async def test_sse_stream_has_chunks_heartbeats_and_done(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    params = {"prompt": "red green blue yellow", "model": "model-sse"}
    async with client.stream(
        "GET", "/agents/run/stream", params=params, headers=auth
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        read = await read_sse(response.aiter_lines())
    kinds = [event.event for event in read.events]
    assert kinds == [
        "text",
        "text",
        "tool_call",
        "tool_result",
        "text",
        "text",
        "usage",
        "done",
    ]
    text = "".join(
        event.json()["text"] for event in read.events if event.event == "text"
    )
    assert text == "red green blue yellow"
    assert read.events[6].json()["model"] == "model-sse"
    assert read.events[-1].json()["usage"][0]["output_tokens"] == 4
    assert [event.id for event in read.events] == [str(i) for i in range(1, 9)]
    assert "heartbeat" in read.comments  # 0.05 s between words, heartbeat every 0.02 s


async def test_sse_timeout_ends_with_error_event(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    params = {"prompt": LONG_PROMPT, "timeout_seconds": "0.3"}
    async with client.stream(
        "GET", "/agents/run/stream", params=params, headers=auth
    ) as response:
        read = await read_sse(response.aiter_lines())
    assert read.events[-1].event == "error"
    assert read.events[-1].json()["code"] == "agent_timeout"


async def test_sse_rejects_before_streaming(client: httpx.AsyncClient) -> None:
    response = await client.get("/agents/run/stream", params={"prompt": "x"})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"


async def test_sse_client_disconnect_cancels_the_run(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    before = metric_value(
        (await client.get("/metrics")).text,
        "agent_runs_total",
        mode="sse",
        outcome="cancelled",
    )
    async with client.stream(
        "GET", "/agents/run/stream", params={"prompt": LONG_PROMPT}, headers=auth
    ) as response:
        read = await read_sse(response.aiter_lines(), stop_after=3)
        assert len(read.events) == 3
    # Leaving the block closes the connection mid-stream.
    for _ in range(100):
        after = metric_value(
            (await client.get("/metrics")).text,
            "agent_runs_total",
            mode="sse",
            outcome="cancelled",
        )
        if after > before:
            break
        await asyncio.sleep(0.05)
    assert after == before + 1


async def test_websocket_header_auth_ping_run_and_done(
    server: Server, secret: str
) -> None:
    headers = bearer(make_token("ws-user", secret=secret))
    async with connect(f"{server.ws_url}/agents/ws", additional_headers=headers) as ws:
        assert json.loads(await ws.recv()) == {"type": "ready", "subject": "ws-user"}
        await ws.send(json.dumps({"type": "ping"}))
        assert json.loads(await ws.recv()) == {"type": "pong"}
        await ws.send(
            json.dumps({"type": "run", "prompt": "sun moon star", "id": "r1"})
        )
        messages = []
        while True:
            message = json.loads(await ws.recv())
            messages.append(message)
            if message["type"] in ("done", "error"):
                break
    assert all(message["run_id"] == "r1" for message in messages)
    assert (
        "".join(m["text"] for m in messages if m["type"] == "text") == "sun moon star"
    )
    assert [m["type"] for m in messages][-2:] == ["usage", "done"]


async def test_websocket_message_auth_and_cancel(server: Server, secret: str) -> None:
    async with connect(f"{server.ws_url}/agents/ws") as ws:
        await ws.send(
            json.dumps({"type": "auth", "token": make_token("browser", secret=secret)})
        )
        assert json.loads(await ws.recv())["type"] == "ready"
        await ws.send(json.dumps({"type": "run", "prompt": LONG_PROMPT, "id": "long"}))
        first = json.loads(await ws.recv())
        assert first["type"] == "text"
        # Ping is answered while a run streams.
        await ws.send(json.dumps({"type": "ping"}))
        await ws.send(json.dumps({"type": "cancel"}))
        seen = []
        while True:
            message = json.loads(await ws.recv())
            seen.append(message["type"])
            if message["type"] == "cancelled":
                assert message["run_id"] == "long"
                break
        assert "pong" in seen
        assert "done" not in seen
        await ws.send(json.dumps({"type": "ping"}))
        assert json.loads(await ws.recv()) == {"type": "pong"}


@pytest.mark.parametrize(
    "how", ["bad_header", "bad_message", "alg_none_message", "silence"]
)
async def test_websocket_auth_failure_closes_with_1008(
    server: Server, how: str
) -> None:
    headers = bearer("nope") if how == "bad_header" else {}
    async with connect(f"{server.ws_url}/agents/ws", additional_headers=headers) as ws:
        if how == "bad_message":
            await ws.send(json.dumps({"type": "run", "prompt": "no auth first"}))
        elif how == "alg_none_message":
            await ws.send(json.dumps({"type": "auth", "token": unsigned_token()}))
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1008


async def test_metrics_export_tokens_per_model(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    await client.post(
        "/agents/run", json={"prompt": "one two", "model": "metric-model"}, headers=auth
    )
    text = (await client.get("/metrics")).text
    assert (
        metric_value(text, "agent_tokens_total", model="metric-model", kind="input")
        == 2
    )
    assert (
        metric_value(text, "agent_tokens_total", model="metric-model", kind="output")
        == 2
    )
    assert metric_value(text, "agent_runs_total", mode="sync", outcome="completed") >= 1
    assert (
        metric_value(text, "http_requests_total", route="/agents/run", status="200")
        >= 1
    )


def test_log_lines_are_json_with_request_id(server: Server) -> None:
    requests = [r for r in log_records(server) if r.get("event") == "request"]
    assert requests
    assert all(len(r["request_id"]) >= 1 and r["level"] == "info" for r in requests)
    assert any(r["request_id"] == "req-123" for r in requests)
