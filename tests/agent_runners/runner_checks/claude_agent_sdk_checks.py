"""Claude Agent SDK runner: the bundled Claude Code CLI against a fake Messages API."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from checks import *  # noqa: F403  (the shared tests)
from checks import child_pids
from conftest import RunnerSettings
from fakes.anthropic import FakeAnthropic

SDK = "claude-agent-sdk"
MODEL = "claude-sonnet-5"


@pytest.fixture
def fake() -> Iterator[FakeAnthropic]:
    server = FakeAnthropic().start()
    yield server
    server.stop()


@pytest.fixture
def runner(
    runner_module: ModuleType, fake: FakeAnthropic, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Any:
    # The CLI keeps its config under $HOME; keep the tests' out of the real one.
    monkeypatch.setenv("HOME", str(tmp_path))
    return runner_module.build_sdk_runner(
        RunnerSettings(agent_model=MODEL, agent_base_url=fake.url)
    )


async def test_runs_get_no_builtin_tools_and_a_fresh_working_directory(
    runner: Any, fake: FakeAnthropic, base: ModuleType
) -> None:
    """Claude Code's own tools (shell, file reads and edits, search) are off: the model is
    offered the app's tools only. Each run's CLI works in a new temporary directory,
    removed afterwards, never in the server's working directory."""
    workdirs: list[str] = []
    for _ in range(2):
        seen: set[str] = set()
        async with asyncio.timeout(60):
            async for _chunk in runner.stream(
                base.AgentRequest(prompt="count my words")
            ):
                for pid in child_pids():  # the CLI, while it runs
                    with contextlib.suppress(OSError):
                        seen.add(os.readlink(f"/proc/{pid}/cwd"))
        assert len(seen) == 1, seen
        workdirs += seen
    bodies = [r.json() for r in fake.requests if r.path == "/v1/messages"]
    offered = {
        tool.get("name", "") for body in bodies for tool in body.get("tools", [])
    }
    assert offered, "no tools offered at all: the app's own tool is missing"
    assert all(name.startswith("mcp__forge__") for name in offered), sorted(offered)
    assert len(set(workdirs)) == 2, workdirs
    for workdir in workdirs:
        assert Path(workdir).name.startswith("forge-agent-"), workdir
        assert not Path(workdir).exists(), f"{workdir} left behind"
        assert workdir != str(Path.cwd())
