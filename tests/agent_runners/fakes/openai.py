"""OpenAI Responses API (`POST /v1/responses`) and Chat Completions API
(`POST /v1/chat/completions`), streaming and not, playing the Script."""

from __future__ import annotations

import json
import time
from typing import Any

from .http import FakeHTTPServer, JsonReply, Reply, Request, StreamReply, sse
from .script import TOOL_ARGUMENTS, Script, Turn

ARGUMENTS = json.dumps(TOOL_ARGUMENTS)


def _split(text: str) -> list[str]:
    half = len(text) // 2
    return [text[:half], text[half:]]


class FakeOpenAI(FakeHTTPServer):
    def __init__(self) -> None:
        self.script = Script()
        super().__init__(self._handle)

    def _handle(self, request: Request) -> Reply:
        if request.method == "POST" and request.path == "/v1/responses":
            return self._responses(request.json())
        if request.method == "POST" and request.path == "/v1/chat/completions":
            return self._chat(request.json())
        return JsonReply(
            {"error": {"message": f"no route {request.path}", "type": "invalid_request_error"}}, 404
        )

    # --- Responses API -------------------------------------------------------------------

    def _responses(self, body: dict[str, Any]) -> Reply:
        items = body["input"] if isinstance(body["input"], list) else []
        outputs = [i.get("output") for i in items if i.get("type") == "function_call_output"]
        turn = self.script.next_turn(
            body["model"],
            tool_names=[t.get("name", "") for t in body.get("tools", [])],
            tool_output=str(outputs[-1])
            if outputs and items[-1].get("type") == "function_call_output"
            else None,
        )
        n = len(self.script.played)
        if turn.kind == "tool_call":
            item = {
                "type": "function_call",
                "id": f"fc_{n}",
                "call_id": turn.call_id,
                "name": turn.tool_name,
            }
            done_item = {**item, "arguments": ARGUMENTS, "status": "completed"}
        else:
            item = {"type": "message", "id": f"msg_{n}", "role": "assistant"}
            text = "".join(turn.text_parts)
            done_item = {**item, "status": "completed", "content": [_output_text(text)]}
        if not body.get("stream"):
            return JsonReply(_response(turn, n, "completed", [done_item]))

        seq = iter(range(10_000))
        events = [
            {"type": "response.created", "response": _response(turn, n, "in_progress", [])},
            {
                "type": "response.output_item.added",
                "output_index": 0,
                "item": {
                    **item,
                    "status": "in_progress",
                    **({"arguments": ""} if turn.kind == "tool_call" else {"content": []}),
                },
            },
        ]
        where = {"item_id": item["id"], "output_index": 0}
        if turn.kind == "tool_call":
            events += [
                {"type": "response.function_call_arguments.delta", **where, "delta": d}
                for d in _split(ARGUMENTS)
            ]
            events.append(
                {
                    "type": "response.function_call_arguments.done",
                    **where,
                    "name": turn.tool_name,
                    "arguments": ARGUMENTS,
                }
            )
            first_text = -1
        else:
            part = {**where, "content_index": 0}
            events.append({"type": "response.content_part.added", **part, "part": _output_text("")})
            first_text = len(events)
            events += [
                {"type": "response.output_text.delta", **part, "delta": d, "logprobs": []}
                for d in turn.text_parts
            ]
            events.append(
                {"type": "response.output_text.done", **part, "text": text, "logprobs": []}
            )
            events.append(
                {"type": "response.content_part.done", **part, "part": _output_text(text)}
            )
        events.append({"type": "response.output_item.done", "output_index": 0, "item": done_item})
        events.append(
            {"type": "response.completed", "response": _response(turn, n, "completed", [done_item])}
        )
        encoded = [sse({**e, "sequence_number": next(seq)}, e["type"]) for e in events]
        return StreamReply(encoded, self.script.stall_after(turn, first_text))

    # --- Chat Completions API ------------------------------------------------------------

    def _chat(self, body: dict[str, Any]) -> Reply:
        messages = body["messages"]
        turn = self.script.next_turn(
            body["model"],
            tool_names=[t["function"]["name"] for t in body.get("tools", [])],
            tool_output=str(messages[-1]["content"]) if messages[-1]["role"] == "tool" else None,
            cache_writes=False,
        )
        n = len(self.script.played)
        head = {"id": f"chatcmpl-{n}", "created": int(time.time()), "model": turn.model}
        call = {
            "id": turn.call_id,
            "type": "function",
            "function": {"name": turn.tool_name, "arguments": ARGUMENTS},
        }
        finish = "tool_calls" if turn.kind == "tool_call" else "stop"
        if not body.get("stream"):
            message: dict[str, Any] = {"role": "assistant", "content": None}
            if turn.kind == "tool_call":
                message["tool_calls"] = [call]
            else:
                message["content"] = "".join(turn.text_parts)
            choice = {"index": 0, "message": message, "finish_reason": finish}
            return JsonReply(
                {
                    **head,
                    "object": "chat.completion",
                    "choices": [choice],
                    "usage": _chat_usage(turn),
                }
            )

        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
            choice = {"index": 0, "delta": delta, "finish_reason": finish_reason}
            return {**head, "object": "chat.completion.chunk", "choices": [choice]}

        chunks = [chunk({"role": "assistant", "content": ""})]
        if turn.kind == "tool_call":
            first = {**call, "function": {"name": turn.tool_name, "arguments": ""}}
            chunks.append(chunk({"tool_calls": [{"index": 0, **first}]}))
            chunks += [
                chunk({"tool_calls": [{"index": 0, "function": {"arguments": d}}]})
                for d in _split(ARGUMENTS)
            ]
            first_text = -1
        else:
            first_text = len(chunks)
            chunks += [chunk({"content": part}) for part in turn.text_parts]
        chunks.append(chunk({}, finish))
        if body.get("stream_options", {}).get("include_usage"):
            chunks.append(
                {
                    **head,
                    "object": "chat.completion.chunk",
                    "choices": [],
                    "usage": _chat_usage(turn),
                }
            )
        encoded = [sse(c) for c in chunks] + [sse("[DONE]")]
        return StreamReply(encoded, self.script.stall_after(turn, first_text))


def _output_text(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def _response(turn: Turn, n: int, status: str, output: list[dict[str, Any]]) -> dict[str, Any]:
    u = turn.usage
    usage = {
        # As in the real API, input_tokens counts the cached ones too (the Script's don't).
        "input_tokens": u.input_tokens + u.cache_read_tokens + u.cache_write_tokens,
        "input_tokens_details": {
            "cached_tokens": u.cache_read_tokens,
            "cache_write_tokens": u.cache_write_tokens,
        },
        "output_tokens": u.output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": u.input_tokens
        + u.cache_read_tokens
        + u.cache_write_tokens
        + u.output_tokens,
    }
    return {
        "id": f"resp_{n}",
        "object": "response",
        "created_at": int(time.time()),
        "model": turn.model,
        "status": status,
        "output": output,
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "error": None,
        "incomplete_details": None,
        "instructions": None,
        "metadata": {},
        "temperature": 1.0,
        "top_p": 1.0,
        "text": {"format": {"type": "text"}},
        "usage": usage if status == "completed" else None,
    }


def _chat_usage(turn: Turn) -> dict[str, Any]:
    u = turn.usage
    prompt_tokens = u.input_tokens + u.cache_read_tokens
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": u.output_tokens,
        "total_tokens": prompt_tokens + u.output_tokens,
        "prompt_tokens_details": {"cached_tokens": u.cache_read_tokens},
        "completion_tokens_details": {"reasoning_tokens": 0},
    }
