"""What only agent_routes.py promises, beyond the contract (tests/contract runs that):
it imports on its own, and it leaves the host app's own error shape alone."""

from __future__ import annotations

import subprocess
import sys

import pytest
from forge_testing import TEMPLATES
from forge_testing.tokens import JwtMinter

SECRET = "host-secret-" + "z" * 32


def test_module_imports_standalone() -> None:
    # -I: no PYTHONPATH, user site or current folder: only the template folder.
    code = (
        f"import sys; sys.path.insert(0, {str(TEMPLATES)!r}); import agent_routes;"
        " print(agent_routes.install_agent_routes.__name__)"
    )
    out = subprocess.run(
        [sys.executable, "-I", "-c", code], capture_output=True, text=True, check=True
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
