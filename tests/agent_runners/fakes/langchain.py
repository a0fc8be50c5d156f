"""langchain-core's fake chat model taught to play the Script: streamed text, tool calls
and usage metadata, which `GenericFakeChatModel` alone does not stream."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun
from langchain_core.language_models import LanguageModelInput
from langchain_core.language_models.chat_models import agenerate_from_stream
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, ToolMessage
from langchain_core.outputs import ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import ConfigDict, Field

from .http import Hangups
from .script import TOOL_ARGUMENTS, Script, Turn


class ScriptedChatModel(GenericFakeChatModel):
    model_config = ConfigDict(arbitrary_types_allowed=True)

    model_name: str = "fake-chat-model"
    script: Script = Field(default_factory=Script)
    # Streams the caller abandoned, counted like a fake server's hung-up connections.
    hangups: Hangups = Field(default_factory=Hangups)
    messages: Iterator[AIMessage | str] = Field(default_factory=lambda: iter(()))

    def bind_tools(
        self, tools: Sequence[Any], **kwargs: Any
    ) -> Runnable[LanguageModelInput, AIMessage]:
        return self.bind(tools=[convert_to_openai_tool(t) for t in tools], **kwargs)

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        last = messages[-1]
        turn = self.script.next_turn(
            self.model_name,
            tool_names=[t["function"]["name"] for t in kwargs.get("tools", [])],
            tool_output=str(last.content) if isinstance(last, ToolMessage) else None,
        )
        chunks = _chunks(turn)
        stall_after = self.script.stall_after(turn, 0)
        for index, chunk in enumerate(chunks):
            if index == stall_after:
                try:
                    await asyncio.Event().wait()
                finally:
                    self.hangups.record()
            yield chunk

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return await agenerate_from_stream(self._astream(messages, stop, run_manager, **kwargs))


def _chunks(turn: Turn) -> list[ChatGenerationChunk]:
    u = turn.usage
    usage = {
        # LangChain counts cache reads and writes in input_tokens; the Script doesn't.
        "input_tokens": u.input_tokens + u.cache_read_tokens + u.cache_write_tokens,
        "output_tokens": u.output_tokens,
        "total_tokens": u.input_tokens
        + u.cache_read_tokens
        + u.cache_write_tokens
        + u.output_tokens,
        "input_token_details": {
            "cache_read": u.cache_read_tokens,
            "cache_creation": u.cache_write_tokens,
        },
    }
    metadata = {"model_name": turn.model}
    if turn.kind == "tool_call":
        call = {
            "name": turn.tool_name,
            "args": json.dumps(TOOL_ARGUMENTS),
            "id": turn.call_id,
            "index": 0,
        }
        messages = [AIMessageChunk(content="", tool_call_chunks=[call])]
    else:
        messages = [AIMessageChunk(content=part) for part in turn.text_parts]
    messages.append(AIMessageChunk(content="", usage_metadata=usage, response_metadata=metadata))
    return [ChatGenerationChunk(message=m) for m in messages]
