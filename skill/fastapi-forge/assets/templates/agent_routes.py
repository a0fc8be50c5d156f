"""Agent endpoints for an existing FastAPI app, with the generated project's contract.

    POST   /auth/tickets        201: a single-use ticket for `?ticket=` (SSE, WS)
    POST   /agents/run          run and wait (504 agent_timeout, 502 agent_error)
    POST   /agents/run/async    202: a job (Location: /agents/jobs/{id})
    GET    /agents/run/stream   SSE: tool_call, tool_result, text, usage; done | error
    WS     /agents/ws           authenticated at the handshake; ready, run, cancel, ping
    GET    /agents/jobs/{id}    queued | running | completed | failed | cancelled
    DELETE /agents/jobs/{id}    202 cancel requested; 409 job_finished; 404

Mount it in your app (nothing else of the app is touched; errors on these routes use the
envelope `{"error": {"code", "message", "request_id", "details"?}}`):

    from agent_routes import AgentSettings, install_agent_routes, jwt_verifier

    install_agent_routes(
        app,
        runner=YourRunner(),                  # anything with `stream(AgentRequest)`
        verify_token=jwt_verifier(secret),    # or your own: token -> caller id
    )

Redis (REDIS_URL) holds what several workers share: tickets, rate-limit windows and
jobs. Jobs run as asyncio tasks in the worker that accepted them; a DELETE served by any
worker sets the job's cancel flag, which that worker polls. Settings are environment
variables with the generated project's names (AgentSettings). Needs Python 3.11+,
fastapi[standard]>=0.164, redis>=5.3, pyjwt>=2.10 (only for `jwt_verifier`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal, Protocol

import anyio
from fastapi import (
    APIRouter,
    Depends,
    FastAPI,
    Header,
    Query,
    Request,
    Response,
    WebSocket,
    status,
)
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from fastapi.sse import EventSourceResponse, ServerSentEvent
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict
from redis.asyncio import Redis
from redis.exceptions import RedisError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import HTTPConnection
from starlette.types import Message, Receive, Scope, Send
from starlette.websockets import WebSocketDisconnect

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------- settings


class AgentSettings(BaseSettings):
    """The generated project's names (REDIS_URL, AGENT_TIMEOUT_SECONDS, ...)."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    redis_url: str = "redis://localhost:6379/0"
    redis_key_prefix: str = "forge_app:"
    redis_timeout_seconds: float = Field(default=2.0, gt=0)
    rate_limit_requests: int = Field(default=60, ge=1)
    rate_limit_window_seconds: int = Field(default=60, ge=1)
    ticket_ttl_seconds: int = Field(default=30, ge=1, le=300)
    ws_ping_interval_seconds: float = Field(default=20.0, gt=0)
    agent_timeout_seconds: float = Field(default=300.0, gt=0)
    agent_max_concurrent_runs: int = Field(default=16, ge=1)
    # One caller's runs at once, in all workers (POST /agents/run, SSE, WebSocket runs;
    # not jobs): more get 429 too_many_concurrent_runs. A slot its process could not
    # release (killed) frees itself after AGENT_RUN_LEASE_SECONDS.
    agent_max_concurrent_runs_per_user: int = Field(default=3, ge=1)
    agent_run_lease_seconds: float = Field(default=30.0, ge=1)
    worker_concurrency: int = Field(default=10, ge=1)  # jobs at once per process
    job_ttl_seconds: int = Field(default=7 * 24 * 3600, ge=60)
    max_request_body_bytes: int = Field(default=1024 * 1024, ge=1024)  # else 413
    idempotency_key_ttl_seconds: int = Field(default=86_400, ge=60)
    # A worker renews its jobs' leases this often; a job whose lease is older than
    # JOB_LEASE_SECONDS lost its worker (killed, OOM) and is failed as interrupted.
    job_heartbeat_seconds: float = Field(default=10.0, gt=0)
    job_lease_seconds: float = Field(default=60.0, gt=0)
    # Models a request may choose (JSON list); without `model` the runner's default.
    agent_allowed_models: list[str] = Field(default_factory=list)


# --------------------------------------------------------------------------- runner

# How long a run that was left (client gone, timeout) may take to close its model call.
CLEANUP_SECONDS = 10.0
# The generated project's agents/base.py, inlined so this file stands alone.

# --8<-- [start:contract]
ChunkType = Literal["text", "tool_call", "tool_result", "error", "usage"]


@dataclass(frozen=True, slots=True)
class Usage:
    model: str
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cost_usd: float | None = None  # only when the SDK reports it


@dataclass(frozen=True, slots=True)
class AgentChunk:
    type: ChunkType
    text: str = ""  # text: the next piece; error: a message safe for the client
    data: dict[str, Any] = field(default_factory=dict)  # tool_call / tool_result
    usage: Usage | None = None


@dataclass(frozen=True, slots=True)
class AgentRequest:
    prompt: str
    session_id: str | None = None
    model: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    # --8<-- [end:contract]


class AgentRunner(Protocol):
    """Streams one run. Cancel: cancel the iterating task. Timeouts: the caller's."""

    def stream(self, request: AgentRequest) -> AsyncIterator[AgentChunk]: ...


# --8<-- [start:fake-runner]
class FakeRunner:
    """The generated project's fake agent: `You said: <prompt>` word by word, after a
    count_words tool call, then usage. For tests and local work."""

    def __init__(
        self, *, model: str = "fake-model", delay_seconds: float = 0.0
    ) -> None:
        self.model = model
        self.delay_seconds = delay_seconds

    async def stream(self, request: AgentRequest) -> AsyncIterator[AgentChunk]:
        words = request.prompt.split()
        call = {
            "id": "call_1",
            "name": "count_words",
            "arguments": {"text": request.prompt},
        }
        yield AgentChunk("tool_call", data=call)
        await asyncio.sleep(self.delay_seconds)
        yield AgentChunk(
            "tool_result", data={"id": "call_1", "output": str(len(words))}
        )
        pieces = ["You", " said:", *(f" {word}" for word in words)]
        for piece in pieces:
            await asyncio.sleep(self.delay_seconds)
            yield AgentChunk("text", text=piece)
        model = request.model or self.model
        yield AgentChunk("usage", usage=Usage(model, len(words), len(pieces)))
        # --8<-- [end:fake-runner]


# --------------------------------------------------------------------------- errors


class AgentAPIError(Exception):
    """An expected failure: status, a stable code, a message safe to return."""

    def __init__(
        self, status_code: int, code: str, message: str, **headers: str
    ) -> None:
        super().__init__(message)
        self.status_code, self.code, self.message, self.headers = (
            status_code,
            code,
            message,
            headers,
        )


def request_id(connection: HTTPConnection) -> str:
    incoming = connection.headers.get("x-request-id", "")
    return (
        incoming
        if 0 < len(incoming) <= 128 and incoming.isascii()
        else uuid.uuid4().hex
    )


def error_response(
    connection: HTTPConnection,
    status_code: int,
    code: str,
    message: str,
    headers: Mapping[str, str] | None = None,
    details: list[dict[str, Any]] | None = None,
) -> JSONResponse:
    rid = request_id(connection)
    body: dict[str, Any] = {"code": code, "message": message, "request_id": rid}
    if details is not None:
        body["details"] = details
    return JSONResponse(
        {"error": body}, status_code, headers={**(headers or {}), "X-Request-ID": rid}
    )


BODY_TOO_LARGE = "the request body is too large"


class EnvelopeRoute(APIRoute):
    """Renders this module's errors and validation errors as the envelope on its own
    routes only, so the host app's exception handlers and error shape stay untouched.
    A method a route does not serve (OPTIONS, say) gets its 405 only once the caller is
    authenticated (CORS preflights from allowed origins never get here). A body over
    MAX_REQUEST_BODY_BYTES gets 413 before it is read: at once when Content-Length
    says so, else as soon as the bytes received pass the limit (chunked)."""

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope)
        limit = agent_api(request).settings.max_request_body_bytes
        declared = request.headers.get("content-length", "")
        try:
            if scope["method"] not in self.methods:
                await current_caller(request)
            if declared.isdigit() and int(declared) > limit:
                raise AgentAPIError(413, "payload_too_large", BODY_TOO_LARGE)
        except AgentAPIError as exc:
            refusal = error_response(
                request, exc.status_code, exc.code, exc.message, exc.headers
            )
            await refusal(scope, receive, send)
            return
        received = 0

        async def receive_within_limit() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > limit:
                # FastAPI re-raises an HTTPException met while reading the body (other
                # errors become 400); `handle` below renders it.
                raise StarletteHTTPException(413, BODY_TOO_LARGE)
            return message

        await super().handle(scope, receive_within_limit, send)

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except AgentAPIError as exc:
                return error_response(
                    request, exc.status_code, exc.code, exc.message, exc.headers
                )
            except StarletteHTTPException as exc:
                if exc.status_code != 413:
                    raise
                return error_response(request, 413, "payload_too_large", exc.detail)
            except RequestValidationError as exc:
                details = [
                    {
                        "loc": [str(p) for p in e.get("loc", ())],
                        "msg": e["msg"],
                        "type": e["type"],
                    }
                    for e in exc.errors()
                ]
                return error_response(
                    request,
                    422,
                    "validation_error",
                    "request is not valid",
                    details=details,
                )
            except RedisError:
                return error_response(
                    request,
                    503,
                    "service_unavailable",
                    "a backing service is unavailable; retry later",
                    {"Retry-After": "5"},
                )

        return handle


# --------------------------------------------------------------------------- state


TokenVerifier = Callable[[str], Awaitable[str]]


@dataclass
class AgentAPI:
    """What the routes share, on `app.state.agent_api`."""

    settings: AgentSettings
    runner: AgentRunner
    verify_token: TokenVerifier
    redis: Redis
    job_slots: asyncio.Semaphore
    tasks: dict[str, asyncio.Task[None]] = field(default_factory=dict)

    def key(self, *parts: str) -> str:
        return self.settings.redis_key_prefix + ":".join(parts)


def agent_api(connection: HTTPConnection) -> AgentAPI:
    api: AgentAPI = connection.app.state.agent_api
    return api


def jwt_verifier(
    secret: str, *, audience: str, issuer: str, algorithm: str = "HS256"
) -> TokenVerifier:
    """HMAC JWTs: the algorithm is pinned (a token's `alg: none` is refused); exp, iat,
    sub, aud and iss are required."""
    import jwt

    async def verify(token: str) -> str:
        try:
            claims = jwt.decode(
                token,
                secret,
                algorithms=[algorithm],
                audience=audience,
                issuer=issuer,
                leeway=30,
                options={"require": ["exp", "iat", "sub", "aud", "iss"]},
            )
        except jwt.ExpiredSignatureError:
            raise AgentAPIError(
                401, "token_expired", "credentials are not valid"
            ) from None
        except jwt.PyJWTError:
            raise AgentAPIError(
                401, "invalid_token", "credentials are not valid"
            ) from None
        return str(claims["sub"])

    return verify


# --------------------------------------------------------------------------- auth


def ticket_key(api: AgentAPI, ticket: str) -> str:
    # Only the ticket's digest is stored: a Redis dump holds no usable ticket.
    return api.key("ticket", hashlib.sha256(ticket.encode()).hexdigest())


async def current_caller(connection: HTTPConnection) -> str:
    """The caller's id from `Authorization: Bearer`, else (GET and WebSocket only, for
    browsers) a single-use `?ticket=` from POST /auth/tickets, consumed atomically.
    Once per request: a ticket is single use, and `caller_run_slot` asks first."""
    caller = connection.scope.get("agent_routes.caller")
    if not isinstance(caller, str):
        caller = connection.scope["agent_routes.caller"] = await authenticate(
            connection
        )
    return caller


async def authenticate(connection: HTTPConnection) -> str:
    api = agent_api(connection)
    scheme, _, token = connection.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return await api.verify_token(token.strip())
    ticket = connection.query_params.get("ticket")
    if ticket and connection.scope.get("method", "GET") == "GET" and len(ticket) <= 128:
        caller = await api.redis.getdel(ticket_key(api, ticket))
        if caller is None:
            raise AgentAPIError(401, "invalid_ticket", "credentials are not valid")
        return str(caller)
    raise AgentAPIError(
        401,
        "missing_credentials",
        "authentication required",
        **{"WWW-Authenticate": "Bearer"},
    )


CallerDep = Annotated[str, Depends(current_caller)]

# Fixed window per caller, shared by every worker: {count, seconds left}.
WINDOW_SCRIPT = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
local ttl = redis.call('TTL', KEYS[1])
if ttl < 0 then redis.call('EXPIRE', KEYS[1], ARGV[1]); ttl = tonumber(ARGV[1]) end
return {count, ttl}
"""


async def rate_limit(connection: HTTPConnection, caller: CallerDep) -> None:
    api = agent_api(connection)
    s = api.settings
    try:
        count, ttl = await api.redis.eval(
            WINDOW_SCRIPT,
            1,
            api.key("ratelimit", "user", caller),
            s.rate_limit_window_seconds,
        )
    except RedisError:
        return  # fail open: an outage must not take the API down; readiness reports it
    if int(count) > s.rate_limit_requests:
        raise AgentAPIError(
            429,
            "rate_limited",
            "too many requests; retry later",
            **{"Retry-After": str(max(1, int(ttl))), "X-RateLimit-Remaining": "0"},
        )


async def agent_run_slot() -> AsyncIterator[None]:
    """Held while a run's request lasts; capped in `install_agent_routes`."""
    yield


# No run announces its end: a caller over its cap may try again after this long.
RUN_RETRY_AFTER_SECONDS = 5
# A caller's slots: run ids scored by lease expiry (Redis time). 1: taken.
ACQUIRE_SLOT_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""
RENEW_SLOT_SCRIPT = """
if not redis.call('ZSCORE', KEYS[1], ARGV[2]) then return 0 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[1]), ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1
"""


@contextlib.asynccontextmanager
async def run_slot(api: AgentAPI, caller: str) -> AsyncIterator[None]:
    """One of the caller's AGENT_MAX_CONCURRENT_RUNS_PER_USER slots for the block, in
    Redis (every worker), a lease renewed while the run lasts so a killed process's
    slots expire; else AgentAPIError 429. Fails open, as the rate limit does."""
    s = api.settings
    key, run_id = api.key("runs", caller), uuid.uuid4().hex
    lease_ms = int(s.agent_run_lease_seconds * 1000)
    limit = s.agent_max_concurrent_runs_per_user
    try:
        taken = await api.redis.eval(
            ACQUIRE_SLOT_SCRIPT, 1, key, limit, lease_ms, run_id
        )
    except RedisError:
        yield
        return
    if not int(taken):
        raise AgentAPIError(
            429,
            "too_many_concurrent_runs",
            f"at most {limit} agent runs at once per caller; retry when one ended",
            **{"Retry-After": str(RUN_RETRY_AFTER_SECONDS)},
        )

    released = False

    async def renew() -> None:
        # Stops at `released` too, not only when cancelled: a cancellation that lands in
        # the Redis call may come out as a RedisError, which the loop must not outlive
        # (the release below would wait for it forever).
        while not released:
            await asyncio.sleep(s.agent_run_lease_seconds / 3)
            if released:
                return
            with contextlib.suppress(RedisError):
                await api.redis.eval(RENEW_SLOT_SCRIPT, 1, key, lease_ms, run_id)

    renewer = asyncio.create_task(renew())
    try:
        yield
    finally:
        released = True
        renewer.cancel()
        # A client that left cancels this block again and again: the release must
        # still reach Redis, or the slot stays taken until its lease expires.
        with anyio.CancelScope(shield=True):
            await asyncio.wait([renewer], timeout=s.redis_timeout_seconds)
            with contextlib.suppress(RedisError):
                await api.redis.zrem(key, run_id)


async def caller_run_slot(connection: HTTPConnection) -> AsyncIterator[None]:
    """POST /agents/run and SSE hold a slot while the response lasts; a WebSocket
    takes one per run instead (`agent_websocket`, which also answers its own
    authentication errors)."""
    if connection.scope["type"] == "websocket":
        yield
        return
    async with run_slot(agent_api(connection), await current_caller(connection)):
        yield


# --------------------------------------------------------------------------- schemas

# --8<-- [start:limits]
MAX_PROMPT_CHARS = 50_000
ModelName = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[\w.:/@-]+$")]
# --8<-- [end:limits]
JobStatus = Literal["queued", "running", "completed", "failed", "cancelled"]
TERMINAL = {"completed", "failed", "cancelled"}


class RunRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(min_length=1, max_length=MAX_PROMPT_CHARS)
    model: ModelName | None = None
    session_id: str | None = Field(default=None, max_length=200)
    metadata: dict[str, str] = Field(default_factory=dict, max_length=20)

    def agent_request(self) -> AgentRequest:
        return AgentRequest(self.prompt, self.session_id, self.model, self.metadata)


class RunResponse(BaseModel):
    output: str
    model: str
    usage: list[dict[str, Any]]
    tool_calls: list[dict[str, Any]]
    duration_seconds: float


class JobView(BaseModel):
    job_id: uuid.UUID
    status: JobStatus
    progress: float = 0.0
    result: str | None = None
    error: str | None = None
    usage: list[dict[str, Any]] = Field(default_factory=list)
    cancel_requested: bool = False
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None


class TicketResponse(BaseModel):
    ticket: str
    expires_in: int


# --8<-- [start:chunk-event]
def chunk_event(chunk: AgentChunk) -> dict[str, Any]:
    """One chunk as the project's StreamEvent: type, text, data, usage."""
    usage = asdict(chunk.usage) if chunk.usage else None
    return {"type": chunk.type, "text": chunk.text, "data": chunk.data, "usage": usage}
    # --8<-- [end:chunk-event]


# The last event of a run, over SSE and WebSocket: the StreamEvent shape.
DONE = {"type": "done", "text": "", "data": {}, "usage": None}
TIMED_OUT = {**DONE, "type": "error", "text": "the agent did not finish in time"}


async def run_with_deadline(
    api: AgentAPI,
    request: AgentRequest,
    on_chunk: Callable[[AgentChunk], Awaitable[None]],
) -> tuple[str, list[Usage], list[dict[str, Any]]]:
    """Consume one run under AGENT_TIMEOUT_SECONDS (TimeoutError), raising AgentAPIError
    502 on an agent error."""
    parts: list[str] = []
    usage: list[Usage] = []
    calls: list[dict[str, Any]] = []
    async with asyncio.timeout(api.settings.agent_timeout_seconds):
        async for chunk in api.runner.stream(request):
            await on_chunk(chunk)
            if chunk.type == "text":
                parts.append(chunk.text)
            elif chunk.type == "usage" and chunk.usage is not None:
                usage.append(chunk.usage)
            elif chunk.type == "tool_call":
                calls.append(chunk.data)
            elif chunk.type == "error":
                raise AgentAPIError(502, "agent_error", chunk.text)
    return "".join(parts), usage, calls


async def run_in_task(
    runner: AgentRunner, request: AgentRequest, deadline: float
) -> AsyncIterator[AgentChunk]:
    """The runner's chunks until `deadline` (loop time; then TimeoutError), the deadline
    applied to each wait for a chunk: a timeout scope must not stay open across `yield`.

    The runner runs in a task of its own: a client leaving an SSE stream cancels the
    route through an anyio cancel scope, which cancels every await under it again and
    again, so the runner's cleanup (closing the model stream) would be cut short and the
    model run go on. Its task is cancelled once instead, then awaited shielded, for at
    most CLEANUP_SECONDS."""
    queue: asyncio.Queue[AgentChunk | Exception | None] = asyncio.Queue(maxsize=1)

    async def produce() -> None:
        chunks = runner.stream(request)
        try:
            async for chunk in chunks:
                await queue.put(chunk)
            await queue.put(None)
        except Exception as exc:  # raised again below
            await queue.put(exc)
        finally:
            with contextlib.suppress(Exception):
                await chunks.aclose()  # type: ignore[attr-defined]

    task = asyncio.create_task(produce())
    try:
        while True:
            async with asyncio.timeout_at(deadline):
                item = await queue.get()
            if item is None:
                return
            if isinstance(item, Exception):
                raise item
            yield item
    finally:
        task.cancel()
        with anyio.CancelScope(shield=True) as cleanup:
            cleanup.deadline = anyio.current_time() + CLEANUP_SECONDS
            await asyncio.wait([task])


async def ignore(_: AgentChunk) -> None:
    return None


# --------------------------------------------------------------------------- routes

tickets_router = APIRouter(prefix="/auth", tags=["auth"], route_class=EnvelopeRoute)
# Jobs and the submit route; `run_router` holds the routes that run the agent here.
router = APIRouter(
    prefix="/agents",
    tags=["agents"],
    route_class=EnvelopeRoute,
    dependencies=[Depends(rate_limit)],
)


def check_model(api: AgentAPI, model: str | None) -> None:
    if model is not None and model not in api.settings.agent_allowed_models:
        raise AgentAPIError(
            422,
            "model_not_allowed",
            f"model {model!r} is not allowed; omit `model` for the default",
        )


async def allowed_model(
    request: Request, model: Annotated[ModelName | None, Query()] = None
) -> str | None:
    # SSE's `?model=`, checked before the stream starts: once it has, a 422 is too late.
    check_model(agent_api(request), model)
    return model


run_router = APIRouter(prefix="/agents", tags=["agents"], route_class=EnvelopeRoute)


@tickets_router.post("/tickets", status_code=201, dependencies=[Depends(rate_limit)])
async def create_ticket(request: Request, caller: CallerDep) -> TicketResponse:
    api = agent_api(request)
    ticket = secrets.token_urlsafe(32)
    ttl = api.settings.ticket_ttl_seconds
    await api.redis.set(ticket_key(api, ticket), caller, ex=ttl)
    return TicketResponse(ticket=ticket, expires_in=ttl)


@run_router.post("/run", dependencies=[Depends(rate_limit)])
async def run_agent(request: Request, body: RunRequest, _: CallerDep) -> RunResponse:
    api = agent_api(request)
    check_model(api, body.model)
    started = time.perf_counter()
    try:
        output, usage, calls = await run_with_deadline(
            api, body.agent_request(), ignore
        )
    except TimeoutError:
        raise AgentAPIError(
            504, "agent_timeout", "the agent did not finish in time"
        ) from None
    return RunResponse(
        output=output,
        model=body.model or (usage[0].model if usage else ""),
        usage=[asdict(u) for u in usage],
        tool_calls=calls,
        duration_seconds=round(time.perf_counter() - started, 4),
    )


# --8<-- [start:minimal-stream]
@run_router.get(
    "/run/stream",
    response_class=EventSourceResponse,
    dependencies=[Depends(rate_limit)],
)
async def stream_agent(
    request: Request,
    prompt: Annotated[str, Query(min_length=1, max_length=MAX_PROMPT_CHARS)],
    _: CallerDep,  # Authorization: Bearer, or ?ticket= (browsers' EventSource)
    model: Annotated[str | None, Depends(allowed_model)],
) -> AsyncIterator[ServerSentEvent]:
    """SSE: one event per chunk (tool_call, tool_result, text, usage), then `done`, or
    `error` on an agent error or AGENT_TIMEOUT_SECONDS. FastAPI sends `: ping` after
    15 s idle. A client leaving cancels this generator's task and the agent's run."""
    api = agent_api(request)
    deadline = asyncio.get_running_loop().time() + api.settings.agent_timeout_seconds
    chunks = run_in_task(api.runner, AgentRequest(prompt, model=model), deadline)
    sequence = 0
    try:
        async for chunk in chunks:
            sequence += 1
            yield ServerSentEvent(
                event=chunk.type, id=str(sequence), data=chunk_event(chunk)
            )
            if chunk.type == "error":
                return
        yield ServerSentEvent(event="done", id=str(sequence + 1), data=DONE)
    except TimeoutError:
        yield ServerSentEvent(event="error", id=str(sequence + 1), data=TIMED_OUT)
    finally:
        await chunks.aclose()
    # --8<-- [end:minimal-stream]


# --- jobs ------------------------------------------------------------------------
# A Redis hash per job; every status change is conditional ("only if the status is still
# X") in one Lua call, so a finishing run and a cancel cannot both win.

# ARGV[3], if not empty: only when the lease (`heartbeat_at`, ISO UTC: it sorts as text)
# is older.
UPDATE_SCRIPT = """
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return nil end
if not string.find(ARGV[1], ',' .. status .. ',', 1, true) then return nil end
if ARGV[3] ~= '' then
  local lease = redis.call('HGET', KEYS[1], 'heartbeat_at')
  if not lease or lease >= ARGV[3] then return nil end
end
for k, v in pairs(cjson.decode(ARGV[2])) do redis.call('HSET', KEYS[1], k, v) end
return redis.call('HGETALL', KEYS[1])
"""


INTERRUPTED = "interrupted: the worker stopped"


def now() -> str:
    return datetime.now(UTC).isoformat()


async def update_job(
    api: AgentAPI,
    job_id: str,
    when: set[str],
    *,
    leased_before: str = "",
    **changes: Any,
) -> dict[str, str] | None:
    encoded = {
        k: v if isinstance(v, str) else json.dumps(v) for k, v in changes.items()
    }
    flat = await api.redis.eval(
        UPDATE_SCRIPT,
        1,
        api.key("job", job_id),
        f",{','.join(when)},",
        json.dumps(encoded),
        leased_before,
    )
    return dict(zip(flat[::2], flat[1::2], strict=True)) if flat else None


def job_view(raw: Mapping[str, str]) -> JobView:
    hidden = {"owner", "heartbeat_at"}
    data: dict[str, Any] = {k: v for k, v in raw.items() if v != "" and k not in hidden}
    for name in ("progress", "usage", "cancel_requested"):
        if name in data:
            data[name] = json.loads(data[name])
    return JobView.model_validate(data)


async def owned_job(api: AgentAPI, job_id: uuid.UUID, caller: str) -> dict[str, str]:
    raw: dict[str, str] = await api.redis.hgetall(api.key("job", str(job_id)))
    # Someone else's job is reported as missing: ids are not disclosed.
    if not raw or raw.get("owner") != caller:
        raise AgentAPIError(404, "job_not_found", "no such job")
    return raw


async def execute_job(api: AgentAPI, job_id: str, body: RunRequest) -> None:
    async with api.job_slots:  # queued until one of WORKER_CONCURRENCY slots is free
        await run_job(api, job_id, body)


async def run_job(api: AgentAPI, job_id: str, body: RunRequest) -> None:
    if (
        await update_job(api, job_id, {"queued"}, status="running", started_at=now())
        is None
    ):
        return  # cancelled while queued
    usage: list[Usage] = []
    chunks = 0

    async def track(chunk: AgentChunk) -> None:
        nonlocal chunks
        chunks += 1
        if chunk.usage is not None:
            usage.append(chunk.usage)
        if chunks % 10 == 0:  # agents do not announce their length: approach 1
            progress = round(min(0.99, chunks / (chunks + 20)), 3)
            await update_job(api, job_id, {"running"}, progress=progress)

    changes: dict[str, Any]
    try:
        output, _, _ = await run_with_deadline(api, body.agent_request(), track)
        changes = {"status": "completed", "result": output, "progress": 1.0}
    except TimeoutError:
        changes = {"status": "failed", "error": "the agent did not finish in time"}
    except AgentAPIError as exc:
        changes = {"status": "failed", "error": exc.message}
    except asyncio.CancelledError:
        # Only a client's DELETE sets the flag; anything else (shutdown) interrupts.
        flag = await api.redis.hget(api.key("job", job_id), "cancel_requested")
        changes = (
            {"status": "cancelled"}
            if flag == "true"
            else {"status": "failed", "error": INTERRUPTED}
        )
    finally:
        usage_out = [asdict(u) for u in usage]
        await asyncio.shield(
            update_job(
                api, job_id, {"running"}, usage=usage_out, finished_at=now(), **changes
            )
        )


async def watch_jobs(api: AgentAPI) -> None:
    """Cancels this worker's running jobs whose cancel flag another worker set; every
    JOB_HEARTBEAT_SECONDS renews their leases and fails jobs whose lease expired (their
    worker died: never re-run, they spent tokens)."""
    next_beat = 0.0
    while True:
        await asyncio.sleep(0.2)
        for job_id, task in list(api.tasks.items()):
            with contextlib.suppress(RedisError):
                flag = await api.redis.hget(api.key("job", job_id), "cancel_requested")
                if flag == "true":
                    task.cancel()
        if time.monotonic() >= next_beat:
            next_beat = time.monotonic() + api.settings.job_heartbeat_seconds
            with contextlib.suppress(RedisError):
                await renew_and_reap(api)


async def renew_and_reap(api: AgentAPI) -> None:
    for job_id in list(api.tasks):
        await update_job(api, job_id, {"queued", "running"}, heartbeat_at=now())
    cutoff = datetime.now(UTC) - timedelta(seconds=api.settings.job_lease_seconds)
    prefix = api.key("job", "")
    async for key in api.redis.scan_iter(match=f"{prefix}*", count=500):
        await update_job(
            api,
            key.removeprefix(prefix),
            {"queued", "running"},
            leased_before=cutoff.isoformat(),
            status="failed",
            error=INTERRUPTED,
            finished_at=now(),
        )


def idempotency_name(api: AgentAPI, caller: str, key: str) -> str:
    digest = hashlib.sha256(f"{caller}\n{key}".encode()).hexdigest()
    return api.key("idempotency", digest)


# The job and its Idempotency-Key in one step: a request that dies (or fails) leaves
# neither or both, never a key without its job, which would refuse retries for a while
# and then let one start a second job. KEYS: the key's name (no key: the job's, unread),
# the job; ARGV: the key's value ('' for none), its TTL, the job's TTL, the job's
# fields. Returns the earlier request's value for the key; nil: the job was created.
CREATE_JOB_SCRIPT = """
if ARGV[1] ~= '' then
  local earlier = redis.call('GET', KEYS[1])
  if earlier then return earlier end
end
redis.call('HSET', KEYS[2], unpack(ARGV, 4))
redis.call('EXPIRE', KEYS[2], ARGV[3])
if ARGV[1] ~= '' then redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2]) end
return false
"""


@router.post("/run/async", status_code=status.HTTP_202_ACCEPTED)
async def run_agent_async(
    request: Request,
    body: RunRequest,
    caller: CallerDep,
    response: Response,
    idempotency_key: Annotated[str | None, Header(min_length=1, max_length=255)] = None,
) -> JobView:
    """202: a job. `Idempotency-Key`: the same key and body return the first job (header
    Idempotent-Replayed: true); another body with it is 422 idempotency_key_reused.
    Keys are per caller."""
    api = agent_api(request)
    check_model(api, body.model)
    fingerprint = hashlib.sha256(body.model_dump_json().encode()).hexdigest()
    job_id = str(uuid.uuid4())
    job = {"job_id": job_id, "status": "queued", "progress": "0.0", "created_at": now()}
    key = api.key("job", job_id)
    fields = {**job, "heartbeat_at": job["created_at"], "owner": caller}
    fields["cancel_requested"] = "false"
    name, claim = key, ""
    if idempotency_key is not None:
        name = idempotency_name(api, caller, idempotency_key)
        claim = json.dumps({"fingerprint": fingerprint, "job_id": job_id})
    s = api.settings
    raw = await api.redis.eval(
        CREATE_JOB_SCRIPT,
        2,
        name,
        key,
        claim,
        s.idempotency_key_ttl_seconds,
        s.job_ttl_seconds,
        *(item for pair in fields.items() for item in pair),
    )
    if raw is not None:
        earlier = json.loads(raw)
        if earlier["fingerprint"] != fingerprint:
            raise AgentAPIError(
                422,
                "idempotency_key_reused",
                "this Idempotency-Key was used with another request body",
            )
        if not earlier["job_id"]:  # a claim written by an earlier version of this file
            raise AgentAPIError(
                409, "idempotency_key_in_use", "this Idempotency-Key is in use; retry"
            )
        response.headers["Location"] = f"/agents/jobs/{earlier['job_id']}"
        response.headers["Idempotent-Replayed"] = "true"
        return job_view(await owned_job(api, uuid.UUID(earlier["job_id"]), caller))
    task = asyncio.create_task(execute_job(api, job_id, body))
    api.tasks[job_id] = task
    task.add_done_callback(lambda _: api.tasks.pop(job_id, None))
    response.headers["Location"] = f"/agents/jobs/{job_id}"
    return job_view(job)


@router.get("/jobs/{job_id}")
async def get_job(request: Request, job_id: uuid.UUID, caller: CallerDep) -> JobView:
    return job_view(await owned_job(agent_api(request), job_id, caller))


@router.delete("/jobs/{job_id}", status_code=status.HTTP_202_ACCEPTED)
async def cancel_job(request: Request, job_id: uuid.UUID, caller: CallerDep) -> JobView:
    """202: cancellation requested (poll until `cancelled`); 409 if already finished."""
    api = agent_api(request)
    job = await owned_job(api, job_id, caller)
    key = str(job_id)
    dropped = await update_job(
        api,
        key,
        {"queued"},
        status="cancelled",
        cancel_requested=True,
        finished_at=now(),
    )
    if dropped is not None:
        return job_view(dropped)
    flagged = await update_job(api, key, {"running"}, cancel_requested=True)
    if flagged is None:
        raise AgentAPIError(409, "job_finished", f"the job is already {job['status']}")
    return job_view(flagged)


# --- WebSocket -------------------------------------------------------------------
# Authenticated at the handshake (Authorization header, or ?ticket= for browsers);
# refused with HTTP 401 before it is accepted. Then, JSON text frames:
#   server -> {"type": "ready"}
#   client -> {"type": "run", "prompt": "...", "model": null}
#   server -> {"type": "tool_call" | "tool_result" | "text" | "usage", ...} ...
#             {"type": "done", ...} or {"type": "error", ...} (as the SSE events' data;
#             over the rate limit: an error with data.code "rate_limited", over
#             AGENT_MAX_CONCURRENT_RUNS_PER_USER: "too_many_concurrent_runs")
#   client -> {"type": "cancel"}        server -> {"type": "cancelled"}
#   client -> {"type": "ping"}          server -> {"type": "pong"}
#   server -> {"type": "ping"}          every WS_PING_INTERVAL_SECONDS
# Close codes: 1003 a message the server cannot parse, 1011 an unexpected server error.


class WsRun(BaseModel):
    type: Literal["run"]
    prompt: str = Field(min_length=1, max_length=MAX_PROMPT_CHARS)
    model: ModelName | None = None
    session_id: str | None = Field(default=None, max_length=200)


@run_router.websocket("/ws")
async def agent_websocket(websocket: WebSocket) -> None:
    api = agent_api(websocket)
    try:
        caller = await current_caller(websocket)
        await rate_limit(websocket, caller)  # the handshake is a request too
    except AgentAPIError as exc:
        denial = error_response(
            websocket, exc.status_code, exc.code, exc.message, exc.headers
        )
        await websocket.send_denial_response(denial)
        return
    await websocket.accept()
    lock = asyncio.Lock()
    run: asyncio.Task[None] | None = None

    async def send(message: dict[str, Any]) -> None:
        async with lock:
            await websocket.send_json(message)

    async def run_one(message: WsRun) -> None:
        request = AgentRequest(message.prompt, message.session_id, message.model)

        last: dict[str, Any] = DONE

        async def forward(chunk: AgentChunk) -> None:
            nonlocal last
            if chunk.type == "error":
                last = chunk_event(chunk)  # sent once the run's slot is free
            else:
                await send(chunk_event(chunk))

        try:
            # Each run costs one request of the caller's rate limit, as over HTTP.
            await rate_limit(websocket, caller)
        except AgentAPIError as exc:
            retry = int(exc.headers["Retry-After"])
            data = {"code": exc.code, "retry_after": retry}
            await send(chunk_event(AgentChunk("error", text=exc.message, data=data)))
            return
        try:
            async with run_slot(api, caller):
                await run_with_deadline(api, request, forward)
        except TimeoutError:
            last = TIMED_OUT
        except AgentAPIError as exc:
            if exc.code == "too_many_concurrent_runs":
                data = {"code": exc.code, "retry_after": RUN_RETRY_AFTER_SECONDS}
                last = chunk_event(AgentChunk("error", text=exc.message, data=data))
            # any other: `last` is its error chunk
        # The last frame goes out once the slot is free: a client that runs again as
        # soon as it has it must find neither this run in progress nor its slot taken.
        await send(last)

    async def heartbeat() -> None:
        while True:
            await asyncio.sleep(api.settings.ws_ping_interval_seconds)
            await send({"type": "ping"})

    pinger = asyncio.create_task(heartbeat())
    try:
        await send({"type": "ready"})
        while True:
            try:
                message = json.loads(await websocket.receive_text())
                kind = message["type"]
                if kind == "run":
                    parsed = WsRun.model_validate(message)
                elif kind not in ("ping", "cancel"):
                    raise ValueError(kind)
            except (ValueError, KeyError, TypeError, ValidationError):
                await websocket.close(
                    status.WS_1003_UNSUPPORTED_DATA, "invalid message"
                )
                return
            busy = run is not None and not run.done()
            if kind == "ping":
                await send({"type": "pong"})
            elif kind == "cancel" and run is not None and busy:
                run.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await run
                await send({"type": "cancelled"})
            elif kind == "run" and busy:
                await send({"type": "error", "text": "a run is already in progress"})
            elif kind == "run":
                try:
                    check_model(api, parsed.model)
                except AgentAPIError as refused:
                    await send({"type": "error", "text": refused.message})
                    continue
                run = asyncio.create_task(run_one(parsed))
    except WebSocketDisconnect:
        pass
    except Exception:
        log.exception("websocket_error")
        with contextlib.suppress(Exception):
            await websocket.close(status.WS_1011_INTERNAL_ERROR, "internal error")
    finally:
        pinger.cancel()
        if run is not None:
            run.cancel()
        await asyncio.gather(pinger, *([run] if run else []), return_exceptions=True)


# --------------------------------------------------------------------------- mount


def install_agent_routes(
    app: FastAPI,
    *,
    runner: AgentRunner,
    verify_token: TokenVerifier,
    settings: AgentSettings | None = None,
) -> AgentAPI:
    """Mount the routes on `app`, with Redis opened and jobs cancelled by `app`'s
    lifespan (merged with the app's own)."""
    settings = settings or AgentSettings()
    redis = Redis.from_url(
        settings.redis_url,
        decode_responses=True,
        socket_connect_timeout=settings.redis_timeout_seconds,
        socket_timeout=settings.redis_timeout_seconds,
    )
    api = AgentAPI(
        settings=settings,
        runner=runner,
        verify_token=verify_token,
        redis=redis,
        job_slots=asyncio.Semaphore(settings.worker_concurrency),
    )
    app.state.agent_api = api

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        watcher = asyncio.create_task(watch_jobs(api))
        try:
            yield
        finally:
            watcher.cancel()
            for task in [watcher, *api.tasks.values()]:
                task.cancel()
            await asyncio.gather(watcher, *api.tasks.values(), return_exceptions=True)
            await redis.aclose()

    # One Depends object, declared on the APIRouter around the run routes:
    # AGENT_MAX_CONCURRENT_RUNS per process; more wait for a slot, held to the end of
    # the response (of an SSE stream; a WebSocket while connected). The caller's own
    # cap comes first: a caller over it is refused without waiting.
    capped = APIRouter(
        dependencies=[
            Depends(caller_run_slot, scope="request"),
            Depends(
                agent_run_slot,
                scope="request",
                max_concurrency=settings.agent_max_concurrent_runs,
            ),
        ]
    )
    capped.include_router(run_router)
    lifecycle = APIRouter(lifespan=lifespan)
    app.include_router(lifecycle)
    app.include_router(tickets_router)
    app.include_router(router)
    app.include_router(capped)
    return api
