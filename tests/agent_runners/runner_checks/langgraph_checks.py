"""LangGraph runner: with langchain-core's fake chat model through the runner's `model`
seam, and with its real Anthropic wiring (langchain-anthropic) against a fake Messages API."""

from __future__ import annotations

from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest
from checks import *  # noqa: F403  (the shared tests)
from conftest import RunnerSettings
from fakes.anthropic import FakeAnthropic
from fakes.langchain import ScriptedChatModel

SDK = "langgraph"
MODEL = "claude-sonnet-5"


@pytest.fixture(params=["fake-chat-model", "anthropic-api"])
def fake(request: pytest.FixtureRequest) -> Iterator[Any]:
    if request.param == "fake-chat-model":
        yield ScriptedChatModel(model_name=MODEL)
        return
    server = FakeAnthropic().start()
    yield server
    server.stop()


@pytest.fixture
def runner(runner_module: ModuleType, fake: Any) -> Any:
    if isinstance(fake, ScriptedChatModel):
        return runner_module.build_sdk_runner(
            RunnerSettings(agent_model=MODEL, agent_base_url=None), model=fake
        )
    return runner_module.build_sdk_runner(
        RunnerSettings(agent_model=MODEL, agent_base_url=fake.url)
    )
