"""The one interface every agent runner implements, whatever SDK sits behind it.

Routes, the job worker and the WebSocket handler only ever see `AgentChunk`s, so swapping
the SDK is a settings change, not a code change.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

ChunkType = Literal["text", "tool_call", "tool_result", "error", "usage"]


@dataclass(frozen=True, slots=True)
class Usage:
    """Token figures for one model; a run may report several (one per model used)."""

    model: str
    # Uncached input only, as Anthropic counts it; runners for SDKs that include cached
    # tokens in their input figure subtract them, so the four fields never overlap.
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    # Only set when the SDK itself reports a cost; never estimated here.
    cost_usd: float | None = None


@dataclass(frozen=True, slots=True)
class AgentChunk:
    type: ChunkType
    # text: the next piece of output; error: a message safe to show to the client.
    text: str = ""
    # tool_call: {"id", "name", "arguments"}; tool_result: {"id", "output"}.
    data: dict[str, Any] = field(default_factory=dict)
    usage: Usage | None = None


@dataclass(frozen=True, slots=True)
class AgentRequest:
    prompt: str
    session_id: str | None = None
    # Per-request model override; None means the runner's configured default.
    model: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class AgentResult:
    text: str
    usage: list[Usage]
    tool_calls: list[dict[str, Any]]


# --8<-- [start:runner]
class AgentRunner(Protocol):
    """Streams one run as chunks.

    Cancellation is asyncio cancellation: the caller cancels the task that iterates
    `stream()` (or closes the generator), and the runner releases its SDK resources in
    `finally`. Timeouts are the caller's `asyncio.timeout(...)` around the iteration.
    """

    name: str

    def stream(self, request: AgentRequest) -> AsyncIterator[AgentChunk]: ...


async def run_to_completion(runner: AgentRunner, request: AgentRequest) -> AgentResult:
    """`run` for every runner: consume the stream and gather text, usage and tool calls."""
    parts: list[str] = []
    usage: list[Usage] = []
    tool_calls: list[dict[str, Any]] = []
    async for chunk in runner.stream(request):
        if chunk.type == "text":
            parts.append(chunk.text)
        elif chunk.type == "usage" and chunk.usage is not None:
            usage.append(chunk.usage)
        elif chunk.type == "tool_call":
            tool_calls.append(chunk.data)
        elif chunk.type == "error":
            raise AgentRunError(chunk.text)
    return AgentResult(text="".join(parts), usage=usage, tool_calls=tool_calls)
    # --8<-- [end:runner]


class AgentRunError(RuntimeError):
    """The agent reported a failure; its message is safe to return to the client."""
