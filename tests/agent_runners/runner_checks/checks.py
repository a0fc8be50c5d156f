"""The checks every SDK runner must pass, written once.

A `<sdk>_checks.py` module imports these tests and provides two fixtures: `fake` (a started
fake model with a `script` and `hangups`, see the `fakes` package) and `runner` (its
`build_sdk_runner(...)` pointed at that fake).
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any, Protocol

import pytest
from fakes.http import Hangups
from fakes.script import FINAL_TEXT, TOOL_ARGUMENTS, TOOL_NAME, TOOL_OUTPUT, Script, TokenUsage

PROMPT = "How many words are in 'agents stream tokens'? Use the tool."
# Generous: a run against a loopback fake takes well under a second, plus SDK start-up.
RUN_LIMIT_SECONDS = 60
# What the runner is given, once its model call is made, before the caller's deadline fires
# while the fake stalls.
TIMEOUT_SECONDS = 3


class Fake(Protocol):
    script: Script
    hangups: Hangups


def child_pids() -> set[int]:
    """Live child processes of this test process (SDKs that run a CLI start one per run)."""
    children: set[int] = set()
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        children.update(int(pid) for pid in (task / "children").read_text().split())
    return children


def request(base: Any) -> Any:
    return base.AgentRequest(prompt=PROMPT)


def usage_by_model(usages: list[Any]) -> dict[str, TokenUsage]:
    return {
        u.model: TokenUsage(
            u.input_tokens, u.output_tokens, u.cache_read_tokens, u.cache_write_tokens
        )
        for u in usages
    }


def assert_tool_round_trip(tool_calls: list[dict[str, Any]], fake: Fake) -> None:
    (asked,) = [turn for turn in fake.script.played if turn.kind == "tool_call"]
    assert tool_calls == [{"id": asked.call_id, "name": TOOL_NAME, "arguments": TOOL_ARGUMENTS}]


async def test_stream_maps_text_tool_events_and_usage(runner: Any, fake: Fake, base: Any) -> None:
    async with asyncio.timeout(RUN_LIMIT_SECONDS):
        chunks = [chunk async for chunk in runner.stream(request(base))]

    kinds = [c.type for c in chunks]
    assert "error" not in kinds, [c.text for c in chunks if c.type == "error"]
    texts = [c.text for c in chunks if c.type == "text"]
    assert "".join(texts) == FINAL_TEXT
    assert len(texts) > 1, "the answer must arrive in pieces, not as one block"

    assert_tool_round_trip([c.data for c in chunks if c.type == "tool_call"], fake)
    results = [c.data for c in chunks if c.type == "tool_result"]
    assert results == [{"id": fake.script.played[0].call_id, "output": TOOL_OUTPUT}]
    assert kinds.index("tool_call") < kinds.index("tool_result") < kinds.index("text")

    usage = [c.usage for c in chunks if c.type == "usage"]
    assert kinds[-len(usage) :] == ["usage"] * len(usage), "usage comes last"
    assert usage_by_model(usage) == fake.script.reported()


async def test_run_to_completion_gathers_the_stream(runner: Any, fake: Fake, base: Any) -> None:
    async with asyncio.timeout(RUN_LIMIT_SECONDS):
        result = await base.run_to_completion(runner, request(base))
    assert result.text == FINAL_TEXT
    assert_tool_round_trip(result.tool_calls, fake)
    assert usage_by_model(result.usage) == fake.script.reported()


async def test_timeout_stops_the_run_and_closes_the_connection(
    runner: Any, fake: Fake, base: Any
) -> None:
    fake.script.stall = "at_start"
    before = child_pids()

    async def fire_once_the_model_call_is_made(deadline: asyncio.Timeout) -> None:
        # A fixed deadline from the start could fire before an SDK that starts a CLI has
        # even made its model call (seen under load), and then no connection is left to close.
        while not fake.script.played:
            await asyncio.sleep(0.05)
        deadline.reschedule(asyncio.get_running_loop().time() + TIMEOUT_SECONDS)

    with pytest.raises(TimeoutError):
        async with asyncio.timeout(RUN_LIMIT_SECONDS) as deadline:
            arming = asyncio.create_task(fire_once_the_model_call_is_made(deadline))
            try:
                async for _ in runner.stream(request(base)):
                    pass
            finally:
                arming.cancel()
    assert fake.script.played, "the model was never called"
    assert await asyncio.to_thread(fake.hangups.wait, 10), "the model call was left open"
    assert child_pids() <= before, "the runner left a process behind"


async def test_cancel_mid_stream_closes_the_connection(runner: Any, fake: Fake, base: Any) -> None:
    fake.script.stall = "after_first_text"
    before = child_pids()
    first_text = asyncio.Event()

    async def consume() -> None:
        async for chunk in runner.stream(request(base)):
            if chunk.type == "text":
                first_text.set()

    task = asyncio.create_task(consume())
    async with asyncio.timeout(RUN_LIMIT_SECONDS):
        await first_text.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await asyncio.to_thread(fake.hangups.wait, 10), "the model call was left open"
    assert child_pids() <= before, "the runner left a process behind"
