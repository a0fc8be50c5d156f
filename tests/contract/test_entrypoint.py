"""The generated project starts with `fastapi run` too (pyproject's [tool.fastapi]
entrypoint), not only with `uvicorn --factory` as the contract targets do."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from forge_testing import free_port, redis_database, spawn, wait_until

from .conftest import TOKENS, common_env

pytestmark = pytest.mark.e2e


def test_fastapi_run_serves_the_app(
    contract_project: Path, redis_base_url: str, tmp_path: Path
) -> None:
    port = free_port()
    with redis_database(redis_base_url) as redis_url:
        env = common_env(contract_project, redis_url)
        fastapi = contract_project / ".venv" / "bin" / "fastapi"
        process = spawn(
            "fastapi-run",
            [str(fastapi), "run", "--host", "127.0.0.1", "--port", str(port)],
            log_dir=tmp_path,
            cwd=contract_project,
            env=env,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            wait_until(
                process,
                lambda: httpx.get(f"{url}/health", timeout=2).status_code == 200,
                "200 from /health",
                120,
            )
            headers = TOKENS.bearer("entry")
            me = httpx.get(f"{url}/me", headers=headers, timeout=10)
        finally:
            process.stop()
    assert me.status_code == 200, me.text
    assert me.json()["subject"] == "entry"
    assert "contract_app.asgi:app" in process.log_text()
