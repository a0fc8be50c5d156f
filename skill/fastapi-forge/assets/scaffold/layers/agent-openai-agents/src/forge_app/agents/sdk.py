"""Agent runner on the OpenAI Agents SDK (`openai-agents`), over the Responses API."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import (
    TYPE_CHECKING,
    Any,
)

from agents import (
    Agent,
    AgentsException,
    OpenAIResponsesModel,
    RawResponsesStreamEvent,
    RunConfig,
    RunItemStreamEvent,
    Runner,
    Tool,
    function_tool,
)
from openai import AsyncOpenAI

from .base import (
    AgentChunk,
    AgentRequest,
    AgentRunner,
    Usage,
)

if TYPE_CHECKING:
    from ..config import Settings

INSTRUCTIONS = "You are a helpful assistant. Use the tools when they help."


@function_tool
def count_words(text: str) -> str:
    """Count the words in a text."""
    return str(len(text.split()))


class OpenAIAgentsRunner:
    name = "openai-agents"

    def __init__(self, settings: Settings, tools: list[Tool] | None = None) -> None:
        self._settings = settings
        self._tools = tools if tools is not None else [count_words]
        api_key = settings.agent_api_key.get_secret_value() if settings.agent_api_key else None
        # One client for the app's lifetime: it pools the connections to the provider.
        # No retries: the caller's timeout bounds the whole run, not each attempt.
        self._client = AsyncOpenAI(api_key=api_key, base_url=settings.agent_base_url, max_retries=0)

    async def stream(self, request: AgentRequest) -> AsyncIterator[AgentChunk]:
        model = request.model or self._settings.agent_model
        agent = Agent(
            name="assistant",
            instructions=INSTRUCTIONS,
            model=OpenAIResponsesModel(model, self._client),
            tools=self._tools,
        )
        # Tracing would upload every prompt to OpenAI's dashboard: opt in deliberately.
        result = Runner.run_streamed(
            agent,
            request.prompt,
            max_turns=self._settings.agent_max_turns,
            run_config=RunConfig(tracing_disabled=True),
        )
        try:
            async for event in result.stream_events():
                if chunk := _chunk(event):
                    yield chunk
        except AgentsException as exc:  # max turns, model misbehaviour, guardrails
            yield AgentChunk("error", text=f"agent run failed: {exc}")
            return
        finally:
            # Stops the background run task (and its HTTP stream) when the caller leaves early.
            result.cancel()
        usage = result.context_wrapper.usage
        cache_read = usage.input_tokens_details.cached_tokens
        # Older openai releases (the SDK allows >=3.0) have no cache-write figure.
        cache_write = getattr(usage.input_tokens_details, "cache_write_tokens", 0) or 0
        yield AgentChunk(
            "usage",
            usage=Usage(
                model=model,
                # OpenAI counts cached tokens in input_tokens; Usage keeps them apart.
                input_tokens=usage.input_tokens - cache_read - cache_write,
                output_tokens=usage.output_tokens,
                cache_read_tokens=cache_read,
                cache_write_tokens=cache_write,
            ),
        )


def _chunk(event: object) -> AgentChunk | None:
    if isinstance(event, RawResponsesStreamEvent):
        if event.data.type == "response.output_text.delta":
            return AgentChunk("text", text=event.data.delta)
        return None
    if not isinstance(event, RunItemStreamEvent):
        return None
    raw: Any = event.item.raw_item
    if event.name == "tool_called" and getattr(raw, "type", None) == "function_call":
        return AgentChunk(
            "tool_call",
            data={
                "id": raw.call_id,
                "name": raw.name,
                "arguments": json.loads(raw.arguments or "{}"),
            },
        )
    if event.name == "tool_output" and isinstance(raw, dict):
        return AgentChunk(
            "tool_result", data={"id": raw["call_id"], "output": str(event.item.output)}
        )
    return None


def build_sdk_runner(settings: Settings) -> AgentRunner:
    return OpenAIAgentsRunner(settings)
