"""Generated projects work from their own README, top to bottom: every shell command of
the README, literally and in order (`shell.py` says which blocks run and how), in a freshly
generated project, against real PostgreSQL and Redis: the default Tier 1 project (and, with
FORGE_README_LITERAL_ALL=1, an `--auth apikey` one) and a Tier 2 system.

The machine is a developer's as the README's "Before you start" describes it: Python, uv,
and the services, which here are `scripts/services`' throwaway ones, reached through the
variables the README says to set when they are not on the default ports (REDIS_URL and
DATABASE_URL; the project's tests derive their own database from it); nothing else of this
test process's environment leaks in. The API listens on the README's port 8000; one run at a time per machine (a lock).

On failure the transcript (every command, its output and exit status, and the output of
the other terminals) is printed; it is always saved to .cache/generated_readme/<project>.txt
for quoting.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import os
import re
import shutil
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from forge_testing import (
    REPO_ROOT,
    UV_CACHE_DIR,
    drop_database,
    redis_database,
)
from forge_testing.scaffolding import DEFAULT, Combo, scaffold
from forge_testing.venvs import BASE_PYTHON, UV

from .shell import ReadmeRun, fenced_blocks

pytestmark = pytest.mark.e2e

README_PORT = 8000
TRANSCRIPTS = REPO_ROOT / ".cache" / "generated_readme"
LOCK = Path("/tmp/fastapi-forge-readme-literal.lock")

COMBOS = (
    # The defaults: PostgreSQL, a JWT from the dev-token command, the ARQ worker.
    dataclasses.replace(DEFAULT, name="readme-default"),
    # The other credential a README hands out itself: an API key registered in `.env`.
    # 4-5 minutes more, mostly the project's own tests again: only with
    # FORGE_README_LITERAL_ALL=1 (CI keeps to the default project and Tier 2).
    dataclasses.replace(DEFAULT, name="readme-apikey", auth="apikey"),
)


def time_limit(command: str) -> float:
    """Seconds a command may take: installs and the test suite are the slow ones."""
    if "pytest" in command or command.startswith(("uv ", "pip ", "python3 -m venv")):
        return 900
    return 120


@contextlib.contextmanager
def one_run_per_machine(port: int = README_PORT) -> Iterator[None]:
    with LOCK.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                pytest.fail(
                    f"port {port} (the README's) is taken by another process; "
                    "stop it and run again",
                    pytrace=False,
                )
        yield


def drop(admin_url: str, *names: str) -> None:
    for name in names:
        drop_database(admin_url, name)


# How this machine reaches the package index (proxies, CA bundles, index settings): part of
# any shell here, and nothing the README is about.
NETWORK_VARIABLES = re.compile(
    r"(?i)(proxy|^SSL_CERT_|CA_BUNDLE|^PIP_(INDEX|EXTRA_INDEX|CERT|TRUSTED_HOST|FIND_LINKS)"
    r"|^UV_(INDEX|DEFAULT_INDEX|EXTRA_INDEX|NATIVE_TLS|SYSTEM_CERTS|INSECURE_HOST))"
)


def developer_env(home: Path, bin_dir: Path, **services: str) -> dict[str, str]:
    """A login shell's environment on a developer machine: PATH with Python and uv, the
    machine's network settings, and the services' variables."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    (bin_dir / "uv").symlink_to(UV)
    python_bin = BASE_PYTHON.parent
    path = os.pathsep.join(
        [str(bin_dir), str(python_bin), "/usr/local/bin", "/usr/bin", "/bin"]
    )
    network = {k: v for k, v in os.environ.items() if NETWORK_VARIABLES.search(k)}
    return {
        **network,
        "PATH": path,
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "TERM": "dumb",
        # This machine's cache; its interpreter is the first on PATH. Not UV_PYTHON: that
        # would point `uv pip` at the base interpreter instead of the activated .venv.
        "UV_CACHE_DIR": os.environ.get("UV_CACHE_DIR", str(UV_CACHE_DIR)),
        "UV_PYTHON_DOWNLOADS": "never",
        "UV_NO_PROGRESS": "1",
        **services,
    }


def selected_combos() -> list[Combo]:
    if os.environ.get("FORGE_README_LITERAL_ALL") == "1":
        return list(COMBOS)
    return [COMBOS[0]]


@pytest.mark.parametrize("combo", selected_combos(), ids=str)
def test_readme_commands_work_in_order(
    combo: Combo, tmp_path: Path, pg_admin_url: str, redis_base_url: str
) -> None:
    project = combo.scaffold(tmp_path)
    readme = (project / "README.md").read_text()
    blocks = fenced_blocks(readme)
    assert any(block.kind == "run" for block in blocks), (
        "no runnable block in the README"
    )

    database = combo.package
    test_database = f"{combo.package}_test"
    pg = urlsplit(pg_admin_url)
    server = f"postgresql+asyncpg://{pg.netloc}"
    drop(pg_admin_url, database, test_database)
    run: ReadmeRun | None = None
    started = time.monotonic()
    try:
        with redis_database(redis_base_url) as redis_url, one_run_per_machine():
            env = developer_env(
                tmp_path / "home",
                tmp_path / "bin",
                REDIS_URL=redis_url,
                DATABASE_URL=f"{server}/{database}",
            )
            (tmp_path / "home").mkdir(exist_ok=True)
            run = ReadmeRun(project, env, tmp_path, time_limit)
            try:
                run.run(blocks)
            except AssertionError as error:
                pytest.fail(
                    f"{error}\n\n--- transcript ---\n{run.text()}", pytrace=False
                )
    finally:
        drop(pg_admin_url, database, test_database)
        if run is not None:
            TRANSCRIPTS.mkdir(parents=True, exist_ok=True)
            saved = TRANSCRIPTS / f"{combo.name}.txt"
            saved.write_text(run.text())
            print(
                f"\n[readme] {combo}: {time.monotonic() - started:.0f}s, transcript {saved}"
            )
            shutil.rmtree(Path(f"/tmp/{combo.name}-metrics"), ignore_errors=True)

    outputs = run.outputs
    me = next(output for command, output in outputs.items() if "/me" in command)
    assert '"subject":"alice"' in me, me
    job = next(
        output
        for command, output in reversed(outputs.items())
        if "/agents/jobs/$JOB" in command
    )
    assert '"status":"completed"' in job, job
    tests = next(
        output for command, output in outputs.items() if command.startswith("pytest")
    )
    assert " passed" in tests and "skipped" not in tests, tests
    for background in run.backgrounds:
        # Ctrl-C stops the API and the worker cleanly.
        assert background.exit_code in (0, -2, 130), (
            f"terminal for README line {background.block.line} exited "
            f"{background.exit_code}:\n{background.output()}"
        )


def save(run: ReadmeRun, name: str, seconds: float) -> None:
    TRANSCRIPTS.mkdir(parents=True, exist_ok=True)
    saved = TRANSCRIPTS / f"{name}.txt"
    saved.write_text(run.text())
    print(f"\n[readme] {name}: {seconds:.0f}s, transcript {saved}")


TIER2_NAME = "readme-shop"
# The databases the Tier 2 README creates (and agent-service's tests derive), dropped after.
TIER2_DATABASES = (
    "users",
    "notifications",
    "test_users",
    "test_notifications",
    "agents_test",
)


def test_tier2_readme_commands_work_in_order(
    tmp_path: Path, pg_admin_url: str, redis_base_url: str
) -> None:
    """Tier 2's README (install, every package's tests, one service by hand), literally."""
    project = tmp_path / TIER2_NAME
    scaffold(project, tier=2, name=TIER2_NAME)
    blocks = fenced_blocks((project / "README.md").read_text())
    package = TIER2_NAME.replace("-", "_")
    databases = [f"{package}_{suffix}" for suffix in TIER2_DATABASES]
    pg = urlsplit(pg_admin_url)
    drop(pg_admin_url, *databases)
    run: ReadmeRun | None = None
    started = time.monotonic()
    try:
        with redis_database(redis_base_url) as broker_url, one_run_per_machine(8001):
            (tmp_path / "home").mkdir()
            env = developer_env(
                tmp_path / "home",
                tmp_path / "bin",
                PGHOST=pg.hostname or "127.0.0.1",
                PGPORT=str(pg.port or 5432),
                PGUSER=pg.username or "postgres",
                BROKER_URL=broker_url,
            )
            run = ReadmeRun(project, env, tmp_path, time_limit)
            try:
                run.run(blocks)
            except AssertionError as error:
                pytest.fail(
                    f"{error}\n\n--- transcript ---\n{run.text()}", pytrace=False
                )
    finally:
        drop(pg_admin_url, *databases)
        if run is not None:
            save(run, TIER2_NAME, time.monotonic() - started)

    ran = [command for command in run.outputs if "pytest" in command]
    assert len(ran) >= 4, ran
    for command in ran:
        assert " passed" in run.outputs[command], run.outputs[command]
        assert "skipped" not in run.outputs[command], run.outputs[command]
    assert any("agent-service" in command for command in ran)
