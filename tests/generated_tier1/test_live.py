"""The default project as it runs in production: `uvicorn --workers 2` and the ARQ worker as
real processes on PostgreSQL and a Redis of this module's own, driven from outside: what is
particular to the generated project's processes (the ARQ worker, metrics summed over the
workers, readiness when Redis stops, shutdown). The API contract (auth, tickets, SSE,
WebSocket, jobs, rate limit, concurrency cap) is tests/contract's.

Each test authenticates as its own user (the rate limit is per caller), so tests do not
eat into each other's budget. The readiness test stops
Redis and therefore runs last.
"""

from __future__ import annotations

import signal
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from forge_testing import (
    ManagedProcess,
    Server,
    spawn,
    start_redis_server,
    start_uvicorn,
    throwaway_database,
    wait_until,
)
from forge_testing.jobs import wait_for_job
from forge_testing.metrics import metric_total
from forge_testing.scaffolding import DEFAULT
from forge_testing.tokens import JwtMinter

from .conftest import BuiltProjects
from .project import InstalledProject

pytestmark = pytest.mark.e2e

JWT_SECRET = "e2e-secret-" + "x" * 40
TOKENS = JwtMinter(JWT_SECRET, "forge-default", "forge-default")
RATE_LIMIT = 40
FAKE_DELAY = 0.05


@dataclass
class Live:
    project: InstalledProject
    api: Server
    worker: ManagedProcess
    redis: Server
    metrics_dir: Path

    def client(self, source: str, **kwargs: Any) -> httpx.Client:
        """A client from loopback address `source`; no keep-alive, so every request opens a
        new connection and the kernel may hand it to either uvicorn worker."""
        transport = httpx.HTTPTransport(
            local_address=source, limits=httpx.Limits(max_keepalive_connections=0)
        )
        return httpx.Client(
            base_url=self.api.url, transport=transport, timeout=30, **kwargs
        )

    def auth(self, subject: str = "alice") -> dict[str, str]:
        return TOKENS.bearer(subject)

    def worker_pids(self) -> set[int]:
        """The uvicorn worker processes: children of the master started through
        multiprocessing's spawn (not its resource tracker, also a child)."""
        pids = set()
        for proc in Path("/proc").glob("[0-9]*"):
            try:
                fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
                cmdline = (proc / "cmdline").read_bytes()
            except (OSError, IndexError):
                continue
            if int(fields[1]) == self.api.process.pid and b"spawn_main" in cmdline:
                pids.add(int(proc.name))
        return pids


@pytest.fixture(scope="module")
def live(
    built_projects: BuiltProjects,
    pg_admin_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Live]:
    project = built_projects.get(DEFAULT)
    base = tmp_path_factory.mktemp("live")
    logs = base / "logs"
    metrics_dir = base / "metrics"
    metrics_dir.mkdir()
    redis = start_redis_server(logs, name="redis-live")
    processes: list[ManagedProcess] = []
    try:
        with throwaway_database(pg_admin_url, prefix="forge_live") as database_url:
            env = project.env(
                DATABASE_URL=database_url,
                REDIS_URL=f"redis://127.0.0.1:{redis.port}/0",
                JWT_SECRET=JWT_SECRET,
                JWT_AUDIENCE="forge-default",
                JWT_ISSUER="forge-default",
                AGENT_RUNNER="fake",
                FAKE_AGENT_DELAY_SECONDS=str(FAKE_DELAY),
                RATE_LIMIT_REQUESTS=str(RATE_LIMIT),
                RATE_LIMIT_WINDOW_SECONDS="60",
                READINESS_TIMEOUT_SECONDS="1",
                PROMETHEUS_MULTIPROC_DIR=str(metrics_dir),
                ENVIRONMENT="prod",
                LOG_JSON="true",
            )
            project.run(
                [project.bin("alembic"), "upgrade", "head"], DATABASE_URL=database_url
            )
            worker = spawn(
                "arq-worker",
                [str(project.python), "-m", "forge_default.worker"],
                log_dir=logs,
                cwd=project.root,
                env=env,
            )
            processes.append(worker)
            api = start_uvicorn(
                "forge_default.main:create_app",
                factory=True,
                workers=2,
                python=project.python,
                cwd=project.root,
                env=env,
                log_dir=logs,
                name="uvicorn-live",
                extra_args=["--timeout-worker-healthcheck", "60"],
            )
            processes.append(api.process)
            wait_until(
                worker,
                lambda: "Starting worker" in worker.log_text(),
                "ARQ start-up",
                60,
            )
            yield Live(
                project=project,
                api=api,
                worker=worker,
                redis=redis,
                metrics_dir=metrics_dir,
            )
            for process in processes:
                process.stop()
    finally:
        for process in processes:
            process.stop()
        redis.stop()


def test_async_job_runs_on_the_arq_worker(live: Live) -> None:
    headers = live.auth("bob")
    with live.client("127.0.0.11") as client:
        response = client.post(
            "/agents/run/async", json={"prompt": "queued job please"}, headers=headers
        )
        assert response.status_code == 202, response.text
        job_id = response.json()["job_id"]
        assert response.headers["location"] == f"/agents/jobs/{job_id}"
        job = wait_for_job(
            client, job_id, {"completed", "failed", "cancelled"}, headers=headers
        )
        assert job["status"] == "completed", job
        assert job["result"] == "You said: queued job please"
        assert job["progress"] == 1.0
        assert job["usage"] and job["started_at"] and job["finished_at"]
        # Another user cannot see it.
        assert (
            client.get(
                f"/agents/jobs/{job_id}", headers=live.auth("mallory")
            ).status_code
            == 404
        )
    assert job_id in live.worker.log_text(), (
        "the ARQ worker's log never mentions the job"
    )


def test_metrics_add_up_across_workers(live: Live) -> None:
    requests = 30
    with live.client("127.0.0.15", headers=live.auth("frank")) as client:
        before = client.get("/metrics")
        assert before.status_code == 200
        for _ in range(requests):
            assert client.get(f"/agents/jobs/{uuid.uuid4()}").status_code == 404
        after = client.get("/metrics").text
    route = "/agents/jobs/{job_id}"
    counted = metric_total(
        after, "http_requests_total", route=route, status="404"
    ) - metric_total(before.text, "http_requests_total", route=route, status="404")
    assert counted == requests, f"/metrics counted {counted} of {requests} requests"

    workers = live.worker_pids()
    assert len(workers) == 2, f"uvicorn should run 2 workers, found {workers}"
    writers = {
        int(p.stem.rsplit("_", 1)[1]) for p in live.metrics_dir.glob("counter_*.db")
    }
    assert workers <= writers, (
        f"workers {workers} vs metric files of {writers}: one never served"
    )
    # Tokens of the runs so far, including the job the ARQ worker ran, are exported.
    assert metric_total(after, "agent_tokens_total", kind="output") > 0


def test_readiness_fails_when_redis_stops(live: Live) -> None:
    with live.client("127.0.0.16") as client:
        ready = client.get("/health/ready")
        assert ready.status_code == 200, ready.text
        live.redis.stop()
        deadline = time.monotonic() + 15
        while (response := client.get("/health/ready")).status_code != 503:
            assert time.monotonic() < deadline, (
                f"still {response.status_code}: {response.text}"
            )
            time.sleep(0.5)
        assert "redis" in response.text.lower()
        # Liveness does not depend on Redis: the processes must not be restarted for it.
        assert client.get("/health").status_code == 200
    assert live.api.process.alive()


def test_processes_stop_cleanly_on_sigterm(live: Live) -> None:
    workers = live.worker_pids()
    live.api.process.signal_group(signal.SIGTERM)
    live.worker.signal_group(signal.SIGTERM)
    assert live.api.process.popen.wait(30) == 0, live.api.process.log_text(40)
    assert live.worker.popen.wait(60) is not None
    time.sleep(0.5)
    leftovers = [pid for pid in workers if Path(f"/proc/{pid}").exists()]
    assert not leftovers, f"uvicorn workers outlived the master: {leftovers}"
    assert live.api.process.log_text().count("Finished server process") >= 2
