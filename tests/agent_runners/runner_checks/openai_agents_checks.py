"""OpenAI Agents SDK runner: `Runner.run_streamed` against a fake Responses API."""

from __future__ import annotations

from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest
from checks import *  # noqa: F403  (the shared tests)
from conftest import RunnerSettings
from fakes.openai import FakeOpenAI

SDK = "openai-agents"
MODEL = "gpt-5.6-luna"


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI().start()
    yield server
    server.stop()


@pytest.fixture
def runner(runner_module: ModuleType, fake: FakeOpenAI) -> Any:
    return runner_module.build_sdk_runner(
        RunnerSettings(agent_model=MODEL, agent_base_url=f"{fake.url}/v1")
    )
