"""The streams baseline of scripts/bench/app_streams.py: bare FastAPI, nothing around it.

`GET /sse` is FastAPI's native SSE (`EventSourceResponse`, a generator of
`ServerSentEvent`s) and `WS /ws` a bare WebSocket endpoint; both send what the generated
app's fake agent sends (a tool call, then one event every BENCH_EVENT_INTERVAL seconds, with
the same JSON), so the difference measured is the app's own per-stream and per-event work.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator

from fastapi import FastAPI, WebSocket, WebSocketDisconnect
from fastapi.sse import EventSourceResponse, ServerSentEvent

INTERVAL = float(os.environ.get("BENCH_EVENT_INTERVAL", "0.5"))

app = FastAPI()


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


def event(i: int) -> dict[str, object]:
    if i == 0:
        return {
            "type": "tool_call",
            "text": "",
            "data": {"id": "call_1"},
            "usage": None,
        }
    return {"type": "text", "text": f" w{i}", "data": {}, "usage": None}


@app.get("/sse", response_class=EventSourceResponse)
async def sse(words: int = 10) -> AsyncIterator[ServerSentEvent]:
    for i in range(words + 1):
        if i:
            await asyncio.sleep(INTERVAL)
        data = event(i)
        yield ServerSentEvent(event=str(data["type"]), id=str(i + 1), data=data)
    yield ServerSentEvent(event="done", id=str(words + 2), data={"type": "done"})


@app.websocket("/ws")
async def ws(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_text(json.dumps({"type": "ready"}))
    try:
        message = json.loads(await websocket.receive_text())
        words = len(str(message.get("prompt", "")).split())
        for i in range(words + 1):
            if i:
                await asyncio.sleep(INTERVAL)
            await websocket.send_text(json.dumps(event(i)))
        await websocket.send_text(json.dumps({"type": "done"}))
        while True:
            await websocket.receive_text()
    except WebSocketDisconnect:
        pass
