"""Anthropic Messages API (`POST /v1/messages`, streaming and not) playing the Script."""

from __future__ import annotations

import json
from typing import Any

from .http import FakeHTTPServer, JsonReply, Reply, Request, StreamReply, sse
from .script import TOOL_ARGUMENTS, Script, Turn


def _tool_output(messages: list[dict[str, Any]]) -> str | None:
    """The text of a tool_result in the last user message, if the agent sent one."""
    if not messages or not isinstance(messages[-1].get("content"), list):
        return None
    for block in messages[-1]["content"]:
        if block.get("type") == "tool_result":
            content = block.get("content")
            if isinstance(content, list):
                # Claude Code appends <system-reminder> blocks after the tool's own output.
                texts = [c.get("text", "") for c in content if c.get("type") == "text"]
                content = texts[0] if texts else ""
            return str(content or "").strip()
    return None


def _usage(turn: Turn) -> dict[str, int]:
    return {
        "input_tokens": turn.usage.input_tokens,
        "output_tokens": turn.usage.output_tokens,
        "cache_read_input_tokens": turn.usage.cache_read_tokens,
        "cache_creation_input_tokens": turn.usage.cache_write_tokens,
    }


def _content(turn: Turn) -> list[dict[str, Any]]:
    if turn.kind == "tool_call":
        return [
            {
                "type": "tool_use",
                "id": turn.call_id,
                "name": turn.tool_name,
                "input": TOOL_ARGUMENTS,
            }
        ]
    return [{"type": "text", "text": "".join(turn.text_parts)}]


def _events(turn: Turn, message_id: str) -> list[bytes]:
    start_usage = {**_usage(turn), "output_tokens": 1}
    message = {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": turn.model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": start_usage,
    }
    events = [sse({"type": "message_start", "message": message}, "message_start")]
    if turn.kind == "tool_call":
        block = {"type": "tool_use", "id": turn.call_id, "name": turn.tool_name, "input": {}}
        arguments = json.dumps(TOOL_ARGUMENTS)
        half = len(arguments) // 2
        deltas = [
            {"type": "input_json_delta", "partial_json": part}
            for part in (arguments[:half], arguments[half:])
        ]
        stop_reason = "tool_use"
    else:
        block = {"type": "text", "text": ""}
        deltas = [{"type": "text_delta", "text": part} for part in turn.text_parts]
        stop_reason = "end_turn"
    events.append(
        sse(
            {"type": "content_block_start", "index": 0, "content_block": block},
            "content_block_start",
        )
    )
    events += [
        sse({"type": "content_block_delta", "index": 0, "delta": d}, "content_block_delta")
        for d in deltas
    ]
    events.append(sse({"type": "content_block_stop", "index": 0}, "content_block_stop"))
    # Like the real API, message_delta carries the cumulative figures for the whole message.
    events.append(
        sse(
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                "usage": _usage(turn),
            },
            "message_delta",
        )
    )
    events.append(sse({"type": "message_stop"}, "message_stop"))
    return events


class FakeAnthropic(FakeHTTPServer):
    def __init__(self) -> None:
        self.script = Script()
        super().__init__(self._handle)

    def _handle(self, request: Request) -> Reply:
        if request.method != "POST" or request.path != "/v1/messages":
            return JsonReply({"type": "error", "error": {"type": "not_found_error"}}, 404)
        body = request.json()
        turn = self.script.next_turn(
            body["model"],
            tool_names=[t.get("name", "") for t in body.get("tools", [])],
            tool_output=_tool_output(body.get("messages", [])),
        )
        message_id = f"msg_{len(self.script.played)}"
        if body.get("stream"):
            # message_start, content_block_start, then the first text delta.
            return StreamReply(_events(turn, message_id), self.script.stall_after(turn, 2))
        return JsonReply(
            {
                "id": message_id,
                "type": "message",
                "role": "assistant",
                "model": turn.model,
                "content": _content(turn),
                "stop_reason": "tool_use" if turn.kind == "tool_call" else "end_turn",
                "stop_sequence": None,
                "usage": _usage(turn),
            }
        )
