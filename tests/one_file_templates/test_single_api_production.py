"""single_api.py keeps rate limits and tickets in process memory without REDIS_URL: a
zero-setup dev mode only. With ENVIRONMENT=prod it must refuse to start, saying why."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from forge_testing import TEMPLATES, free_port


def test_prod_without_redis_refuses_to_start(tmp_path: Path) -> None:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DATABASE_URL", "REDIS_URL", "JWT_", "ENVIRONMENT"))
    }
    # The template folder is in the skill: no bytecode cache may be left there.
    env |= {
        "ENVIRONMENT": "prod",
        "JWT_SECRET": "p" * 40,
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    command = [sys.executable, "-m", "uvicorn", "--factory", "single_api:create_app"]
    command += ["--app-dir", str(TEMPLATES), "--port", str(free_port())]
    # Before the check existed, the server simply started: the timeout is the failure.
    result = subprocess.run(
        command,
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0, result.stderr
    assert "REDIS_URL is required when ENVIRONMENT=prod" in result.stderr, result.stderr
    assert "zero-setup dev mode" in result.stderr
    # Refused before anything was created in the working directory.
    assert not (tmp_path / "forge_app.db").exists()
