"""`python -m forge_app.cli api-key`: the printed key authenticates once its digest is in
API_KEYS; `--env-file` puts it there and keeps the rest of the file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from forge_app.security import AuthSettings, digest

from .conftest import SettingsFactory
from .helpers import app_client


def api_key(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "API_KEYS"}
    return subprocess.run(  # noqa: S603 - fixed argv
        [sys.executable, "-m", "forge_app.cli", "api-key", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def api_keys_in(env_file: Path) -> dict[str, str]:
    # Read the way the app reads it (pydantic-settings' dotenv parsing).
    return AuthSettings(_env_file=env_file).api_keys  # type: ignore[call-arg]


async def test_registered_key_authenticates(tmp_path: Path, make_settings: SettingsFactory) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("APP_NAME=demo\nAPI_KEYS={}\nAPI_KEY_HEADER=X-API-Key\n")
    result = api_key(tmp_path, "alice", "--env-file", ".env")
    assert result.returncode == 0, result.stderr
    key = result.stdout.strip()
    keys = api_keys_in(env_file)
    assert keys == {"alice": digest(key)}
    assert key not in env_file.read_text()  # only the digest is stored
    assert env_file.read_text().startswith("APP_NAME=demo\n")

    async with app_client(make_settings(api_keys=keys)) as client:
        response = await client.get("/me", headers={"X-API-Key": key})
    assert response.status_code == 200
    assert response.json()["subject"] == "alice"


def test_second_client_is_added_and_a_new_key_replaces_the_old(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("API_KEYS={}\n")
    first = api_key(tmp_path, "alice", "--env-file", ".env").stdout.strip()
    bob = api_key(tmp_path, "bob", "--env-file", ".env").stdout.strip()
    second = api_key(tmp_path, "alice", "--env-file", ".env").stdout.strip()
    keys = api_keys_in(env_file)
    assert keys == {"alice": digest(second), "bob": digest(bob)}
    assert digest(first) not in keys.values()
    assert env_file.read_text().count("API_KEYS=") == 1


def test_without_env_file_the_entry_is_printed(tmp_path: Path) -> None:
    result = api_key(tmp_path, "alice")
    assert result.returncode == 0
    key = result.stdout.strip()
    assert json.dumps({"alice": digest(key)}) in result.stderr


def test_broken_api_keys_line_is_named(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("# keys\nAPI_KEYS={alice}\n")
    result = api_key(tmp_path, "alice", "--env-file", ".env")
    assert result.returncode == 1
    assert result.stdout == ""
    assert ".env:2: API_KEYS is not JSON" in result.stderr
