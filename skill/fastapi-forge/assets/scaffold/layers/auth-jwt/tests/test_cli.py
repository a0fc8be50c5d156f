"""`python -m forge_app.cli dev-token`: the token it prints is accepted; never in prod."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx

from .auth_support import TEST_SECRET


def dev_token(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    # Run in an empty folder with the settings in the environment: no `.env` is involved.
    return subprocess.run(  # noqa: S603 - fixed argv
        [sys.executable, "-m", "forge_app.cli", "dev-token", *args],
        cwd=tmp_path,
        env={**os.environ, "JWT_SECRET": TEST_SECRET, **env},
        capture_output=True,
        text=True,
        check=False,
    )


async def test_dev_token_is_accepted_by_the_app(client: httpx.AsyncClient, tmp_path: Path) -> None:
    result = dev_token(tmp_path, "--sub", "alice", ENVIRONMENT="dev")
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip()
    response = await client.get("/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert response.json()["subject"] == "alice"


def test_dev_token_refuses_to_run_in_prod(tmp_path: Path) -> None:
    result = dev_token(tmp_path, "--sub", "alice", ENVIRONMENT="prod")
    assert result.returncode == 1
    assert result.stdout == ""
    assert "ENVIRONMENT=prod" in result.stderr


def test_dev_token_without_a_secret_says_which_setting(tmp_path: Path) -> None:
    result = dev_token(tmp_path, "--sub", "alice", JWT_SECRET="short")
    assert result.returncode == 1
    assert result.stdout == ""
    assert "JWT_SECRET: Value error, JWT_SECRET must be at least 32 bytes" in result.stderr
    assert "short" not in result.stderr  # the (bad) secret itself is never printed
