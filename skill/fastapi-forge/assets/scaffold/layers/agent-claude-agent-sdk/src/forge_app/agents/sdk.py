"""Agent runner on the Claude Agent SDK (`claude-agent-sdk`).

The SDK drives the Claude Code CLI, which ships inside the wheel, as one subprocess per run.
The app's tools run in this process as an in-process MCP server; Claude Code's own tools
(shell, file edits) are switched off, because a web API must not run commands for callers.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from claude_agent_sdk import (
    AssistantMessage,
    ClaudeAgentOptions,
    ClaudeSDKClient,
    ResultMessage,
    StreamEvent,
    ToolResultBlock,
    ToolUseBlock,
    UserMessage,
    create_sdk_mcp_server,
    tool,
)

from .base import (
    AgentChunk,
    AgentRequest,
    AgentRunner,
    Usage,
)

if TYPE_CHECKING:
    from ..config import Settings

TOOL_SERVER = "forge"
TOOL_PREFIX = f"mcp__{TOOL_SERVER}__"


@tool("count_words", "Count the words in a text.", {"text": str})
async def count_words(args: dict[str, Any]) -> dict[str, Any]:
    return {"content": [{"type": "text", "text": str(len(args["text"].split()))}]}


class ClaudeAgentRunner:
    name = "claude-agent-sdk"

    def __init__(self, settings: Settings, tools: list[Any] | None = None) -> None:
        self._settings = settings
        self._tools = tools if tools is not None else [count_words]

    def _options(self, request: AgentRequest, workdir: str) -> ClaudeAgentOptions:
        env = {"CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1"}
        if self._settings.agent_api_key is not None:
            env["ANTHROPIC_API_KEY"] = self._settings.agent_api_key.get_secret_value()
        if self._settings.agent_base_url:
            env["ANTHROPIC_BASE_URL"] = self._settings.agent_base_url
        return ClaudeAgentOptions(
            model=request.model or self._settings.agent_model,
            max_turns=self._settings.agent_max_turns,
            tools=[],
            mcp_servers={TOOL_SERVER: create_sdk_mcp_server(TOOL_SERVER, tools=self._tools)},
            allowed_tools=[TOOL_PREFIX + t.name for t in self._tools],
            include_partial_messages=True,
            # No user/project settings, CLAUDE.md or hooks from the server's disk, and no
            # transcripts left behind: each request is self-contained.
            setting_sources=[],
            extra_args={"bare": None, "no-session-persistence": None},
            cwd=workdir,
            env=env,
        )

    async def stream(self, request: AgentRequest) -> AsyncIterator[AgentChunk]:
        with tempfile.TemporaryDirectory(prefix="forge-agent-") as workdir:
            client = ClaudeSDKClient(self._options(request, workdir))
            finished = False
            try:
                await client.connect()
                await client.query(request.prompt)
                async for message in client.receive_response():
                    for chunk in _chunks(message):
                        yield chunk
                finished = True
            finally:
                if not finished:
                    # Abort the model call first: on stdin EOF alone the CLI would finish
                    # it, and the SDK waits 5 s before it sends SIGTERM.
                    with contextlib.suppress(Exception):
                        async with asyncio.timeout(2):
                            await client.interrupt()
                await client.disconnect()


def _chunks(message: object) -> list[AgentChunk]:
    # Only the top-level agent's output reaches the client, not a subagent's.
    if isinstance(message, StreamEvent):
        event = message.event
        if event.get("type") == "content_block_delta" and message.parent_tool_use_id is None:
            delta = event.get("delta", {})
            if delta.get("type") == "text_delta":
                return [AgentChunk("text", text=delta["text"])]
        return []
    if isinstance(message, AssistantMessage):
        # Text already arrived as stream events; only the finished tool calls are new.
        if message.error is not None:
            return [AgentChunk("error", text=f"model error: {message.error}")]
        return [
            AgentChunk(
                "tool_call",
                data={
                    "id": block.id,
                    "name": block.name.removeprefix(TOOL_PREFIX),
                    "arguments": block.input,
                },
            )
            for block in message.content
            if isinstance(block, ToolUseBlock)
        ]
    if isinstance(message, UserMessage) and isinstance(message.content, list):
        return [
            AgentChunk("tool_result", data={"id": block.tool_use_id, "output": _text(block)})
            for block in message.content
            if isinstance(block, ToolResultBlock)
        ]
    if isinstance(message, ResultMessage):
        chunks = [
            AgentChunk(
                "usage",
                usage=Usage(
                    model=model,
                    input_tokens=figures.get("inputTokens", 0),
                    output_tokens=figures.get("outputTokens", 0),
                    cache_read_tokens=figures.get("cacheReadInputTokens", 0),
                    cache_write_tokens=figures.get("cacheCreationInputTokens", 0),
                    cost_usd=figures.get("costUSD"),
                ),
            )
            for model, figures in (message.model_usage or {}).items()
        ]
        if message.is_error:
            reason = "; ".join(message.errors or []) or message.subtype
            chunks.append(AgentChunk("error", text=f"agent run failed: {reason}"))
        return chunks
    return []


def _text(block: ToolResultBlock) -> str:
    if isinstance(block.content, list):
        return "".join(part.get("text", "") for part in block.content if part.get("type") == "text")
    return block.content or ""


def build_sdk_runner(settings: Settings) -> AgentRunner:
    return ClaudeAgentRunner(settings)
