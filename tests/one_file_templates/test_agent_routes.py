"""What only agent_routes.py promises, beyond the contract (tests/contract runs that):
it imports on its own, and it leaves the host app's own error shape alone."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
import redis
from forge_testing import TEMPLATES, Server, start_uvicorn
from forge_testing.tokens import JwtMinter

SECRET = "host-secret-" + "z" * 32
HOST_APP_DIR = Path(__file__).resolve().parents[1] / "contract"
LEASE = 3.0


def test_module_imports_standalone() -> None:
    # -I: no PYTHONPATH, user site or current folder: only the template folder. -I also
    # ignores PYTHONDONTWRITEBYTECODE, so -B keeps __pycache__ out of the skill (HYG001).
    code = (
        f"import sys; sys.path.insert(0, {str(TEMPLATES)!r}); import agent_routes;"
        " print(agent_routes.install_agent_routes.__name__)"
    )
    out = subprocess.run(
        [sys.executable, "-I", "-B", "-c", code],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "install_agent_routes"


def test_the_host_keeps_its_error_shape(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(TEMPLATES))
    import agent_routes
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    host = FastAPI()

    @host.get("/items/{number}")
    async def item(number: int) -> dict[str, int]:
        return {"number": number}

    agent_routes.install_agent_routes(
        host,
        runner=agent_routes.FakeRunner(),
        verify_token=agent_routes.jwt_verifier(SECRET, audience="host", issuer="host"),
        settings=agent_routes.AgentSettings(redis_url=redis_url),
    )
    with TestClient(host) as client:
        own = client.get("/items/not-a-number")
        agents = client.post(
            "/agents/run",
            json={},
            headers=JwtMinter(SECRET, "host", "host", lifetime=60).bearer("ann"),
        )
    assert own.status_code == 422
    assert "detail" in own.json()  # FastAPI's default, untouched
    assert agents.status_code == 422
    assert agents.json()["error"]["code"] == "validation_error"


def host_app(tmp_path: Path, redis_url: str, prefix: str) -> Server:
    """The contract suite's host app (agent_routes.py mounted), one uvicorn process."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "JWT_"))},
        "PYTHONPATH": f"{TEMPLATES}{os.pathsep}{HOST_APP_DIR}",
        "PYTHONDONTWRITEBYTECODE": "1",  # no __pycache__ in the skill's templates
        "REDIS_URL": redis_url,
        "REDIS_KEY_PREFIX": prefix,
        "JWT_SECRET": SECRET,
        "JWT_AUDIENCE": "host",
        "JWT_ISSUER": "host",
        "FAKE_AGENT_DELAY_SECONDS": "0.1",
        "JOB_HEARTBEAT_SECONDS": "0.5",
        "JOB_LEASE_SECONDS": str(LEASE),
    }
    return start_uvicorn(
        "host_app:create_app",
        factory=True,
        log_dir=tmp_path / "logs",
        python=sys.executable,
        cwd=HOST_APP_DIR,
        env=env,
        name="host-app",
    )


def test_a_killed_workers_job_is_failed_when_its_lease_expires(
    tmp_path: Path, redis_url: str
) -> None:
    """Jobs run inside the worker that took them: one killed outright (SIGKILL, OOM)
    records nothing, and its job must not stay `running` for ever. Another process fails
    it once its lease is older than JOB_LEASE_SECONDS (never re-run: it spent tokens)."""
    prefix = f"lease-{uuid.uuid4().hex[:8]}:"
    auth = JwtMinter(SECRET, "host", "host", lifetime=600).bearer("ann")
    first = host_app(tmp_path, redis_url, prefix)
    try:
        words = " ".join(["slow"] * 300)  # ~30 s of fake agent output
        submitted = httpx.post(
            f"{first.url}/agents/run/async", json={"prompt": words}, headers=auth
        )
        assert submitted.status_code == 202, submitted.text
        job_url = f"/agents/jobs/{submitted.json()['job_id']}"
        deadline = time.monotonic() + 15
        while (
            httpx.get(first.url + job_url, headers=auth).json()["status"] != "running"
        ):
            assert time.monotonic() < deadline, "the job never started"
            time.sleep(0.1)
        time.sleep(1)  # a few renewals of the lease
        first.process.signal_group(signal.SIGKILL)
        first.process.popen.wait(10)
        killed = time.monotonic()
    finally:
        first.stop()
    second = host_app(tmp_path, redis_url, prefix)
    try:
        deadline = time.monotonic() + LEASE + 20
        while (job := httpx.get(second.url + job_url, headers=auth).json())[
            "status"
        ] == "running":
            assert time.monotonic() < deadline, f"still running: {job}"
            time.sleep(0.2)
        took = time.monotonic() - killed
    finally:
        second.stop()
    assert job["status"] == "failed", job
    assert job["error"] == "interrupted: the worker stopped", job
    assert took < LEASE + 20


def test_a_submit_that_fails_leaves_no_idempotency_key_without_its_job(
    tmp_path: Path, redis_url: str
) -> None:
    """POST /agents/run/async with an Idempotency-Key writes the key and the job in one
    step. Here Redis refuses the job's write (an ACL without HSET), the failure between
    the two writes a crash could also cause: no key may be left without its job (it
    made retries wait for 10 s and fail with 409 for a minute, then start another job).
    Once Redis takes writes again, the retry starts the job and a second retry replays it."""
    admin = redis.Redis.from_url(redis_url, decode_responses=True)
    user, password = f"no-hset-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    admin.acl_setuser(
        user,
        enabled=True,
        passwords=[f"+{password}"],
        keys=["*"],
        channels=["*"],
        commands=["+@all", "-hset"],
    )
    parts = urlsplit(redis_url)
    limited = f"redis://{user}:{password}@{parts.netloc}{parts.path}"
    prefix = f"idem-{uuid.uuid4().hex[:8]}:"
    server = host_app(tmp_path, limited, prefix)
    headers = {
        **JwtMinter(SECRET, "host", "host", lifetime=600).bearer("ann"),
        "Idempotency-Key": str(uuid.uuid4()),
    }
    try:
        with httpx.Client(base_url=server.url, headers=headers, timeout=30) as client:
            failed = client.post("/agents/run/async", json={"prompt": "hi"})
            assert failed.status_code >= 500, failed.text
            keys = admin.keys(f"{prefix}idempotency:*")
            assert keys == [], {key: admin.get(key) for key in keys}
            # acl_setuser sends `off` unless told otherwise: new connections could not log in.
            admin.acl_setuser(user, enabled=True, commands=["+hset"])
            first = client.post("/agents/run/async", json={"prompt": "hi"})
            assert first.status_code == 202, first.text
            again = client.post("/agents/run/async", json={"prompt": "hi"})
            assert again.status_code == 202, again.text
    finally:
        server.stop()
        admin.acl_deluser(user)
        admin.close()
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json()["job_id"] == first.json()["job_id"]
