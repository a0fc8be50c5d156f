"""Agent endpoints as one APIRouter, to drop into an existing FastAPI app.

    POST   /run            run and wait (504 on timeout, 502 on agent error)
    POST   /run/async      start a background job (202)
    GET    /run/stream     SSE with heartbeats; the run stops when the client leaves
    WS     /ws             auth, ping/pong, run, cancel
    GET    /jobs/{id}      status, progress, result or error, token usage
    DELETE /jobs/{id}      cancel a queued or running job

What the host app provides (nothing else is imported from it):
    runner        an `AgentRunner` (the interface below; `FakeRunner` for tests and dev)
    authenticate  a FastAPI dependency returning the caller's id (str) or raising 401
    verify_token  `async (token) -> caller id`, raising on a bad token: the WebSocket
                  handshake cannot use HTTP dependencies the same way
    settings      `AgentRouteSettings` (timeouts, heartbeat, job concurrency)
    run_dependencies  optional extra dependencies on the routes that start runs (put
                  the host's rate limiter here)
    store         optional `JobStore`; the default keeps jobs in memory, which is right
                  for one process only. With several workers use a database-backed store
                  and a cancel flag polled by the worker that runs the job (see
                  single_api.py, which does exactly that).

    app.include_router(
        build_agent_router(runner=..., authenticate=..., verify_token=...),
        prefix="/agents",
    )

The router's lifespan cancels running jobs when the app shuts down. Needs Python 3.11+,
fastapi>=0.135.0 (native SSE: fastapi.sse), pydantic>=2.7, and uvicorn>=0.33.0 to notice
SSE clients that disconnect.
"""

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, Protocol

from fastapi import (
    APIRouter,
    Depends,
    FastAPI,
    HTTPException,
    Query,
    WebSocket,
    WebSocketDisconnect,
    status,
)
from fastapi.params import Depends as DependsParam
from fastapi.sse import EventSourceResponse, ServerSentEvent
from pydantic import BaseModel, Field, ValidationError

# --------------------------------------------------------------------------- runner
# Same shape as the scaffolded project's agents/base.py, inlined to stay standalone.

ChunkType = Literal["text", "tool_call", "tool_result", "error", "usage"]


@dataclass(frozen=True, slots=True)
class Usage:
    """Token figures for one model; a run may report several."""

    model: str
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cost_usd: float | None = None  # only when the SDK reports it


@dataclass(frozen=True, slots=True)
class AgentChunk:
    type: ChunkType
    text: str = ""  # text: output piece; error: a message safe for the client
    data: dict[str, Any] = field(default_factory=dict)  # tool_call / tool_result
    usage: Usage | None = None


@dataclass(frozen=True, slots=True)
class AgentRequest:
    prompt: str
    session_id: str | None = None
    model: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class AgentResult:
    text: str
    usage: list[Usage]
    tool_calls: list[dict[str, Any]]


class AgentRunner(Protocol):
    """Streams one run. Cancel = cancel the iterating task; timeout = the caller's
    `asyncio.timeout` around the iteration."""

    name: str

    def stream(self, request: AgentRequest) -> AsyncIterator[AgentChunk]: ...


class AgentRunError(RuntimeError):
    """The agent reported a failure; its message is safe to return to the client."""


ChunkSink = Callable[[AgentChunk], Awaitable[None]]


async def run_to_completion(
    runner: AgentRunner, request: AgentRequest, on_chunk: ChunkSink | None = None
) -> AgentResult:
    parts: list[str] = []
    usage: list[Usage] = []
    tool_calls: list[dict[str, Any]] = []
    async for chunk in runner.stream(request):
        if on_chunk is not None:
            await on_chunk(chunk)
        if chunk.type == "text":
            parts.append(chunk.text)
        elif chunk.type == "usage" and chunk.usage is not None:
            usage.append(chunk.usage)
        elif chunk.type == "tool_call":
            tool_calls.append(chunk.data)
        elif chunk.type == "error":
            raise AgentRunError(chunk.text)
    return AgentResult("".join(parts), usage, tool_calls)


class FakeRunner:
    """Deterministic runner for tests and local dev: echoes the prompt word by word,
    with one tool call halfway and a usage chunk at the end; `fail` errors halfway."""

    name = "fake"

    def __init__(
        self, model: str = "fake-model", delay: float = 0.02, fail: bool = False
    ):
        self.model = model
        self.delay = delay
        self.fail = fail

    async def stream(self, request: AgentRequest) -> AsyncIterator[AgentChunk]:
        words = request.prompt.split()
        for index, word in enumerate(words):
            if index == len(words) // 2:
                if self.fail:
                    yield AgentChunk(
                        "error", text="the fake agent failed as configured"
                    )
                    return
                call = {"id": "call_1", "name": "word_count", "arguments": {}}
                yield AgentChunk("tool_call", data=call)
                yield AgentChunk(
                    "tool_result", data={"id": "call_1", "output": len(words)}
                )
            await asyncio.sleep(self.delay)
            yield AgentChunk("text", text=word if index == 0 else f" {word}")
        usage = Usage(request.model or self.model, len(words), len(words))
        yield AgentChunk("usage", usage=usage)


# --------------------------------------------------------------------------- models

JobStatus = Literal["queued", "running", "completed", "failed", "cancelled"]


@dataclass(frozen=True)
class AgentRouteSettings:
    timeout_seconds: float = 300.0  # upper bound; requests may ask for less
    sse_heartbeat_seconds: float = 15.0
    ws_auth_timeout_seconds: float = 10.0
    max_concurrent_jobs: int = 8
    max_turns: int = 15  # progress = finished tool turns / max_turns


class RunRequest(BaseModel):
    prompt: str = Field(min_length=1, max_length=50_000)
    model: str | None = Field(default=None, max_length=128)
    timeout_seconds: float | None = Field(default=None, gt=0, le=3600)
    session_id: str | None = Field(default=None, max_length=128)
    metadata: dict[str, str] = Field(default_factory=dict, max_length=32)

    def agent_request(self) -> AgentRequest:
        return AgentRequest(self.prompt, self.session_id, self.model, self.metadata)


class UsageOut(BaseModel):
    model: str
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cost_usd: float | None = None


class RunResponse(BaseModel):
    text: str
    usage: list[UsageOut]
    tool_calls: list[dict[str, Any]]
    duration_seconds: float


class JobError(BaseModel):
    code: str
    message: str


class Job(BaseModel):
    job_id: str
    owner: str = Field(exclude=True)
    status: JobStatus = "queued"
    progress: float = 0.0
    result: str | None = None
    error: JobError | None = None
    usage: list[UsageOut] = []
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    finished_at: datetime | None = None


class JobStore(Protocol):
    async def save(self, job: Job) -> None: ...

    async def get(self, job_id: str, owner: str) -> Job | None: ...


class InMemoryJobStore:
    """One process only: jobs vanish on restart and other workers cannot see them."""

    def __init__(self) -> None:
        self.jobs: dict[str, Job] = {}

    async def save(self, job: Job) -> None:
        self.jobs[job.job_id] = job.model_copy()

    async def get(self, job_id: str, owner: str) -> Job | None:
        job = self.jobs.get(job_id)
        return job.model_copy() if job is not None and job.owner == owner else None


def _error(status_code: int, code: str, message: str) -> HTTPException:
    # Rendered by the host's HTTPException handler; the default gives {"detail": {...}}.
    return HTTPException(status_code, detail={"code": code, "message": message})


def _usage_out(usage: list[Usage]) -> list[UsageOut]:
    return [UsageOut(**asdict(item)) for item in usage]


def _payload(chunk: AgentChunk) -> dict[str, Any]:
    if chunk.type == "text":
        return {"text": chunk.text}
    if chunk.type == "usage" and chunk.usage is not None:
        return asdict(chunk.usage)
    if chunk.type == "error":
        return {"code": "agent_error", "message": chunk.text}
    return chunk.data


# --------------------------------------------------------------------------- jobs


class AgentJobs:
    """In-process job runner: asyncio tasks, state in a `JobStore`."""

    def __init__(
        self, runner: AgentRunner, store: JobStore, settings: AgentRouteSettings
    ) -> None:
        self.runner = runner
        self.store = store
        self.settings = settings
        self.slots = asyncio.Semaphore(settings.max_concurrent_jobs)
        self.tasks: dict[str, asyncio.Task[None]] = {}

    def limit(self, requested: float | None) -> float:
        cap = self.settings.timeout_seconds
        return cap if requested is None else min(requested, cap)

    async def submit(self, owner: str, body: RunRequest) -> Job:
        job = Job(job_id=uuid.uuid4().hex, owner=owner)
        await self.store.save(job)
        task = asyncio.create_task(self._execute(job, body))
        self.tasks[job.job_id] = task
        task.add_done_callback(lambda _: self.tasks.pop(job.job_id, None))
        return job

    async def cancel(self, job: Job) -> Job:
        task = self.tasks.get(job.job_id)
        if task is not None:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task
        return await self.store.get(job.job_id, job.owner) or job

    async def _execute(self, job: Job, body: RunRequest) -> None:
        usage: list[Usage] = []
        turns = 0

        async def track(chunk: AgentChunk) -> None:
            nonlocal turns
            if chunk.type == "usage" and chunk.usage is not None:
                usage.append(chunk.usage)
            elif chunk.type == "tool_result":
                turns += 1
                job.progress = min(0.99, turns / self.settings.max_turns)
                await self.store.save(job)

        limit = self.limit(body.timeout_seconds)
        try:
            async with self.slots:
                job.status = "running"
                await self.store.save(job)
                async with asyncio.timeout(limit):
                    result = await run_to_completion(
                        self.runner, body.agent_request(), track
                    )
            job.status, job.result, job.progress = "completed", result.text, 1.0
        except TimeoutError:
            job.status = "failed"
            job.error = JobError(
                code="agent_timeout", message=f"no result in {limit:g} s"
            )
        except AgentRunError as exc:
            job.status, job.error = (
                "failed",
                JobError(code="agent_error", message=str(exc)),
            )
        except asyncio.CancelledError:
            job.status = "cancelled"
            job.error = JobError(code="cancelled", message="cancelled")
            raise
        except Exception:
            job.status = "failed"
            job.error = JobError(code="internal_error", message="the agent run failed")
        finally:
            job.usage = _usage_out(usage)
            job.finished_at = datetime.now(UTC)
            await asyncio.shield(self.store.save(job))

    async def close(self) -> None:
        for task in list(self.tasks.values()):
            task.cancel()
        await asyncio.gather(*self.tasks.values(), return_exceptions=True)


# --------------------------------------------------------------------------- router


def build_agent_router(
    *,
    runner: AgentRunner,
    authenticate: Callable[..., Any],
    verify_token: Callable[[str], Awaitable[str]],
    settings: AgentRouteSettings | None = None,
    store: JobStore | None = None,
    run_dependencies: Sequence[DependsParam] = (),
) -> APIRouter:
    settings = settings or AgentRouteSettings()
    jobs = AgentJobs(runner, store or InMemoryJobStore(), settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await jobs.close()

    router = APIRouter(tags=["agents"], lifespan=lifespan)
    Caller = Annotated[str, Depends(authenticate)]
    limited = list(run_dependencies)

    @router.post("/run", dependencies=limited)
    async def run(body: RunRequest, _: Caller) -> RunResponse:
        limit = jobs.limit(body.timeout_seconds)
        started = time.perf_counter()
        try:
            async with asyncio.timeout(limit):
                result = await run_to_completion(runner, body.agent_request())
        except TimeoutError:
            raise _error(504, "agent_timeout", f"no result in {limit:g} s") from None
        except AgentRunError as exc:
            raise _error(502, "agent_error", str(exc)) from None
        return RunResponse(
            text=result.text,
            usage=_usage_out(result.usage),
            tool_calls=result.tool_calls,
            duration_seconds=round(time.perf_counter() - started, 3),
        )

    @router.post("/run/async", status_code=202, dependencies=limited)
    async def run_async(body: RunRequest, caller: Caller) -> Job:
        return await jobs.submit(caller, body)

    @router.get("/jobs/{job_id}")
    async def get_job(job_id: str, caller: Caller) -> Job:
        job = await jobs.store.get(job_id, caller)
        if job is None:
            raise _error(404, "job_not_found", "no such job")
        return job

    @router.delete("/jobs/{job_id}")
    async def cancel_job(job_id: str, caller: Caller) -> Job:
        job = await jobs.store.get(job_id, caller)
        if job is None:
            raise _error(404, "job_not_found", "no such job")
        if job.status not in ("queued", "running"):
            raise _error(409, "job_finished", f"job already {job.status}")
        return await jobs.cancel(job)

    @router.get("/run/stream", response_class=EventSourceResponse, dependencies=limited)
    async def run_stream(
        _: Caller,
        prompt: Annotated[str, Query(min_length=1, max_length=50_000)],
        model: Annotated[str | None, Query(max_length=128)] = None,
        timeout_seconds: Annotated[float | None, Query(gt=0, le=3600)] = None,
    ) -> AsyncIterator[ServerSentEvent]:
        """Events: text, tool_call, tool_result, usage, then done or error; a
        `: heartbeat` comment after each quiet SSE heartbeat interval."""
        limit = jobs.limit(timeout_seconds)
        queue: asyncio.Queue[AgentChunk | ServerSentEvent] = asyncio.Queue(64)

        async def produce() -> None:
            final = ServerSentEvent(event="done", data={})
            try:
                async with asyncio.timeout(limit):
                    result = await run_to_completion(
                        runner, AgentRequest(prompt, model=model), queue.put
                    )
                final.data = {"usage": [asdict(u) for u in result.usage]}
            except TimeoutError:
                message = f"no result in {limit:g} s"
                final = ServerSentEvent(
                    event="error", data={"code": "agent_timeout", "message": message}
                )
            except AgentRunError:
                final = ServerSentEvent(comment="end")  # the error chunk went out
            except Exception:
                final = ServerSentEvent(
                    event="error", data={"code": "internal_error", "message": "failed"}
                )
            await queue.put(final)

        producer = asyncio.create_task(produce())
        try:
            while True:
                try:
                    async with asyncio.timeout(settings.sse_heartbeat_seconds):
                        item = await queue.get()
                except TimeoutError:
                    yield ServerSentEvent(comment="heartbeat")
                    continue
                if isinstance(item, ServerSentEvent):
                    yield item
                    return
                yield ServerSentEvent(event=item.type, data=_payload(item))
        finally:  # normal end, or the client went away: stop the agent either way
            producer.cancel()
            with suppress(asyncio.CancelledError):
                await producer

    @router.websocket("/ws")
    async def agent_ws(websocket: WebSocket) -> None:
        """In: auth (unless `Authorization: Bearer` was sent), ping, run, cancel.
        Out: ready, pong, the run's chunks, done/error/cancelled (with `run_id`).
        A failed or missing auth closes with 1008, a server error with 1011."""
        await websocket.accept()
        try:
            caller = await _ws_caller(websocket, verify_token, settings)
        except WebSocketDisconnect:
            return
        except Exception:
            await websocket.close(
                status.WS_1008_POLICY_VIOLATION, "authentication failed"
            )
            return
        lock = asyncio.Lock()
        current: asyncio.Task[None] | None = None
        current_id = ""

        async def send(message: dict[str, Any]) -> None:
            async with lock:
                await websocket.send_json(message)

        async def run_one(body: RunRequest, run_id: str) -> None:
            async def forward(chunk: AgentChunk) -> None:
                await send({"type": chunk.type, "run_id": run_id, **_payload(chunk)})

            limit = jobs.limit(body.timeout_seconds)
            try:
                async with asyncio.timeout(limit):
                    result = await run_to_completion(
                        runner, body.agent_request(), forward
                    )
                usage = [asdict(u) for u in result.usage]
                await send({"type": "done", "run_id": run_id, "usage": usage})
            except TimeoutError:
                await send({"type": "error", "run_id": run_id, "code": "agent_timeout"})
            except AgentRunError:
                pass  # forwarded as an error chunk

        try:
            await send({"type": "ready", "subject": caller})
            while True:
                try:
                    message = json.loads(await websocket.receive_text())
                    kind = message["type"]
                except (ValueError, KeyError, TypeError):
                    await send({"type": "error", "code": "bad_message"})
                    continue
                busy = current is not None and not current.done()
                if kind == "ping":
                    await send({"type": "pong"})
                elif kind == "cancel" and current is not None and busy:
                    current.cancel()
                    with suppress(asyncio.CancelledError):
                        await current
                    await send({"type": "cancelled", "run_id": current_id})
                elif kind == "run" and busy:
                    await send({"type": "error", "code": "busy"})
                elif kind == "run":
                    try:
                        body = RunRequest.model_validate(message)
                    except ValidationError:
                        await send({"type": "error", "code": "validation_error"})
                        continue
                    current_id = str(message.get("id") or uuid.uuid4().hex)
                    current = asyncio.create_task(run_one(body, current_id))
                elif kind != "cancel":
                    await send({"type": "error", "code": "unknown_type"})
        except WebSocketDisconnect:
            pass
        except Exception:
            with suppress(Exception):
                await websocket.close(status.WS_1011_INTERNAL_ERROR)
        finally:
            if current is not None:
                current.cancel()
                with suppress(asyncio.CancelledError):
                    await current

    return router


async def _ws_caller(
    websocket: WebSocket,
    verify_token: Callable[[str], Awaitable[str]],
    settings: AgentRouteSettings,
) -> str:
    """The handshake's `Authorization: Bearer`, else a first message
    `{"type": "auth", "token": ...}` (browsers cannot set WebSocket headers)."""
    header = websocket.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return await verify_token(header[7:].strip())
    async with asyncio.timeout(settings.ws_auth_timeout_seconds):
        message = json.loads(await websocket.receive_text())
    if not isinstance(message, dict) or message.get("type") != "auth":
        raise PermissionError("first message must be auth")
    return await verify_token(str(message.get("token", "")))
