"""The Messages API runner's tools (agents/sdk.py), without calling the API: add a test
here for each tool you add to TOOLS."""

from __future__ import annotations

import pytest

from forge_app.agents.factory import build_runner
from forge_app.agents.sdk import TOOLS, MessagesRunner

from .conftest import SettingsFactory


async def test_count_words_validates_its_arguments_before_it_runs() -> None:
    tool = TOOLS["count_words"]
    assert await tool.call({"text": "agents stream tokens"}) == ("3", False)
    output, is_error = await tool.call({"words": "agents stream tokens"})
    assert is_error
    assert "'loc': ('text',)" in output
    assert "'type': 'missing'" in output


def test_agent_tools_enables_tools_by_name(
    make_settings: SettingsFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGENT_TOOLS", '["count_words"]')
    runner = build_runner(make_settings(agent_runner="sdk"))
    assert isinstance(runner, MessagesRunner)
    assert list(runner._tools) == ["count_words"]


def test_agent_tools_naming_an_undefined_tool_fails_at_start_up(
    make_settings: SettingsFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGENT_TOOLS", '["count_words", "run_shell"]')
    with pytest.raises(ValueError, match=r"AGENT_TOOLS names \['run_shell'\]"):
        build_runner(make_settings(agent_runner="sdk"))


async def test_the_model_cannot_call_a_tool_it_was_not_given(
    make_settings: SettingsFactory,
) -> None:
    runner = MessagesRunner(make_settings(agent_runner="sdk"))  # no tools
    assert await runner._call_tool("count_words", {"text": "a b"}) == (
        "no tool named 'count_words' is available",
        True,
    )
