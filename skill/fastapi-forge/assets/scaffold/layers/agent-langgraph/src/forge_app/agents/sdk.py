"""Agent runner on LangGraph: a two-node tool loop (model, tools), streamed.

Any LangChain chat model fits; `build_sdk_runner(settings, model=...)` takes one (tests pass
a fake), otherwise Anthropic's is built from the settings.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    HumanMessage,
    ToolMessage,
)
from langchain_core.tools import (
    BaseTool,
    tool,
)
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode, tools_condition

from .base import (
    AgentChunk,
    AgentRequest,
    AgentRunner,
    Usage,
)

if TYPE_CHECKING:
    from langgraph.graph.state import CompiledStateGraph

    from ..config import Settings


@tool
def count_words(text: str) -> str:
    """Count the words in a text."""
    return str(len(text.split()))


def build_graph(model: BaseChatModel, tools: list[BaseTool]) -> CompiledStateGraph[Any]:
    bound = model.bind_tools(tools)

    async def call_model(state: MessagesState) -> dict[str, list[Any]]:
        return {"messages": [await bound.ainvoke(state["messages"])]}

    graph = StateGraph(MessagesState)
    graph.add_node("model", call_model)
    graph.add_node("tools", ToolNode(tools))
    graph.add_edge(START, "model")
    graph.add_conditional_edges("model", tools_condition)  # tool calls -> tools, else end
    graph.add_edge("tools", "model")
    return graph.compile()


def anthropic_chat_model(settings: Settings, model: str | None = None) -> BaseChatModel:
    # Imported here: only the provider the app uses needs to be installed.
    from langchain_anthropic import ChatAnthropic

    options: dict[str, Any] = {}
    if settings.agent_api_key is not None:  # else ANTHROPIC_API_KEY from the environment
        options["api_key"] = settings.agent_api_key
    if settings.agent_base_url:
        options["base_url"] = settings.agent_base_url
    return ChatAnthropic(
        model=model or settings.agent_model,
        streaming=True,
        stream_usage=True,
        # The caller's timeout bounds the whole run, not each attempt.
        max_retries=0,
        **options,
    )


class LangGraphRunner:
    name = "langgraph"

    def __init__(self, settings: Settings, model: BaseChatModel | None = None) -> None:
        self._settings = settings
        self._tools: list[BaseTool] = [count_words]
        self._graph = build_graph(model or anthropic_chat_model(settings), self._tools)

    def _graph_for(self, request: AgentRequest) -> CompiledStateGraph[Any]:
        if request.model is None:
            return self._graph
        return build_graph(anthropic_chat_model(self._settings, request.model), self._tools)

    async def stream(self, request: AgentRequest) -> AsyncIterator[AgentChunk]:
        usage: dict[str, Usage] = {}
        # Each model call plus each tool step is one LangGraph step.
        config = {"recursion_limit": 2 * self._settings.agent_max_turns + 1}
        parts = self._graph_for(request).astream(
            {"messages": [HumanMessage(request.prompt)]},
            config=config,
            stream_mode=["messages", "updates"],
        )
        try:
            async for mode, data in parts:
                if mode == "messages":
                    # Token by token, from the model node only (not from tools that call one).
                    message, metadata = data
                    from_model = metadata.get("langgraph_node") == "model"
                    if from_model and isinstance(message, AIMessageChunk) and message.text:
                        yield AgentChunk("text", text=message.text)
                    continue
                for node, update in data.items():
                    for message in (update or {}).get("messages", []):
                        for chunk in _step_chunks(node, message, usage):
                            yield chunk
        finally:
            # Cancels the model call in flight (and closes its HTTP stream) on early exit.
            await parts.aclose()
        for figures in usage.values():
            yield AgentChunk("usage", usage=figures)


def _step_chunks(node: str, message: Any, usage: dict[str, Usage]) -> list[AgentChunk]:
    if node == "model" and isinstance(message, AIMessage):
        _add_usage(usage, message)
        return [
            AgentChunk("tool_call", data={"id": c["id"], "name": c["name"], "arguments": c["args"]})
            for c in message.tool_calls
        ]
    if node == "tools" and isinstance(message, ToolMessage):
        return [
            AgentChunk("tool_result", data={"id": message.tool_call_id, "output": message.text})
        ]
    return []


def _add_usage(usage: dict[str, Usage], message: AIMessage) -> None:
    meta = message.usage_metadata
    if not meta:
        return
    model = message.response_metadata.get("model_name", "unknown")
    details = meta.get("input_token_details", {})
    cache_read = details.get("cache_read", 0) or 0
    cache_write = details.get("cache_creation", 0) or 0
    seen = usage.get(model, Usage(model=model))
    usage[model] = Usage(
        model=model,
        # LangChain counts cache reads and writes in input_tokens; Usage keeps them apart.
        input_tokens=seen.input_tokens + meta["input_tokens"] - cache_read - cache_write,
        output_tokens=seen.output_tokens + meta["output_tokens"],
        cache_read_tokens=seen.cache_read_tokens + cache_read,
        cache_write_tokens=seen.cache_write_tokens + cache_write,
    )


def build_sdk_runner(settings: Settings, model: BaseChatModel | None = None) -> AgentRunner:
    return LangGraphRunner(settings, model)
