"""Agent runner on the Anthropic Messages API (`anthropic` package), without an agent SDK.

Each turn is one streamed `messages.stream` call; when the model asks for tools, they run
here and their results go back in the next turn, up to AGENT_MAX_TURNS model calls. The
model is offered only the tools named in AGENT_TOOLS, and only those can run: none by
default. Cancelling the task that iterates `stream()` (or the caller's `asyncio.timeout`)
closes the HTTP stream to the API, so an abandoned run stops costing tokens.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import structlog
from anthropic import APIConnectionError, APIError, APIStatusError, AsyncAnthropic
from anthropic.types import Message, ToolUseBlock
from pydantic import BaseModel, Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from .base import AgentChunk, AgentRequest, AgentRunner, Usage

if TYPE_CHECKING:
    from ..config import Settings

log = structlog.get_logger(__name__)

# The Messages API needs an output cap per model call; a run may make several.
DEFAULT_MAX_TOKENS = 8192

ArgumentsT = TypeVar("ArgumentsT", bound=BaseModel)


# --8<-- [start:tools]
@dataclass(frozen=True, slots=True)
class Tool(Generic[ArgumentsT]):
    """A function the model may call. Its arguments are a pydantic model: the model is shown
    its JSON schema, and a call whose arguments do not validate never reaches `run`."""

    name: str
    description: str
    arguments: type[ArgumentsT]
    run: Callable[[ArgumentsT], Awaitable[str]]

    def definition(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "input_schema": self.arguments.model_json_schema(),
        }

    async def call(self, raw_arguments: object) -> tuple[str, bool]:
        """The output for the model, and whether it reports an error."""
        try:
            arguments = self.arguments.model_validate(raw_arguments)
        except ValidationError as exc:
            # The model reads this and can retry with corrected arguments.
            return f"invalid arguments: {exc.errors(include_url=False, include_input=False)}", True
        return await self.run(arguments), False


class CountWordsArguments(BaseModel):
    text: str = Field(description="The text whose words to count.")


async def count_words(arguments: CountWordsArguments) -> str:
    return str(len(arguments.text.split()))


# Every tool this service has. AGENT_TOOLS chooses which of them the model is given.
TOOLS: dict[str, Tool[Any]] = {
    tool.name: tool
    for tool in [
        Tool("count_words", "Count the words in a text.", CountWordsArguments, count_words),
    ]
}
# --8<-- [end:tools]


class MessagesSettings(BaseSettings):
    """This runner's own settings, read from the same environment and `.env` as `Settings`."""

    model_config = SettingsConfigDict(
        env_prefix="AGENT_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    # JSON list of names from TOOLS, e.g. AGENT_TOOLS='["count_words"]'.
    tools: list[str] = Field(default_factory=list)
    max_tokens: int = Field(default=DEFAULT_MAX_TOKENS, ge=1)


def enabled_tools(names: Iterable[str]) -> list[Tool[Any]]:
    unknown = sorted(set(names) - TOOLS.keys())
    if unknown:
        raise ValueError(
            f"AGENT_TOOLS names {unknown}, which agents/sdk.py does not define: "
            f"use names from {sorted(TOOLS)} or add the tool to TOOLS there"
        )
    return [TOOLS[name] for name in dict.fromkeys(names)]


# --8<-- [start:runner]
class MessagesRunner:
    name = "anthropic"

    def __init__(
        self,
        settings: Settings,
        *,
        tools: Iterable[Tool[Any]] = (),
        max_tokens: int = DEFAULT_MAX_TOKENS,
    ) -> None:
        self._model = settings.agent_model
        self._max_turns = settings.agent_max_turns
        self._max_tokens = max_tokens
        self._tools = {tool.name: tool for tool in tools}
        api_key = settings.agent_api_key.get_secret_value() if settings.agent_api_key else None
        # One client for the app's lifetime: it pools the connections to the API.
        # No retries: the caller's timeout bounds the whole run, not each attempt.
        self._client = AsyncAnthropic(
            api_key=api_key, base_url=settings.agent_base_url, max_retries=0
        )

    async def stream(self, request: AgentRequest) -> AsyncIterator[AgentChunk]:
        model = request.model or self._model
        messages: list[Any] = [{"role": "user", "content": request.prompt}]
        options: dict[str, Any] = {}
        if self._tools:
            options["tools"] = [tool.definition() for tool in self._tools.values()]
        usage: dict[str, Usage] = {}
        error: str | None = None
        try:
            # --8<-- [start:loop]
            for _ in range(self._max_turns):
                # Leaving this block for any reason (end, error, cancellation) closes the
                # HTTP response, and with it the model call.
                async with self._client.messages.stream(
                    model=model, max_tokens=self._max_tokens, messages=messages, **options
                ) as stream:
                    async for event in stream:
                        if event.type == "text":
                            yield AgentChunk("text", text=event.text)
                    message = await stream.get_final_message()
                _add_usage(usage, message)
                if message.stop_reason in ("end_turn", "stop_sequence"):
                    break
                if message.stop_reason != "tool_use":
                    error = f"the model stopped early ({message.stop_reason})"
                    break
                results: list[dict[str, Any]] = []
                for block in message.content:
                    if isinstance(block, ToolUseBlock):
                        yield AgentChunk(
                            "tool_call",
                            data={"id": block.id, "name": block.name, "arguments": block.input},
                        )
                        output, is_error = await self._call_tool(block.name, block.input)
                        yield AgentChunk("tool_result", data={"id": block.id, "output": output})
                        results.append(
                            {
                                "type": "tool_result",
                                "tool_use_id": block.id,
                                "content": output,
                                "is_error": is_error,
                            }
                        )
                messages.append({"role": "assistant", "content": message.content})
                messages.append({"role": "user", "content": results})
            else:
                error = f"the agent reached AGENT_MAX_TURNS ({self._max_turns}) without an answer"
            # --8<-- [end:loop]
        except APIStatusError as exc:
            log.warning("model_api_error", status=exc.status_code, error=str(exc))
            error = f"the model API answered {exc.status_code}"
        except APIConnectionError as exc:  # timeouts of the client's own included
            log.warning("model_api_unreachable", error=str(exc))
            error = "the model API could not be reached"
        except APIError as exc:  # e.g. a stream the SDK could not parse
            log.warning("model_api_failed", error=str(exc))
            error = "the model API answered something unexpected"
        # Tokens already spent are reported even when the run failed: they are billed.
        for figures in usage.values():
            yield AgentChunk("usage", usage=figures)
        if error is not None:
            yield AgentChunk("error", text=error)

    async def _call_tool(self, name: str, arguments: object) -> tuple[str, bool]:
        tool = self._tools.get(name)
        if tool is None:
            # Only offered tools run, whatever name the model (or a prompt injection) gives.
            return f"no tool named {name!r} is available", True
        try:
            return await tool.call(arguments)
        except Exception:
            log.exception("agent_tool_failed", tool=name)
            return f"the tool {name} failed", True


def _add_usage(usage: dict[str, Usage], message: Message) -> None:
    figures = message.usage
    seen = usage.get(message.model, Usage(model=message.model))
    usage[message.model] = Usage(
        model=message.model,
        # Anthropic's input_tokens already leaves out cache reads and writes, as Usage does.
        input_tokens=seen.input_tokens + figures.input_tokens,
        output_tokens=seen.output_tokens + figures.output_tokens,
        cache_read_tokens=seen.cache_read_tokens + (figures.cache_read_input_tokens or 0),
        cache_write_tokens=seen.cache_write_tokens + (figures.cache_creation_input_tokens or 0),
    )
    # --8<-- [end:runner]


def build_sdk_runner(settings: Settings) -> AgentRunner:
    own = MessagesSettings()
    return MessagesRunner(settings, tools=enabled_tools(own.tools), max_tokens=own.max_tokens)
