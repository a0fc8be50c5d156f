"""A generated Tier 1 project works from its own README, top to bottom: every shell command
of the README, literally and in order (`shell.py` says which blocks run and how), in a
freshly generated project, against real PostgreSQL and Redis.

The machine is a developer's as the README's "Before you start" describes it: Python, uv,
and the services, which here are `scripts/services`' throwaway ones, reached through the
variables the README says to set when they are not on the default ports (REDIS_URL and
DATABASE_URL; the project's tests derive their own database from it); nothing else of this
test process's environment leaks in. The API listens on the README's port 8000; one run at a time per machine (a lock).

On failure the transcript (every command, its output and exit status, and the output of
the other terminals) is printed; it is always saved to .cache/readme_literal/<project>.txt
for quoting.
"""

from __future__ import annotations

import asyncio
import contextlib
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
from e2e_tier1.project import BASE_PYTHON, UV, UV_CACHE_DIR, Combo, scaffold
from forge_testing import REPO_ROOT, _admin_execute, redis_database

from .shell import ReadmeRun, fenced_blocks

pytestmark = pytest.mark.e2e

README_PORT = 8000
TRANSCRIPTS = REPO_ROOT / ".cache" / "readme_literal"
LOCK = Path("/tmp/fastapi-forge-readme-literal.lock")

COMBOS = (
    # The defaults: PostgreSQL, a JWT from the dev-token command, the ARQ worker.
    Combo(
        "readme-default",
        db="postgres",
        auth="jwt",
        agent="anthropic",
        deploy="compose",
        queue="arq",
    ),
    # The other credential a README hands out itself: an API key registered in `.env`.
    Combo(
        "readme-apikey",
        db="postgres",
        auth="apikey",
        agent="anthropic",
        deploy="compose",
        queue="arq",
    ),
)


def time_limit(command: str) -> float:
    """Seconds a command may take: installs and the test suite are the slow ones."""
    if command.startswith(("uv sync", "pytest", "pip ", "python3 -m venv")):
        return 900
    return 120


@contextlib.contextmanager
def one_run_per_machine() -> Iterator[None]:
    with LOCK.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", README_PORT)) == 0:
                pytest.fail(
                    f"port {README_PORT} (the README's) is taken by another process; "
                    "stop it and run again",
                    pytrace=False,
                )
        yield


def drop(admin_url: str, *names: str) -> None:
    for name in names:
        asyncio.run(
            _admin_execute(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        )


# How this machine reaches the package index (proxies, CA bundles, index settings): part of
# any shell here, and nothing the README is about.
NETWORK_VARIABLES = re.compile(r"(?i)(proxy|^SSL_CERT_|CA_BUNDLE|^PIP_|^UV_)")


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
        # This machine's caches and interpreter (uv would otherwise download a Python).
        "UV_CACHE_DIR": os.environ.get("UV_CACHE_DIR", str(UV_CACHE_DIR)),
        "UV_PYTHON": str(BASE_PYTHON),
        "UV_PYTHON_DOWNLOADS": "never",
        "UV_NO_PROGRESS": "1",
        **services,
    }


@pytest.mark.parametrize("combo", COMBOS, ids=str)
def test_readme_commands_work_in_order(
    combo: Combo, tmp_path: Path, pg_admin_url: str, redis_base_url: str
) -> None:
    project = scaffold(combo, tmp_path)
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
