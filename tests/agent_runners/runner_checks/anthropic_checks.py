"""Messages API runner: the `anthropic` client's `messages.stream` against a fake Messages API.

The shared checks run with AGENT_TOOLS='["count_words"]'; the checks below cover what is
particular to this runner against the API: the tool loop's wire format, no tools unless
enabled, closing the stream between chunks, max turns and API errors. The tool registry
itself is tested by the layer's own tests/test_agent_tools.py, in the generated project."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest
from checks import *  # noqa: F403  (the shared tests)
from checks import RUN_LIMIT_SECONDS, request, usage_by_model
from conftest import RunnerSettings
from fakes.anthropic import FakeAnthropic
from fakes.script import TOOL_OUTPUT

SDK = "anthropic"
MODEL = "claude-sonnet-5"


@pytest.fixture
def fake() -> Iterator[FakeAnthropic]:
    server = FakeAnthropic().start()
    yield server
    server.stop()


@pytest.fixture
def runner(runner_module: ModuleType, fake: FakeAnthropic, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("AGENT_TOOLS", '["count_words"]')
    return runner_module.build_sdk_runner(
        RunnerSettings(agent_model=MODEL, agent_base_url=fake.url)
    )


async def collect(runner: Any, base: ModuleType) -> list[Any]:
    async with asyncio.timeout(RUN_LIMIT_SECONDS):
        return [chunk async for chunk in runner.stream(request(base))]


async def test_the_tool_result_goes_back_under_the_call_id(
    runner: Any, fake: FakeAnthropic, base: ModuleType
) -> None:
    await collect(runner, base)
    first, second = (r.json() for r in fake.requests)
    assert [t["name"] for t in first["tools"]] == ["count_words"]
    assert first["tools"][0]["input_schema"]["required"] == ["text"]
    assert first["stream"] is True
    call_id = fake.script.played[0].call_id
    assistant, user = second["messages"][1:]
    assert assistant["role"] == "assistant"
    assert [b["id"] for b in assistant["content"] if b["type"] == "tool_use"] == [call_id]
    assert user == {
        "role": "user",
        "content": [
            {
                "type": "tool_result",
                "tool_use_id": call_id,
                "content": TOOL_OUTPUT,
                "is_error": False,
            }
        ],
    }


async def test_no_tools_unless_enabled(
    runner_module: ModuleType,
    fake: FakeAnthropic,
    base: ModuleType,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("AGENT_TOOLS", raising=False)
    runner = runner_module.build_sdk_runner(
        RunnerSettings(agent_model=MODEL, agent_base_url=fake.url)
    )
    chunks = await collect(runner, base)
    assert "tools" not in fake.requests[0].json()
    assert [c.type for c in chunks] == ["text", "usage"]
    assert chunks[0].text == "ok"


async def test_an_api_error_is_reported_as_an_error_chunk(
    runner_module: ModuleType, fake: FakeAnthropic, base: ModuleType
) -> None:
    # The fake answers 404 for any path but /v1/messages.
    runner = runner_module.build_sdk_runner(
        RunnerSettings(agent_model=MODEL, agent_base_url=f"{fake.url}/elsewhere")
    )
    chunks = await collect(runner, base)
    assert [(c.type, c.text) for c in chunks] == [("error", "the model API answered 404")]


async def test_closing_the_stream_between_chunks_closes_the_connection(
    runner: Any, fake: FakeAnthropic, base: ModuleType
) -> None:
    """The service closes the runner's stream when its client leaves between two chunks:
    no read is in flight then, so only the runner can close the HTTP response."""
    fake.script.stall = "after_first_text"
    stream = runner.stream(request(base))
    async with asyncio.timeout(RUN_LIMIT_SECONDS):
        async for chunk in stream:
            if chunk.type == "text":
                break
    await stream.aclose()
    assert await asyncio.to_thread(fake.hangups.wait, 10), "the model call was left open"


async def test_a_run_past_max_turns_ends_with_an_error_after_its_usage(
    runner_module: ModuleType,
    fake: FakeAnthropic,
    base: ModuleType,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AGENT_TOOLS", '["count_words"]')
    settings = RunnerSettings(agent_model=MODEL, agent_base_url=fake.url, agent_max_turns=1)
    chunks = await collect(runner_module.build_sdk_runner(settings), base)
    assert [c.type for c in chunks] == ["tool_call", "tool_result", "usage", "error"]
    assert chunks[-1].text == "the agent reached AGENT_MAX_TURNS (1) without an answer"
    assert usage_by_model([chunks[2].usage]) == fake.script.reported()
