"""agent_routes.py mounted into a bare FastAPI host app (written here, the way a user
would), served by real uvicorn and driven over HTTP, SSE and WebSocket."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from forge_testing import start_uvicorn
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from templates.helpers import (
    TEMPLATES,
    Server,
    bearer,
    make_token,
    read_sse,
    unsigned_token,
    wait_for_job,
)

HOST_APP = """
import os

import jwt
from fastapi import Depends, FastAPI, HTTPException
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from agent_routes import AgentRouteSettings, FakeRunner, build_agent_router

SECRET = os.environ["HOST_JWT_SECRET"]
runs_started = 0


def subject_of(token: str) -> str:
    claims = jwt.decode(token, SECRET, algorithms=["HS256"], audience="forge-agent-api")
    return claims["sub"]


async def current_user(
    credentials: HTTPAuthorizationCredentials = Depends(HTTPBearer()),
) -> str:
    try:
        return subject_of(credentials.credentials)
    except jwt.InvalidTokenError:
        raise HTTPException(401, "invalid token") from None


async def verify_token(token: str) -> str:
    return subject_of(token)


async def count_run() -> None:  # where a host puts its rate limiter
    global runs_started
    runs_started += 1


settings = AgentRouteSettings(sse_heartbeat_seconds=0.02, ws_auth_timeout_seconds=1)
app = FastAPI()
common = dict(authenticate=current_user, verify_token=verify_token, settings=settings)
app.include_router(
    build_agent_router(
        runner=FakeRunner(delay=0.05), run_dependencies=[Depends(count_run)], **common
    ),
    prefix="/agents",
)
app.include_router(
    build_agent_router(runner=FakeRunner(delay=0.01, fail=True), **common),
    prefix="/failing",
)


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@app.get("/runs-started")
async def runs() -> int:
    return runs_started
"""

LONG_PROMPT = " ".join(f"w{i}" for i in range(200))
SECRET = "host-secret-" + "z" * 32


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    workdir = tmp_path_factory.mktemp("host-app")
    (workdir / "host_app.py").write_text(HOST_APP)
    env = {
        **os.environ,
        "HOST_JWT_SECRET": SECRET,
        "PYTHONPATH": os.pathsep.join([str(TEMPLATES), str(workdir)]),
    }
    server = start_uvicorn(
        "host_app:app",
        log_dir=workdir / "logs",
        python=sys.executable,
        cwd=workdir,
        env=env,
        name="host_app",
    )
    yield server
    server.stop()


@pytest.fixture
async def client(server: Server) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as c:
        yield c


@pytest.fixture
def auth() -> dict[str, str]:
    return bearer(make_token(secret=SECRET))


def test_router_module_imports_standalone() -> None:
    # -I: no PYTHONPATH, user site or current folder: only the template folder.
    code = (
        f"import sys; sys.path.insert(0, {str(TEMPLATES)!r}); import agent_routes;"
        " print(agent_routes.build_agent_router.__name__)"
    )
    out = subprocess.run(
        [sys.executable, "-I", "-c", code],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "build_agent_router"


async def test_host_auth_guards_every_route(client: httpx.AsyncClient) -> None:
    for method, path in [
        ("POST", "/agents/run"),
        ("POST", "/agents/run/async"),
        ("GET", "/agents/run/stream?prompt=x"),
        ("GET", "/agents/jobs/abc"),
        ("DELETE", "/agents/jobs/abc"),
    ]:
        missing = await client.request(method, path, json={"prompt": "x"})
        assert missing.status_code in (401, 403), (path, missing.text)
        forged = await client.request(
            method, path, json={"prompt": "x"}, headers=bearer(unsigned_token())
        )
        assert forged.status_code == 401, (path, forged.text)


async def test_run_uses_the_runner_and_host_dependencies(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    before = (await client.get("/runs-started")).json()
    response = await client.post(
        "/agents/run", json={"prompt": "hello host"}, headers=auth
    )
    assert response.status_code == 200
    body = response.json()
    assert body["text"] == "hello host"
    assert body["usage"][0]["input_tokens"] == 2
    assert (await client.get("/runs-started")).json() == before + 1


async def test_run_errors(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    failed = await client.post("/failing/run", json={"prompt": "a b c d"}, headers=auth)
    assert failed.status_code == 502
    assert failed.json()["detail"]["code"] == "agent_error"
    slow = await client.post(
        "/agents/run",
        json={"prompt": LONG_PROMPT, "timeout_seconds": 0.3},
        headers=auth,
    )
    assert slow.status_code == 504
    assert slow.json()["detail"]["code"] == "agent_timeout"


async def test_job_lifecycle_and_owner_isolation(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    started = await client.post(
        "/agents/run/async", json={"prompt": "x y"}, headers=auth
    )
    assert started.status_code == 202
    job = started.json()
    assert "owner" not in job
    done = await wait_for_job(client, job["job_id"], auth, {"completed", "failed"})
    assert done["status"] == "completed"
    assert done["result"] == "x y"
    assert done["usage"][0]["output_tokens"] == 2
    other = bearer(make_token(secret=SECRET))
    assert (
        await client.get(f"/agents/jobs/{job['job_id']}", headers=other)
    ).status_code == 404

    failing = (
        await client.post("/failing/run/async", json={"prompt": "a b"}, headers=auth)
    ).json()
    response = await client.get(f"/failing/jobs/{failing['job_id']}", headers=auth)
    for _ in range(100):
        if response.json()["status"] == "failed":
            break
        await asyncio.sleep(0.05)
        response = await client.get(f"/failing/jobs/{failing['job_id']}", headers=auth)
    assert response.json()["error"]["code"] == "agent_error"


async def test_cancel_running_job(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    job = (
        await client.post(
            "/agents/run/async", json={"prompt": LONG_PROMPT}, headers=auth
        )
    ).json()
    await wait_for_job(client, job["job_id"], auth, {"running"})
    cancelled = await client.delete(f"/agents/jobs/{job['job_id']}", headers=auth)
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    await asyncio.sleep(0.5)
    later = (await client.get(f"/agents/jobs/{job['job_id']}", headers=auth)).json()
    assert later["status"] == "cancelled"
    assert later["result"] is None
    again = await client.delete(f"/agents/jobs/{job['job_id']}", headers=auth)
    assert again.status_code == 409


async def test_sse_stream(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    async with client.stream(
        "GET", "/agents/run/stream", params={"prompt": "one two three"}, headers=auth
    ) as response:
        assert response.status_code == 200
        read = await read_sse(response.aiter_lines())
    kinds = [event.event for event in read.events]
    assert kinds[0] == "text" and kinds[-2:] == ["usage", "done"]
    assert "tool_call" in kinds
    assert "heartbeat" in read.comments
    async with client.stream(
        "GET", "/failing/run/stream", params={"prompt": "one two three"}, headers=auth
    ) as response:
        read = await read_sse(response.aiter_lines())
    assert read.events[-1].event == "error"
    assert read.events[-1].json()["code"] == "agent_error"


async def test_websocket(server: Server) -> None:
    async with connect(f"{server.ws_url}/agents/ws") as ws:
        await ws.send(
            json.dumps({"type": "auth", "token": make_token("ws", secret=SECRET)})
        )
        assert json.loads(await ws.recv()) == {"type": "ready", "subject": "ws"}
        await ws.send(json.dumps({"type": "ping"}))
        assert json.loads(await ws.recv()) == {"type": "pong"}
        await ws.send(json.dumps({"type": "run", "prompt": "a b c", "id": "r"}))
        messages = []
        while not messages or messages[-1]["type"] not in ("done", "error"):
            messages.append(json.loads(await ws.recv()))
        assert messages[-1]["type"] == "done"
        assert all(m["run_id"] == "r" for m in messages)
        assert "".join(m["text"] for m in messages if m["type"] == "text") == "a b c"

    headers = bearer(make_token(secret="wrong-" + "q" * 32))
    async with connect(f"{server.ws_url}/agents/ws", additional_headers=headers) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
