"""No credential reaches the logs: a token and an API key sent through the paths that fail
(an exception in a route, a database error with the key as a bound parameter, refused
authentication) appear in no line the real process writes to stdout or stderr."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from forge_testing import redis_database, start_uvicorn, throwaway_database

from .conftest import HERE, TARGETS, TEMPLATES, TOKENS, common_env

pytestmark = pytest.mark.e2e


@pytest.fixture(params=[*TARGETS, "project_unconfigured"])
def failing_target(
    request: pytest.FixtureRequest,
    contract_project: Path,
    pg_admin_url: str,
    redis_base_url: str,
    tmp_path: Path,
) -> Iterator[tuple[str, httpx.Client, Path]]:
    name: str = request.param
    with (
        throwaway_database(pg_admin_url, prefix="secrets") as database_url,
        redis_database(redis_base_url) as redis_url,
    ):
        env = common_env(contract_project, redis_url, DATABASE_URL=database_url)
        if name == "project_unconfigured":
            env["LOG_JSON"] = (
                "false"  # unused without configure_logging; as in local work
            )
        env |= {
            "FORGE_TARGET": name,
            "PYTHONPATH": f"{contract_project / 'src'}:{TEMPLATES}:{HERE}",
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        server = start_uvicorn(
            "failing_app:create_app",
            factory=True,
            python=contract_project / ".venv" / "bin" / "python",
            cwd=HERE,
            env=env,
            log_dir=tmp_path,
            name=f"failing-{name}",
        )
        try:
            # A new connection per request: a server may close one after a 500.
            limits = httpx.Limits(max_keepalive_connections=0)
            with httpx.Client(base_url=server.url, timeout=30, limits=limits) as client:
                yield name, client, server.process.log_path
        finally:
            server.stop()


def test_credentials_never_reach_the_logs(
    failing_target: tuple[str, httpx.Client, Path],
) -> None:
    name, client, log_path = failing_target
    token = TOKENS.token(f"leak-{uuid.uuid4().hex[:8]}")
    api_key = f"sk-forge-{uuid.uuid4().hex}"
    forged = TOKENS.token("intruder", secret="not-the-secret-" + "y" * 40)
    credentials = {"Authorization": f"Bearer {token}", "X-API-Key": api_key}
    failed = client.get("/fail/route", headers=credentials)
    assert failed.status_code == 500, failed.text
    if name != "agent_routes":  # the one target without a database
        failed = client.get("/fail/database", headers=credentials)
        assert failed.status_code == 500, failed.text
    refused = client.post(
        "/agents/run",
        json={"prompt": "hi"},
        headers={"Authorization": f"Bearer {forged}", "X-API-Key": api_key},
    )
    assert refused.status_code == 401, refused.text
    logs = log_path.read_text(errors="replace")
    assert "the route failed" in logs or "RuntimeError" in logs, logs[-3000:]
    secrets = {
        "token": token,
        "token signature": token.rsplit(".", 1)[1],
        "forged token signature": forged.rsplit(".", 1)[1],
        "API key": api_key,
    }
    leaked = {
        what: [line[:300] for line in logs.splitlines() if value in line]
        for what, value in secrets.items()
    }
    assert not any(leaked.values()), leaked
