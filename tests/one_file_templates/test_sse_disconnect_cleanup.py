"""Both one-file templates: an SSE client that leaves mid-run lets the runner's awaiting
cleanup (a real SDK's `await client.interrupt()`) run to its end, and the run's slot
(AGENT_MAX_CONCURRENT_RUNS=1) stays held until it has: the next run starts only after the
model call was closed (issue 13 item 12). A cleanup not shielded from the route's cancel
scope ends early or runs on unaccounted while the slot already serves the next run."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from forge_testing import TEMPLATES, Server, start_uvicorn

from one_file_templates.helpers import SECRET, TOKENS
from one_file_templates.interrupting_apps import INTERRUPT_SECONDS

HERE = Path(__file__).resolve().parent


@pytest.fixture(params=["single_api", "agent_routes"])
def app(
    request: pytest.FixtureRequest, tmp_path: Path, redis_url: str
) -> Iterator[tuple[Server, Path]]:
    journal = tmp_path / "journal.txt"
    env = {
        **{
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("DATABASE_URL", "REDIS_", "JWT_", "AGENT_"))
        },
        "PYTHONPATH": f"{TEMPLATES}{os.pathsep}{HERE}",
        "PYTHONDONTWRITEBYTECODE": "1",
        "RUN_JOURNAL": str(journal),
        "JWT_SECRET": SECRET,
        "AGENT_MAX_CONCURRENT_RUNS": "1",
    }
    if request.param == "agent_routes":
        env["REDIS_URL"] = redis_url
        env["REDIS_KEY_PREFIX"] = "cleanup-test:"
    server = start_uvicorn(
        f"interrupting_apps:{request.param}_app",
        factory=True,
        log_dir=tmp_path / "logs",
        python=sys.executable,
        cwd=tmp_path,
        env=env,
        name=request.param,
    )
    yield server, journal
    server.stop()


def steps(journal: Path) -> list[tuple[str, float]]:
    lines = journal.read_text().splitlines() if journal.exists() else []
    return [(step, float(at)) for step, at in (line.split() for line in lines)]


def test_cleanup_completes_after_the_sse_client_leaves(
    app: tuple[Server, Path],
) -> None:
    server, journal = app
    headers = TOKENS.fresh_caller(secret=SECRET)
    with httpx.Client(base_url=server.url, headers=headers, timeout=30) as client:
        with client.stream(
            "GET", "/agents/run/stream", params={"prompt": "wait"}
        ) as stream:
            for line in stream.iter_lines():
                if line.startswith("event: text"):
                    break
        # The client has left; the one run slot frees once the abandoned run is closed.
        quick = client.post("/agents/run", json={"prompt": "quick"})
    assert quick.status_code == 200, quick.text
    deadline = time.monotonic() + 10
    while "cleanup-completed" not in dict(steps(journal)):
        assert time.monotonic() < deadline, (
            steps(journal),
            server.process.log_text(40),
        )
        time.sleep(0.1)
    journal_steps = steps(journal)
    names = [step for step, _ in journal_steps]
    assert names == ["started", "cleanup-started", "cleanup-completed", "started"], (
        journal_steps
    )
    at = dict(zip(names[:3], (t for _, t in journal_steps[:3]), strict=True))
    assert at["cleanup-completed"] - at["cleanup-started"] >= INTERRUPT_SECONDS * 0.9
