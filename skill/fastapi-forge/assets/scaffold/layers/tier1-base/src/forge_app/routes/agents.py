"""Agent endpoints: run (sync), run/async (job), run/stream (SSE), ws, job status, cancel.

`run_router` holds the routes that run the agent in this process; `create_app` mounts it
under the per-process cap on concurrent runs (`routes/__init__.py`).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Annotated, Any

import structlog
from fastapi import (
    APIRouter,
    Depends,
    Header,
    Query,
    Response,
    WebSocket,
    WebSocketDisconnect,
    status,
)
from fastapi.sse import KEEPALIVE_COMMENT, format_sse_event
from pydantic import ValidationError
from pydantic_core import to_json
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocketState

from ..agents.base import AgentChunk, AgentRequest
from ..dependencies import PrincipalDep, ResourcesDep
from ..errors import AppError
from ..metrics import AGENT_RUNS
from ..middleware.rate_limit import RATE_LIMITER, rate_key
from ..models.schemas import (
    MAX_PROMPT_CHARS,
    ErrorResponse,
    JobView,
    ModelName,
    RunRequest,
    RunResponse,
    StreamEvent,
    WsCancel,
    WsPing,
    WsRun,
    ws_client_message,
)
from ..services.agent_service import AgentService, AgentServiceDep, stop_run
from ..services.idempotency import REPLAYED_HEADER
from ..services.run_slots import RETRY_AFTER_SECONDS, run_slot

router = APIRouter(prefix="/agents", tags=["agents"])
run_router = APIRouter(prefix="/agents", tags=["agents"])
log = structlog.get_logger(__name__)

ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse} for code in (401, 404, 409, 422, 429, 502, 503, 504)
}

# WebSocket close codes (RFC 6455): 1003 data the server does not accept, 1011 unexpected
# server error. Authentication never gets this far: it is refused at the handshake.
WS_UNSUPPORTED_DATA = status.WS_1003_UNSUPPORTED_DATA
WS_INTERNAL_ERROR = status.WS_1011_INTERNAL_ERROR


# The last event of a run, over SSE and WebSocket alike.
DONE = StreamEvent(type="done")
TIMED_OUT = StreamEvent(type="error", text="the agent did not finish in time")
DONE_JSON = DONE.model_dump_json()
TIMED_OUT_JSON = TIMED_OUT.model_dump_json()
# As FastAPI's EventSourceResponse: a `: ping` comment after 15 s without an event.
SSE_PING_SECONDS = 15.0


def event_json(chunk: AgentChunk) -> str:
    # AgentChunk and Usage have StreamEvent's and UsageView's fields in the same order, so
    # the chunk serializes to the StreamEvent JSON directly: no model built per event.
    return to_json(chunk).decode()


# --8<-- [start:run]
@run_router.post("/run", responses=ERRORS)
async def run_agent(body: RunRequest, service: AgentServiceDep, _: PrincipalDep) -> RunResponse:
    """Run the agent and wait for its answer (bounded by AGENT_TIMEOUT_SECONDS: 504)."""
    return await service.run(body)
    # --8<-- [end:run]


IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        min_length=1,
        max_length=255,
        description=(
            "A unique value per job the client means to start (a UUID). Retrying with the "
            "same key and body returns the first job (header Idempotent-Replayed: true) "
            "instead of paying for another run; the same key with another body is refused "
            "with 422 idempotency_key_reused. Keys are per caller and kept for "
            "IDEMPOTENCY_KEY_TTL_SECONDS (a day by default)."
        ),
    ),
]


@router.post("/run/async", status_code=status.HTTP_202_ACCEPTED, responses=ERRORS)
async def run_agent_async(
    body: RunRequest,
    service: AgentServiceDep,
    principal: PrincipalDep,
    response: Response,
    idempotency_key: IdempotencyKeyHeader = None,
) -> JobView:
    """Queue the run as a job; poll `GET /agents/jobs/{job_id}` (the Location header)."""
    job, replayed = await service.submit(principal, body, idempotency_key)
    response.headers["Location"] = f"{router.prefix}/jobs/{job.job_id}"
    if replayed:
        response.headers[REPLAYED_HEADER] = "true"
    return job.view()


async def allowed_model(
    service: AgentServiceDep, model: Annotated[ModelName | None, Query()] = None
) -> str | None:
    # Checked before the stream starts: once it has, a refusal can no longer be a 422.
    service.check_model(model)
    return model


class AgentEventStream(Response):
    """The SSE answer of one run, at the least cost per stream and per event.

    The run has one task of its own, which encodes each chunk and sends it: no queue,
    memory stream or task group in between (FastAPI's EventSourceResponse adds two tasks,
    two memory streams and a cancel scope per stream). The request's task waits for the
    client to leave, sends `: ping` after SSE_PING_SECONDS without an event, and if the
    client left mid-run cancels the run once and waits for its cleanup (bounded)."""

    media_type = "text/event-stream"

    def __init__(self, service: AgentService, request: AgentRequest) -> None:
        self.status_code = 200
        self.background = None
        self.init_headers({"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        self.service = service
        self.request = request
        self.sequence = 0
        self.outcome = "disconnected"
        self.loop = asyncio.get_running_loop()
        self.sent_at = self.loop.time()
        self.send: Send | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.send = send
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        loop, wake = self.loop, None
        run = loop.create_task(self.run())

        def run_ended(_: object) -> None:
            # Wakes the wait for the client below: the response is complete.
            if wake is not None and not wake.expired():
                wake.reschedule(loop.time())

        run.add_done_callback(run_ended)
        try:
            while not run.done():
                try:
                    async with asyncio.timeout_at(self.sent_at + SSE_PING_SECONDS) as wake:
                        message = await receive()
                except TimeoutError:
                    wake = None
                    if not run.done() and loop.time() >= self.sent_at + SSE_PING_SECONDS:
                        await self.write(KEEPALIVE_COMMENT)
                    continue
                wake = None
                if message["type"] == "http.disconnect":
                    break
        finally:
            await stop_run(run)
        # A run cancelled because its client left, or abandoned after its cleanup time,
        # has nothing to report: only a run that failed on its own raises here.
        if run.done() and not run.cancelled():
            run.result()

    async def write(self, body: bytes, more_body: bool = True) -> None:
        assert self.send is not None
        self.sent_at = self.loop.time()
        await self.send({"type": "http.response.body", "body": body, "more_body": more_body})

    async def emit(self, chunk: AgentChunk) -> None:
        self.sequence += 1
        if chunk.type == "error":
            self.outcome = "failed"
        await self.write(
            format_sse_event(data_str=event_json(chunk), event=chunk.type, id=str(self.sequence))
        )

    async def run(self) -> None:
        try:
            await self.service.pump(self.request, self.emit)
            last = b""
            if self.outcome != "failed":
                self.outcome = "completed"
                last = format_sse_event(data_str=DONE_JSON, event="done", id=str(self.sequence + 1))
        except TimeoutError:
            self.outcome = "timeout"
            last = format_sse_event(
                data_str=TIMED_OUT_JSON, event="error", id=str(self.sequence + 1)
            )
        finally:
            # A client that goes away cancels this task: the cancellation runs through the
            # agent stream (which stops), and the outcome stays "disconnected".
            AGENT_RUNS.labels(mode="stream", outcome=self.outcome).inc()
            log.info("sse_stream_closed", outcome=self.outcome, events=self.sequence)
        await self.write(last, more_body=False)


# --8<-- [start:stream]
@run_router.get("/run/stream", response_class=AgentEventStream, responses=ERRORS)
async def stream_agent(
    prompt: Annotated[str, Query(min_length=1, max_length=MAX_PROMPT_CHARS)],
    service: AgentServiceDep,
    _: PrincipalDep,
    model: Annotated[str | None, Depends(allowed_model)],
) -> AgentEventStream:
    """Server-Sent Events: one `event:` per chunk type (text, tool_call, tool_result,
    usage), then `done` or `error`. A `: ping` comment is sent whenever nothing was sent
    for 15 s, so proxies keep idle streams open. Browsers: `?ticket=` from
    `POST /auth/tickets` instead of the Authorization header."""
    return AgentEventStream(service, AgentRequest(prompt=prompt, model=model))
    # --8<-- [end:stream]


# --8<-- [start:jobs]
@router.get("/jobs/{job_id}", responses=ERRORS)
async def get_job(job_id: uuid.UUID, service: AgentServiceDep, principal: PrincipalDep) -> JobView:
    return (await service.get_job(principal, job_id)).view()


@router.delete("/jobs/{job_id}", status_code=status.HTTP_202_ACCEPTED, responses=ERRORS)
async def cancel_job(
    job_id: uuid.UUID, service: AgentServiceDep, principal: PrincipalDep
) -> JobView:
    """Cancel a queued or running job: 202, cancellation requested (the body shows the job
    as it is now; poll it until `cancelled`). 409 if it had already finished, 404 if it
    does not exist or is someone else's."""
    return (await service.cancel_job(principal, job_id)).view()
    # --8<-- [end:jobs]


# --- WebSocket ---------------------------------------------------------------------------
#
# Authentication happens at the handshake (AuthMiddleware): the Authorization header (or
# X-API-Key) from non-browser clients, `?ticket=` from browsers (POST /auth/tickets).
# Without valid credentials the handshake is refused with HTTP 401; nothing is accepted.
#
# --8<-- [start:ws-protocol]
# Protocol, JSON text frames:
#   server -> {"type": "ready"}                   once accepted
#   client -> {"type": "run", "prompt": "...", "model": null}
#   server -> {"type": "text" | "tool_call" | "tool_result" | "usage", ...} ... then
#             {"type": "done", ...} or {"type": "error", ...}: each frame the SSE event's data
#             (over the caller's rate limit or run cap: "error", data.code "rate_limited"
#             or "too_many_concurrent_runs")
#   client -> {"type": "cancel"}                  stops the current run: {"type": "cancelled"}
#   client -> {"type": "ping"}                    server -> {"type": "pong"}
#   server -> {"type": "ping"}                    every WS_PING_INTERVAL_SECONDS
# Close codes: 1003 a message the server cannot parse, 1011 an unexpected server error.
# --8<-- [end:ws-protocol]


class WsSession:
    def __init__(self, websocket: WebSocket, service: AgentService) -> None:
        self.websocket = websocket
        self.service = service
        self.send_lock = asyncio.Lock()
        self.run_task: asyncio.Task[None] | None = None

    async def send(self, payload: dict[str, Any]) -> None:
        async with self.send_lock:
            await self.websocket.send_text(json.dumps(payload))

    async def send_text(self, frame: str) -> None:
        async with self.send_lock:
            await self.websocket.send_text(frame)

    async def run(self, message: WsRun) -> None:
        request = AgentRequest(
            prompt=message.prompt, model=message.model, session_id=message.session_id
        )
        # Each run costs the caller one request of the rate limit, as POST /agents/run does.
        decision = await RATE_LIMITER.hit(self.service.resources, self.websocket.scope)
        if decision is not None and not decision.allowed:
            data = {"code": "rate_limited", "retry_after": decision.retry_after}
            refused = StreamEvent(type="error", text="too many requests; retry later", data=data)
            await self.send(refused.model_dump(mode="json"))
            return
        try:
            async with run_slot(self.service.resources, rate_key(self.websocket.scope)):
                last = await self.stream(request)
        except AppError as over:  # only the slot raises it: `stream` handles the rest
            data = {"code": over.code, "retry_after": RETRY_AFTER_SECONDS}
            last = StreamEvent(type="error", text=over.message, data=data).model_dump_json()
        # The last frame goes out once the slot is free: a client that runs again as soon
        # as it has it must find neither this run in progress nor its slot taken.
        if last is None:
            return
        try:
            await self.send_text(last)
        except Exception:  # the client left; the connection handler cleans up
            log.warning("websocket_run_aborted", exc_info=True)

    async def stream(self, request: AgentRequest) -> str | None:
        """Sends the run's chunks; returns its last frame (done or error), unsent."""
        outcome = "completed"
        failed: str | None = None

        async def emit(chunk: AgentChunk) -> None:
            nonlocal outcome, failed
            if chunk.type == "error":  # the run's last chunk
                outcome, failed = "failed", event_json(chunk)
            else:
                await self.send_text(event_json(chunk))

        try:
            await self.service.pump(request, emit)
            return failed or DONE_JSON
        except TimeoutError:
            outcome = "timeout"
            return TIMED_OUT_JSON
        except asyncio.CancelledError:
            outcome = "cancelled"
            raise
        except Exception:
            # Usually the client left mid-run; the connection handler cleans up.
            outcome = "failed"
            log.warning("websocket_run_aborted", exc_info=True)
            return None
        finally:
            AGENT_RUNS.labels(mode="ws", outcome=outcome).inc()

    async def cancel_run(self) -> bool:
        task, self.run_task = self.run_task, None
        if task is None or task.done():
            return False
        await stop_run(task)
        return True

    async def serve(self) -> None:
        # The heartbeat is a deadline on the wait for the client's next message, not a
        # task of its own.
        loop = asyncio.get_running_loop()
        interval = self.service.settings.ws_ping_interval_seconds
        next_ping = loop.time() + interval
        while True:
            try:
                async with asyncio.timeout_at(next_ping):
                    raw = await self.websocket.receive_text()
            except TimeoutError:
                next_ping = loop.time() + interval
                await self.send({"type": "ping"})
                continue
            try:
                message = ws_client_message.validate_json(raw)
            except ValidationError:
                await self.websocket.close(WS_UNSUPPORTED_DATA, "invalid message")
                return
            if isinstance(message, WsPing):
                await self.send({"type": "pong"})
            elif isinstance(message, WsCancel):
                if await self.cancel_run():
                    await self.send({"type": "cancelled"})
            elif self.run_task is not None and not self.run_task.done():
                await self.send({"type": "error", "text": "a run is already in progress"})
            else:
                try:
                    self.service.check_model(message.model)
                except AppError as refused:
                    await self.send({"type": "error", "text": refused.message})
                    continue
                self.run_task = asyncio.create_task(self.run(message))


@run_router.websocket("/ws")
async def agent_websocket(
    websocket: WebSocket, resources: ResourcesDep, principal: PrincipalDep
) -> None:
    await websocket.accept()
    structlog.contextvars.bind_contextvars(subject=principal.subject)
    session = WsSession(websocket, AgentService(resources))
    await session.send({"type": "ready"})
    try:
        await session.serve()
    except WebSocketDisconnect:
        log.info("websocket_client_left")
    except Exception:
        log.exception("websocket_error")
        if websocket.application_state == WebSocketState.CONNECTED:
            await websocket.close(WS_INTERNAL_ERROR, "internal error")
    finally:
        await session.cancel_run()
