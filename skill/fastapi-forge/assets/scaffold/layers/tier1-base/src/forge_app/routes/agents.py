"""Agent endpoints: run (sync), run/async (job), run/stream (SSE), ws, job status, cancel.

`run_router` holds the routes that run the agent in this process; `create_app` mounts it
under the per-process cap on concurrent runs (`routes/__init__.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
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
from fastapi.sse import EventSourceResponse, ServerSentEvent
from pydantic import ValidationError
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
    UsageView,
    WsCancel,
    WsPing,
    WsRun,
    ws_client_message,
)
from ..services.agent_service import AgentService, AgentServiceDep
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


def to_event(chunk: AgentChunk) -> StreamEvent:
    return StreamEvent(
        type=chunk.type,
        text=chunk.text,
        data=chunk.data,
        usage=UsageView.model_validate(chunk.usage, from_attributes=True) if chunk.usage else None,
    )


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


# --8<-- [start:stream]
@run_router.get("/run/stream", response_class=EventSourceResponse, responses=ERRORS)
async def stream_agent(
    prompt: Annotated[str, Query(min_length=1, max_length=MAX_PROMPT_CHARS)],
    service: AgentServiceDep,
    _: PrincipalDep,
    model: Annotated[str | None, Depends(allowed_model)],
) -> AsyncIterator[ServerSentEvent]:
    """Server-Sent Events: one `event:` per chunk type (text, tool_call, tool_result,
    usage), then `done` or `error`. FastAPI sends a `: ping` comment whenever nothing was
    sent for 15 s, so proxies keep idle streams open. Browsers: `?ticket=` from
    `POST /auth/tickets` instead of the Authorization header."""
    sequence = 0
    outcome = "disconnected"
    try:
        async for chunk in service.stream(AgentRequest(prompt=prompt, model=model)):
            sequence += 1
            event = to_event(chunk)
            if chunk.type == "error":
                outcome = "failed"
                yield ServerSentEvent(event="error", id=str(sequence), data=event)
                return
            yield ServerSentEvent(event=chunk.type, id=str(sequence), data=event)
        outcome = "completed"
        yield ServerSentEvent(event="done", id=str(sequence + 1), data=DONE)
    except TimeoutError:
        outcome = "timeout"
        yield ServerSentEvent(event="error", id=str(sequence + 1), data=TIMED_OUT)
    finally:
        # A client that goes away cancels the task iterating this generator: the
        # cancellation runs through the agent stream (which stops), and the outcome stays
        # "disconnected".
        AGENT_RUNS.labels(mode="stream", outcome=outcome).inc()
        log.info("sse_stream_closed", outcome=outcome, events=sequence)
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

    async def heartbeat(self) -> None:
        interval = self.service.settings.ws_ping_interval_seconds
        while True:
            await asyncio.sleep(interval)
            await self.send({"type": "ping"})

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
            last = StreamEvent(type="error", text=over.message, data=data)
        # The last frame goes out once the slot is free: a client that runs again as soon
        # as it has it must find neither this run in progress nor its slot taken.
        if last is None:
            return
        try:
            await self.send(last.model_dump(mode="json"))
        except Exception:  # the client left; the connection handler cleans up
            log.warning("websocket_run_aborted", exc_info=True)

    async def stream(self, request: AgentRequest) -> StreamEvent | None:
        """Sends the run's chunks; returns its last frame (done or error), unsent."""
        outcome = "completed"
        try:
            async for chunk in self.service.stream(request):
                if chunk.type == "error":
                    outcome = "failed"
                    return to_event(chunk)
                await self.send(to_event(chunk).model_dump(mode="json"))
            return DONE
        except TimeoutError:
            outcome = "timeout"
            return TIMED_OUT
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
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return True

    async def serve(self) -> None:
        while True:
            raw = await self.websocket.receive_text()
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
    heartbeat = asyncio.create_task(session.heartbeat())
    try:
        await session.serve()
    except WebSocketDisconnect:
        log.info("websocket_client_left")
    except Exception:
        log.exception("websocket_error")
        if websocket.application_state == WebSocketState.CONNECTED:
            await websocket.close(WS_INTERNAL_ERROR, "internal error")
    finally:
        heartbeat.cancel()
        await session.cancel_run()
        with contextlib.suppress(asyncio.CancelledError):
            await heartbeat
