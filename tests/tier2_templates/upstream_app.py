"""A small upstream service for the gateway tests, run as a real uvicorn process.

`UPSTREAM_NAME` (env) is both its name and its route prefix, so that the gateway's
`/users/...` reaches `/users/...` here. Besides an echo it has gates that the tests
open from outside, so that they observe order instead of measuring time: an SSE
stream that sends its next event only when released, and a request that answers only
when released.
"""

import asyncio
import os
from collections import Counter
from collections.abc import AsyncIterator

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.sse import EventSourceResponse, ServerSentEvent

NAME = os.environ.get("UPSTREAM_NAME", "users")

app = FastAPI()
router = APIRouter(prefix=f"/{NAME}")
hits: Counter[str] = Counter()
stream_gates: dict[str, asyncio.Queue[None]] = {}
stream_sent: Counter[str] = Counter()
stream_closed: set[str] = set()
holds: dict[str, asyncio.Event] = {}


@app.get("/health")
@app.get("/health/ready")
async def health() -> dict[str, str]:
    return {"status": "ok", "service": NAME}


@router.get("/stats")
async def stats() -> dict[str, int]:
    return dict(hits)


@router.api_route("/echo", methods=["GET", "POST", "PUT", "DELETE", "PATCH"])
@router.api_route(
    "/echo/{rest:path}", methods=["GET", "POST", "PUT", "DELETE", "PATCH"]
)
async def echo(request: Request) -> dict[str, object]:
    hits["echo"] += 1
    body = await request.body()
    return {
        "service": NAME,
        "method": request.method,
        "raw_path": request.scope["raw_path"].decode(),
        "query": request.scope["query_string"].decode(),
        "headers": {k: v for k, v in request.headers.items()},
        "body": body.decode(),
    }


@router.api_route("/drain", methods=["POST", "PUT"])
async def drain(request: Request) -> dict[str, int]:
    """Reads the body as it arrives, keeping only its length (for big uploads)."""
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
    return {"bytes": size}


@router.api_route("/status/{code}", methods=["GET", "POST"])
async def status(code: int, request: Request) -> Response:
    hits[f"{request.method} status/{code}"] += 1
    return Response(
        f'{{"status": {code}}}', status_code=code, media_type="application/json"
    )


@router.get("/stream/{stream_id}", response_class=EventSourceResponse)
async def stream(stream_id: str, events: int = 3) -> AsyncIterator[ServerSentEvent]:
    gate = stream_gates.setdefault(stream_id, asyncio.Queue())
    try:
        for index in range(events):
            if index:
                await gate.get()
            stream_sent[stream_id] += 1
            yield ServerSentEvent(data={"index": index}, event="token", id=str(index))
    finally:
        # Runs when the stream ends or when the client (the gateway) disconnects.
        stream_closed.add(stream_id)


@router.post("/stream/{stream_id}/release")
async def release_stream(stream_id: str) -> dict[str, int]:
    stream_gates.setdefault(stream_id, asyncio.Queue()).put_nowait(None)
    return {"sent": stream_sent[stream_id]}


@router.get("/stream/{stream_id}/sent")
async def stream_progress(stream_id: str) -> dict[str, int | bool]:
    return {"sent": stream_sent[stream_id], "closed": stream_id in stream_closed}


@router.get("/hold/{hold_id}")
async def hold(hold_id: str) -> dict[str, str]:
    hits[f"hold/{hold_id}"] += 1
    await holds.setdefault(hold_id, asyncio.Event()).wait()
    return {"hold": hold_id}


@router.get("/hold/{hold_id}/arrived")
async def hold_arrived(hold_id: str) -> dict[str, bool]:
    return {"arrived": hold_id in holds}


@router.post("/hold/{hold_id}/release")
async def release_hold(hold_id: str) -> dict[str, bool]:
    holds.setdefault(hold_id, asyncio.Event()).set()
    return {"released": True}


app.include_router(router)
