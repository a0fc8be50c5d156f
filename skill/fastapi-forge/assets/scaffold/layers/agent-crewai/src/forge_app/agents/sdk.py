"""Agent runner on CrewAI: a one-agent, one-task crew, streamed with `Crew(stream=True)`.

Text and tool calls come from the crew's stream; tool results from CrewAI's event bus.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
from collections.abc import AsyncIterator
from typing import (
    TYPE_CHECKING,
    Any,
)

import httpx

# CrewAI reports usage to its vendor unless told not to; a service opts in deliberately.
os.environ.setdefault("CREWAI_DISABLE_TELEMETRY", "true")
os.environ.setdefault("CREWAI_TRACING_ENABLED", "false")

from crewai import LLM, Agent, Crew, Task
from crewai.events import ToolUsageFinishedEvent, crewai_event_bus
from crewai.llms.hooks import BaseInterceptor
from crewai.tools import BaseTool
from crewai.types.streaming import StreamChunkType, ToolCallChunk

from .base import (
    AgentChunk,
    AgentRequest,
    AgentRunner,
    Usage,
)

if TYPE_CHECKING:
    from ..config import Settings


class CountWords(BaseTool):
    name: str = "count_words"
    description: str = "Count the words in a text."

    def _run(self, text: str) -> str:
        return str(len(text.split()))


class AbortableCalls(BaseInterceptor[httpx.Request, httpx.Response]):
    """Lets the runner abort the model calls of a run from any thread.

    CrewAI makes each model call synchronously on a worker thread (even under `akickoff`),
    so cancelling the asyncio task does not stop it; closing a socket does not wake a thread
    blocked reading it either, but shutting it down does.
    """

    def __init__(self) -> None:
        self._aborted = False
        self._sockets: set[socket.socket] = set()

    def on_outbound(self, message: httpx.Request) -> httpx.Request:
        if self._aborted:
            raise httpx.ConnectError("the agent run was cancelled", request=message)
        return message

    def on_inbound(self, message: httpx.Response) -> httpx.Response:
        stream = message.extensions.get("network_stream")
        if stream is not None and (sock := stream.get_extra_info("socket")) is not None:
            self._sockets.add(sock)
        return message

    async def aon_outbound(self, message: httpx.Request) -> httpx.Request:
        return self.on_outbound(message)

    async def aon_inbound(self, message: httpx.Response) -> httpx.Response:
        return self.on_inbound(message)

    def abort(self) -> None:
        self._aborted = True
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class CrewAIRunner:
    name = "crewai"

    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    def _crew(self, request: AgentRequest, model_calls: AbortableCalls) -> tuple[Crew, Agent, LLM]:
        api_key = self._settings.agent_api_key
        llm = LLM(
            # "openai/<model>" and other "<provider>/<model>" names pick CrewAI's client.
            model=request.model or self._settings.agent_model,
            base_url=self._settings.agent_base_url,
            api_key=api_key.get_secret_value() if api_key else None,
            stream=True,
            timeout=self._settings.agent_timeout_seconds,
            # The caller's timeout bounds the whole run, not each attempt.
            max_retries=0,
            interceptor=model_calls,
        )
        agent = Agent(
            role="Assistant",
            goal="Answer the user's request accurately.",
            backstory="A helpful assistant that uses its tools when they help.",
            llm=llm,
            tools=[CountWords()],
            max_iter=self._settings.agent_max_turns,
            max_retry_limit=0,
            verbose=False,
        )
        # The prompt goes in as an input, so braces in it are never read as placeholders.
        task = Task(
            description="{prompt}", expected_output="The answer to the request.", agent=agent
        )
        return Crew(agents=[agent], tasks=[task], stream=True, verbose=False), agent, llm

    async def stream(self, request: AgentRequest) -> AsyncIterator[AgentChunk]:
        model_calls = AbortableCalls()
        crew, agent, llm = self._crew(request, model_calls)
        loop = asyncio.get_running_loop()
        finished: asyncio.Queue[ToolUsageFinishedEvent] = asyncio.Queue()

        def on_tool_finished(_source: Any, event: ToolUsageFinishedEvent) -> None:
            # The bus is process-wide and calls handlers on its own threads.
            if event.agent_id == str(agent.id):
                loop.call_soon_threadsafe(finished.put_nowait, event)

        crewai_event_bus.register_handler(ToolUsageFinishedEvent, on_tool_finished)
        # Tool calls as streamed, by id; announced once their result is in (or at the end).
        calls: dict[str, ToolCallChunk] = {}
        output: Any = None
        try:
            output = await crew.akickoff(inputs={"prompt": request.prompt})
            async for chunk in output:
                for done in _drain(finished, calls):
                    yield done
                if chunk.chunk_type == StreamChunkType.TOOL_CALL and chunk.tool_call:
                    if chunk.tool_call.tool_id:
                        calls[chunk.tool_call.tool_id] = chunk.tool_call
                elif chunk.content:
                    yield AgentChunk("text", text=chunk.content)
            for done in _drain(finished, calls):
                yield done
            for call in calls.values():
                yield _tool_call(call)
        finally:
            crewai_event_bus.off(ToolUsageFinishedEvent, on_tool_finished)
            model_calls.abort()
            if output is not None:
                await output.aclose()
        metrics = output.result.token_usage
        cache_read, cache_write = metrics.cached_prompt_tokens, metrics.cache_creation_tokens
        yield AgentChunk(
            "usage",
            usage=Usage(
                model=llm.model,
                # CrewAI counts cached tokens in prompt_tokens; Usage keeps them apart.
                input_tokens=metrics.prompt_tokens - cache_read - cache_write,
                output_tokens=metrics.completion_tokens,
                cache_read_tokens=cache_read,
                cache_write_tokens=cache_write,
            ),
        )


def _tool_call(call: ToolCallChunk) -> AgentChunk:
    arguments = json.loads(call.arguments) if call.arguments else {}
    return AgentChunk(
        "tool_call", data={"id": call.tool_id, "name": call.tool_name, "arguments": arguments}
    )


def _drain(
    finished: asyncio.Queue[ToolUsageFinishedEvent], calls: dict[str, ToolCallChunk]
) -> list[AgentChunk]:
    """tool_call + tool_result for each tool run that finished, paired with its call."""
    chunks: list[AgentChunk] = []
    while not finished.empty():
        event = finished.get_nowait()
        call_id = next((i for i, c in calls.items() if c.tool_name == event.tool_name), None)
        if call_id is None:
            continue
        chunks.append(_tool_call(calls.pop(call_id)))
        chunks.append(AgentChunk("tool_result", data={"id": call_id, "output": str(event.output)}))
    return chunks


def build_sdk_runner(settings: Settings) -> AgentRunner:
    return CrewAIRunner(settings)
