"""Three implementations of one contract, started the same way for the same black-box tests:

- `project`: a generated default Tier 1 project (`uvicorn --factory`, 2 workers, its ARQ
  worker, PostgreSQL migrated with Alembic);
- `single_api`: assets/templates/single_api.py (2 workers, PostgreSQL + Redis);
- `agent_routes`: assets/templates/agent_routes.py mounted in a small host app (2 workers,
  Redis).

One project is generated per session and its virtualenv (made with uv) runs all three.
Every target gets the same environment variables: the settings names are part of the
contract.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from forge_testing import (
    TEMPLATES,
    ManagedProcess,
    clean_env,
    redis_database,
    run,
    spawn,
    start_uvicorn,
    throwaway_database,
    wait_until,
)
from forge_testing.scaffolding import scaffold
from forge_testing.tokens import JwtMinter
from forge_testing.venvs import BASE_PYTHON, UV

pytestmark = pytest.mark.e2e

HERE = Path(__file__).resolve().parent
NAME = "contract-app"
PACKAGE = "contract_app"
SECRET = "contract-secret-" + "x" * 40
AUDIENCE = ISSUER = "contract"
TOKENS = JwtMinter(SECRET, AUDIENCE, ISSUER)
RATE_LIMIT = 40
# Longer than any test that counts a window, however loaded the machine: a window that
# resets mid-test lets a request over the limit through (seen once at load 20).
RATE_LIMIT_WINDOW = 900
FAKE_DELAY = 0.02
# Long enough for every run of the suite (the longest, LONG_PROMPT, is ~6 s but always
# cancelled first); the timed-out runs take 1500 words (~30 s).
AGENT_TIMEOUT = 5
# Besides the configured model (the targets' default), the one a client may choose.
OTHER_MODEL = "other-model"
TARGETS = ("project", "single_api", "agent_routes")


@dataclass
class Target:
    name: str
    url: str
    processes: list[ManagedProcess]
    redis_url: str = ""

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://", 1)

    def auth(self, subject: str | None = None) -> dict[str, str]:
        """Headers of a fresh caller (its own rate-limit budget) unless one is named."""
        return TOKENS.bearer(subject) if subject else TOKENS.fresh_caller()

    def client(self, **kwargs: Any) -> httpx.Client:
        """No keep-alive: every request is a new connection, which either worker may take."""
        return httpx.Client(
            base_url=self.url,
            timeout=30,
            limits=httpx.Limits(max_keepalive_connections=0),
            **kwargs,
        )

    def logs(self) -> str:
        return "\n".join(p.describe(60) for p in self.processes)


@pytest.fixture(scope="session")
def contract_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default project, generated once; `uv sync` gives it the virtualenv all three
    targets run in (its dev group included), as SKILL.md tells users to do."""
    out = tmp_path_factory.mktemp("contract") / NAME
    scaffold(out, name=NAME)
    run(
        [UV, "sync", "--python", BASE_PYTHON, "--quiet"],
        cwd=out,
        env=clean_env(),
        timeout=1500,
    )
    return out


def common_env(project: Path, redis_url: str, **extra: str) -> dict[str, str]:
    settings = {
        "JWT_SECRET": SECRET,
        "JWT_AUDIENCE": AUDIENCE,
        "JWT_ISSUER": ISSUER,
        "REDIS_URL": redis_url,
        "AGENT_RUNNER": "fake",
        "FAKE_AGENT_DELAY_SECONDS": str(FAKE_DELAY),
        "RATE_LIMIT_REQUESTS": str(RATE_LIMIT),
        "RATE_LIMIT_WINDOW_SECONDS": str(RATE_LIMIT_WINDOW),
        "AGENT_MAX_CONCURRENT_RUNS": "1",
        "AGENT_TIMEOUT_SECONDS": str(AGENT_TIMEOUT),
        "AGENT_ALLOWED_MODELS": json.dumps([OTHER_MODEL]),
        "TICKET_TTL_SECONDS": "2",
        "ENVIRONMENT": "prod",
        "LOG_JSON": "true",
    }
    env = clean_env(**{**settings, **extra})
    env["PATH"] = f"{project / '.venv' / 'bin'}:{env['PATH']}"
    return env


@contextlib.contextmanager
def start_target(
    name: str,
    project: Path,
    pg_admin_url: str,
    redis_base_url: str,
    logs: Path,
    **extra_env: str,
) -> Iterator[Target]:
    python = project / ".venv" / "bin" / "python"
    processes: list[ManagedProcess] = []
    with (
        throwaway_database(pg_admin_url, prefix="contract") as database_url,
        redis_database(redis_base_url) as redis_url,
    ):
        env = common_env(project, redis_url, DATABASE_URL=database_url, **extra_env)
        try:
            if name == "project":
                run([python, "-m", "alembic", "upgrade", "head"], cwd=project, env=env)
                worker = spawn(
                    "arq-worker",
                    [str(python), "-m", f"{PACKAGE}.worker"],
                    log_dir=logs,
                    cwd=project,
                    env=env,
                )
                processes.append(worker)
                wait_until(
                    worker, lambda: "Starting worker" in worker.log_text(), "ARQ", 60
                )
                app, cwd = f"{PACKAGE}.main:create_app", project
            elif name == "single_api":
                app, cwd = "single_api:create_app", TEMPLATES
            else:
                env["PYTHONPATH"] = f"{TEMPLATES}:{HERE}"
                app, cwd = "host_app:create_app", HERE
            server = start_uvicorn(
                app,
                factory=True,
                workers=2,
                python=python,
                cwd=cwd,
                env={**env, "PYTHONDONTWRITEBYTECODE": "1"},
                log_dir=logs,
                name=f"uvicorn-{name}",
                timeout=120,
                # A worker that misses uvicorn's 5 s health check is restarted; on a
                # loaded CI machine start-up alone can take longer.
                extra_args=["--timeout-worker-healthcheck", "60"],
            )
            processes.append(server.process)
            yield Target(
                name=name, url=server.url, processes=processes, redis_url=redis_url
            )
        finally:
            for process in processes:
                process.stop()


@pytest.fixture(scope="session", params=TARGETS)
def target(
    request: pytest.FixtureRequest,
    contract_project: Path,
    pg_admin_url: str,
    redis_base_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Target]:
    name: str = request.param
    logs = tmp_path_factory.mktemp(f"logs-{name}")
    with start_target(
        name, contract_project, pg_admin_url, redis_base_url, logs
    ) as target:
        yield target
