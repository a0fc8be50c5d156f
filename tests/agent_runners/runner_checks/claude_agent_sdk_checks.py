"""Claude Agent SDK runner: the bundled Claude Code CLI against a fake Messages API."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from checks import *  # noqa: F403  (the shared tests)
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
