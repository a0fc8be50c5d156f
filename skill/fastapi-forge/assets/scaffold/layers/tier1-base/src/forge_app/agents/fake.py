"""A deterministic agent for tests and local work: no network, no API key.

It answers `You said: <prompt>` one word at a time, with a tool call/result pair before
the text and a usage chunk at the end, so every code path of a real runner is exercised.
`delay_seconds` between chunks makes it slow enough to cancel or time out; `fail` makes
it report the tokens of its model call, then an error, after the tool call.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from .base import AgentChunk, AgentRequest, Usage


class FakeRunner:
    name = "fake"

    def __init__(self, *, model: str, delay_seconds: float = 0.0, fail: bool = False) -> None:
        self.model = model
        self.delay_seconds = delay_seconds
        self.fail = fail

    async def stream(self, request: AgentRequest) -> AsyncIterator[AgentChunk]:
        model = request.model or self.model
        words = request.prompt.split()
        yield AgentChunk(
            type="tool_call",
            data={"id": "call_1", "name": "count_words", "arguments": {"text": request.prompt}},
        )
        await asyncio.sleep(self.delay_seconds)
        yield AgentChunk(type="tool_result", data={"id": "call_1", "output": str(len(words))})
        if self.fail:
            # As a model call that errors after it was billed: the tokens are spent.
            yield AgentChunk(type="usage", usage=Usage(model=model, input_tokens=len(words)))
            yield AgentChunk(type="error", text="the agent failed (FAKE_AGENT_FAIL is set)")
            return
        pieces = ["You", " said:", *(f" {word}" for word in words)]
        for piece in pieces:
            await asyncio.sleep(self.delay_seconds)
            yield AgentChunk(type="text", text=piece)
        yield AgentChunk(
            type="usage",
            usage=Usage(model=model, input_tokens=len(words), output_tokens=len(pieces)),
        )
