"""Single-file FastAPI agent backend: the generated Tier 1 contract in one module.

For a demo, a prototype, or to read the whole system end to end. For a project that
will grow, prefer the scaffold (scripts/scaffold_fastapi.py): layers per option, its
own tests, Alembic migrations, a job worker, deployment files. Same endpoints, status
codes, error envelope, settings names, WebSocket protocol and job states as the
generated project:

    POST   /auth/tickets        201: a single-use ticket for `?ticket=` (SSE, WebSocket)
    POST   /agents/run          run and wait (504 agent_timeout, 502 agent_error)
    POST   /agents/run/async    202: a job (Location: /agents/jobs/{id})
    GET    /agents/run/stream   SSE: tool_call, tool_result, text, usage; done | error
    WS     /agents/ws           authenticated at the handshake; ready, run, cancel, ping
    GET    /agents/jobs/{id}    queued | running | completed | failed | cancelled
    DELETE /agents/jobs/{id}    202 cancel requested; 409 job_finished; 404
    GET    /health, /health/ready, /metrics

Zero setup: without DATABASE_URL and REDIS_URL it keeps jobs in a SQLite file
(`forge_app.db`), rate limits and tickets in process memory (one worker only) and signs
development tokens with a secret kept in `.forge-dev-secret`; the start-up log says so.
That is a dev mode only: with ENVIRONMENT=prod and no REDIS_URL it refuses to start.
With DATABASE_URL (PostgreSQL) and REDIS_URL it uses them, shared by every worker.
Jobs run in-process (asyncio tasks) in both modes, their state in the database; a
worker polls its jobs' cancel flag, so a DELETE served by any worker stops the job,
and jobs of a worker that died are failed (never re-run).

Requirements (Python 3.11+):
    fastapi[standard]>=0.164    # native SSE, Depends(max_concurrency=...)
    pydantic-settings>=2.3
    sqlalchemy[asyncio]>=2.0.30
    aiosqlite>=0.20             # zero-setup database
    asyncpg>=0.29               # DATABASE_URL=postgresql://...
    redis>=5.3                  # REDIS_URL=redis://...
    structlog>=24.1
    prometheus-client>=0.20
    pyjwt>=2.10

Run:
    python single_api.py token alice          # prints a bearer token for user "alice"
    python single_api.py serve --port 8000    # uvicorn --factory single_api:create_app
    curl -H "Authorization: Bearer $TOKEN" -H 'content-type: application/json' \
         -d '{"prompt": "hello there"}' localhost:8000/agents/run

Production: set ENVIRONMENT=prod, JWT_SECRET (32+ bytes) and REDIS_URL (both required,
else it refuses to start), DATABASE_URL; for several workers set
PROMETHEUS_MULTIPROC_DIR to an empty directory so /metrics sums all workers. Every
setting is a field of `Settings` below (environment variable = field name in upper
case, or a `.env` file). The agent is a deterministic fake until you put a real runner
in `build_runner`.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import hashlib
import json
import logging
import os
import re
import secrets
import socket
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, Protocol, overload

import anyio
import jwt
import structlog
from fastapi import (
    APIRouter,
    Depends,
    FastAPI,
    Header,
    Query,
    Request,
    WebSocket,
    WebSocketDisconnect,
    status,
)
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from fastapi.sse import EventSourceResponse, ServerSentEvent
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict
from redis.asyncio import Redis
from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Float,
    Index,
    MetaData,
    String,
    Table,
    Text,
    event,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.schema import CreateIndex, CreateTable
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# --------------------------------------------------------------------------- settings


class Settings(BaseSettings):
    """The generated project's setting names (its config.py), for what this file has."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    app_name: str = "forge-app"
    environment: Literal["dev", "test", "prod"] = "dev"
    log_level: str = "INFO"

    # Unset means zero setup: a SQLite file and in-process rate limiter and tickets.
    database_url: str | None = None
    sqlite_path: Path = Path("forge_app.db")
    db_pool_size: int = 10
    redis_url: str | None = None
    # Every Redis key starts with this, so several apps (or test runs) share one Redis.
    redis_key_prefix: str = "forge_app:"
    redis_timeout_seconds: float = Field(default=2.0, gt=0)

    jwt_secret: SecretStr | None = None
    # Pinned: the token header never chooses the algorithm (no `none`, no RS/HS swap).
    jwt_algorithm: Literal["HS256", "HS384", "HS512"] = "HS256"
    jwt_audience: str = "forge-app"
    jwt_issuer: str = "forge-app"
    jwt_leeway_seconds: int = Field(default=30, ge=0)
    dev_secret_file: Path = Path(".forge-dev-secret")

    rate_limit_requests: int = Field(default=60, ge=1)
    rate_limit_window_seconds: int = Field(default=60, ge=1)
    cors_origins: list[str] = []
    ticket_ttl_seconds: int = Field(default=30, ge=1, le=300)
    ws_ping_interval_seconds: float = Field(default=20.0, gt=0)
    # Larger request bodies get 413 before they are read.
    max_request_body_bytes: int = Field(default=1024 * 1024, ge=1024)

    agent_model: str = "fake-model"
    # Models a request may choose besides AGENT_MODEL (JSON list); others get 422.
    agent_allowed_models: list[str] = []
    agent_timeout_seconds: float = Field(default=300.0, gt=0)
    agent_max_concurrent_runs: int = Field(default=16, ge=1)
    # One caller's runs at once, in all workers (POST /agents/run, SSE, WebSocket runs;
    # not jobs): more get 429 too_many_concurrent_runs. A slot its process could not
    # release (killed) frees itself after AGENT_RUN_LEASE_SECONDS.
    agent_max_concurrent_runs_per_user: int = Field(default=3, ge=1)
    agent_run_lease_seconds: float = Field(default=30.0, ge=1)
    # Jobs run at once in one process (the project's ARQ worker setting).
    worker_concurrency: int = Field(default=10, ge=1)
    fake_agent_delay_seconds: float = Field(default=0.05, ge=0)
    fake_agent_fail: bool = False

    # How often a job saves progress, renews its lease and reads its cancel flag.
    job_poll_seconds: float = Field(default=0.5, gt=0)
    # A queued/running job whose lease is older than this belongs to a dead worker.
    job_stale_seconds: float = Field(default=30.0, gt=0)

    @model_validator(mode="after")
    def _production_needs_real_secrets_and_redis(self) -> Settings:
        if self.environment == "prod":
            secret = self.jwt_secret.get_secret_value() if self.jwt_secret else ""
            if len(secret.encode()) < 32:
                raise ValueError("JWT_SECRET of at least 32 bytes is required in prod")
            if not self.redis_url:
                # In-process limits and tickets are per worker and lost on restart: a
                # limit multiplied by the worker count, tickets one worker cannot see.
                raise ValueError(
                    "REDIS_URL is required when ENVIRONMENT=prod: without it rate"
                    " limits and tickets are kept in process memory, which only the"
                    " zero-setup dev mode allows. Set REDIS_URL=redis://HOST:6379/0, or"
                    " ENVIRONMENT=dev for a local trial"
                )
        return self

    @property
    def zero_setup(self) -> bool:
        return self.database_url is None and self.redis_url is None

    def async_database_url(self) -> str:
        if self.database_url is None:
            return f"sqlite+aiosqlite:///{self.sqlite_path.resolve()}"
        # Accept the plain libpq form operators already have and pick the async driver.
        return re.sub(r"^postgres(ql)?://", "postgresql+asyncpg://", self.database_url)

    def signing_key(self) -> str:
        if self.jwt_secret is not None:
            return self.jwt_secret.get_secret_value()
        return _dev_secret(self.dev_secret_file)


def _dev_secret(path: Path) -> str:
    """A random development secret shared by all workers and the `token` command.

    Created once with O_EXCL so concurrent workers agree on one value; never used when
    JWT_SECRET is set (always in production).
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        for _ in range(50):  # another worker may be writing it right now
            value = path.read_text().strip()
            if value:
                return value
            time.sleep(0.02)
        raise RuntimeError(f"{path} is empty: delete it and start again") from None
    value = secrets.token_urlsafe(48)
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")
    return value


# --------------------------------------------------------------------------- logging


def _add_pid(_: Any, __: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    event_dict.setdefault("pid", os.getpid())
    return event_dict


def configure_logging(level: str) -> None:
    """JSON lines on stdout for our logs and uvicorn's, with the request id bound."""
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _add_pid,
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
    )
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers = []
        logging.getLogger(name).propagate = True
    # Our middleware writes the access log, with the request id and route template.
    logging.getLogger("uvicorn.access").handlers = []
    logging.getLogger("uvicorn.access").propagate = False


log = structlog.get_logger("forge")

# --------------------------------------------------------------------------- metrics
# Module level because prometheus_client registries are process-global. With several
# workers set PROMETHEUS_MULTIPROC_DIR (empty at start) and /metrics merges the files.

HTTP_REQUESTS = Counter(
    "http_requests_total", "HTTP requests", ["method", "route", "status"]
)
HTTP_LATENCY = Histogram(
    "http_request_duration_seconds", "HTTP request latency", ["method", "route"]
)
AGENT_RUNS = Counter(
    "agent_runs_total", "Agent runs by entry point and outcome", ["mode", "outcome"]
)
AGENT_DURATION = Histogram(
    "agent_run_duration_seconds",
    "Agent run wall time",
    ["mode"],
    buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600),
)
AGENT_TOKENS = Counter(
    "agent_tokens_total", "Tokens reported by the agent", ["model", "kind"]
)
AGENT_COST = Counter("agent_cost_usd_total", "Cost reported by the SDK", ["model"])
JOBS_RUNNING = Gauge(
    "agent_jobs_running", "Agent jobs running now", multiprocess_mode="livesum"
)
STREAMS_OPEN = Gauge(
    "agent_streams_open",
    "Open SSE and WebSocket streams",
    ["kind"],
    multiprocess_mode="livesum",
)
RATE_LIMITED = Counter("rate_limited_total", "Requests refused with 429")
RATE_LIMIT_UNCHECKED = Counter(
    "rate_limit_unchecked_total",
    "Requests let through unchecked because the rate limiter's Redis did not answer",
)


def render_metrics() -> bytes:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)
    return generate_latest(REGISTRY)


def record_usage(usage: Usage) -> None:
    for kind, value in (
        ("input", usage.input_tokens),
        ("output", usage.output_tokens),
        ("cache_read", usage.cache_read_tokens),
        ("cache_write", usage.cache_write_tokens),
    ):
        if value:
            AGENT_TOKENS.labels(usage.model, kind).inc(value)
    if usage.cost_usd:
        AGENT_COST.labels(usage.model).inc(usage.cost_usd)


# --------------------------------------------------------------------------- errors


class ApiError(Exception):
    """An error whose code and message are safe to show to the client."""

    def __init__(
        self,
        status_code: int,
        code: str,
        message: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.code = code
        self.message = message
        self.headers = headers


def error_body(
    code: str, message: str, request_id: str | None, **extra: Any
) -> dict[str, Any]:
    return {
        "error": {"code": code, "message": message, "request_id": request_id, **extra}
    }


def _request_id_of(scope: Scope) -> str | None:
    return scope.get("state", {}).get("request_id")


def _request_id(conn: HTTPConnection) -> str | None:
    return _request_id_of(conn.scope)


async def api_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return JSONResponse(
        error_body(exc.code, exc.message, _request_id(request)),
        status_code=exc.status_code,
        headers=exc.headers,
    )


HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    429: "rate_limited",
}


async def http_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    code = HTTP_CODES.get(exc.status_code, "http_error")
    message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
    return JSONResponse(
        error_body(code, message, _request_id(request)),
        status_code=exc.status_code,
        headers=exc.headers,
    )


async def validation_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    # loc/msg/type only: echoing the rejected input back could reflect secrets.
    details = [
        {
            "loc": [str(part) for part in err.get("loc", ())],
            "msg": err.get("msg"),
            "type": err.get("type"),
        }
        for err in exc.errors()
    ]
    return JSONResponse(
        error_body(
            "validation_error",
            "request is not valid",
            _request_id(request),
            details=details,
        ),
        status_code=422,
    )


# --------------------------------------------------------------------------- middleware

_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
BODY_TOO_LARGE = "the request body is too large"


class RequestContextMiddleware:
    """Request id, access log, HTTP metrics and the last-resort 500, as pure ASGI.

    Pure ASGI (not BaseHTTPMiddleware) so SSE and WebSocket streams pass through
    untouched and each request costs one function call, not a task and a queue.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        incoming = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming if _REQUEST_ID_RE.match(incoming) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        status_code = 500
        response_started = False

        async def send_with_request_id(message: Message) -> None:
            nonlocal status_code, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status_code = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [
                    *message["headers"],
                    (b"x-request-id", request_id.encode()),
                ]
            await send(message)

        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        try:
            await self.app(scope, receive, send_with_request_id)
        except Exception:
            log.exception("request.unhandled_error", path=scope["path"])
            if scope["type"] != "http" or response_started:
                raise
            status_code = 500
            response = JSONResponse(
                error_body("internal_error", "internal server error", request_id),
                status_code=500,
            )
            await response(scope, receive, send_with_request_id)
        finally:
            elapsed = time.perf_counter() - started
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            if scope["type"] == "http":
                HTTP_REQUESTS.labels(scope["method"], template, str(status_code)).inc()
                HTTP_LATENCY.labels(scope["method"], template).observe(elapsed)
            log.info(
                "request",
                kind=scope["type"],
                method=scope.get("method", "WS"),
                path=scope["path"],
                route=template,
                status=status_code if scope["type"] == "http" else None,
                duration_ms=round(elapsed * 1000, 2),
            )
            structlog.contextvars.clear_contextvars()


class BodyLimitMiddleware:
    """413 for a body over MAX_REQUEST_BODY_BYTES, before it is read: at once when
    Content-Length says so, else as soon as the bytes received pass the limit (chunked).
    FastAPI would otherwise read a body of any size into memory before validating it."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            body = error_body(
                "payload_too_large", BODY_TOO_LARGE, _request_id_of(scope)
            )
            await JSONResponse(body, 413)(scope, receive, send)
            return
        received = 0

        async def receive_within_limit() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                # FastAPI re-raises an HTTPException met while reading the body (other
                # errors become 400); http_error_handler renders the envelope.
                raise StarletteHTTPException(413, BODY_TOO_LARGE)
            return message

        await self.app(scope, receive_within_limit, send)


# ------------------------------------------------------------------------- agent runner
# The interface of the scaffolded project's agents/base.py, inlined so this file stands
# alone. Routes, jobs and the WebSocket only ever see AgentChunks: swapping the SDK is a
# settings change.

ChunkType = Literal["text", "tool_call", "tool_result", "error", "usage"]


@dataclass(frozen=True, slots=True)
class Usage:
    """Token figures for one model; a run may report several (one per model used)."""

    model: str
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    # Only set when the SDK itself reports a cost; never estimated here.
    cost_usd: float | None = None


@dataclass(frozen=True, slots=True)
class AgentChunk:
    type: ChunkType
    # text: the next piece of output; error: a message safe to show to the client.
    text: str = ""
    # tool_call: {"id", "name", "arguments"}; tool_result: {"id", "output"}.
    data: dict[str, Any] = field(default_factory=dict)
    usage: Usage | None = None


@dataclass(frozen=True, slots=True)
class AgentRequest:
    prompt: str
    session_id: str | None = None
    # Per-request model override; None means the runner's configured default.
    model: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class AgentResult:
    text: str
    usage: list[Usage]
    tool_calls: list[dict[str, Any]]


class AgentRunner(Protocol):
    """Streams one run as chunks.

    Cancellation is asyncio cancellation: the caller cancels the task iterating
    `stream()`, and the runner releases its SDK resources in `finally`. Timeouts are the
    caller's `asyncio.timeout(...)` around the iteration.
    """

    name: str

    def stream(self, request: AgentRequest) -> AsyncIterator[AgentChunk]: ...


class AgentRunError(RuntimeError):
    """The agent reported a failure; its message is safe to return to the client."""


ChunkSink = Callable[[AgentChunk], Awaitable[None]]


async def run_to_completion(
    runner: AgentRunner, request: AgentRequest, on_chunk: ChunkSink | None = None
) -> AgentResult:
    """Consume one stream: gather text, usage and tool calls; `on_chunk` sees each."""
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
    return AgentResult(text="".join(parts), usage=usage, tool_calls=tool_calls)


class FakeRunner:
    """The generated project's fake agent (agents/fake.py): `You said: <prompt>` word by
    word after a count_words tool call, then usage. No network, no API key."""

    name = "fake"

    def __init__(self, model: str, delay: float, fail: bool) -> None:
        self.model = model
        self.delay = delay
        self.fail = fail

    async def stream(self, request: AgentRequest) -> AsyncIterator[AgentChunk]:
        words = request.prompt.split()
        call = {
            "id": "call_1",
            "name": "count_words",
            "arguments": {"text": request.prompt},
        }
        yield AgentChunk("tool_call", data=call)
        await asyncio.sleep(self.delay)
        yield AgentChunk(
            "tool_result", data={"id": "call_1", "output": str(len(words))}
        )
        model = request.model or self.model
        if self.fail:
            # As a model call that errors after it was billed: the tokens are spent.
            yield AgentChunk("usage", usage=Usage(model, len(words), 0))
            yield AgentChunk("error", text="the agent failed (FAKE_AGENT_FAIL is set)")
            return
        pieces = ["You", " said:", *(f" {word}" for word in words)]
        for piece in pieces:
            await asyncio.sleep(self.delay)
            yield AgentChunk("text", text=piece)
        yield AgentChunk("usage", usage=Usage(model, len(words), len(pieces)))


def build_runner(settings: Settings) -> AgentRunner:
    # Put a real runner here: a class with `stream(AgentRequest)` yielding AgentChunks.
    # The scaffold's agent layers have one per SDK (assets/scaffold/layers/agent-*/),
    # each behind this same interface.
    return FakeRunner(
        settings.agent_model,
        settings.fake_agent_delay_seconds,
        settings.fake_agent_fail,
    )


# --------------------------------------------------------------------------- schemas
# The generated project's models/schemas.py, for what this file serves.

JobStatus = Literal["queued", "running", "completed", "failed", "cancelled"]
ACTIVE: tuple[JobStatus, ...] = ("queued", "running")
MAX_PROMPT_CHARS = 50_000
ModelName = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[\w.:/@-]+$")]


class RunRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(min_length=1, max_length=MAX_PROMPT_CHARS)
    model: ModelName | None = None
    session_id: str | None = Field(default=None, max_length=200)
    metadata: dict[str, str] = Field(default_factory=dict, max_length=20)


class UsageOut(BaseModel):
    model: str
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cost_usd: float | None = None


class RunResponse(BaseModel):
    output: str
    model: str
    usage: list[UsageOut]
    tool_calls: list[dict[str, Any]]
    duration_seconds: float


class JobOut(BaseModel):
    job_id: uuid.UUID
    status: JobStatus
    progress: float = Field(ge=0, le=1)
    result: str | None = None
    error: str | None = None
    usage: list[UsageOut] = []
    cancel_requested: bool = False
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None


class TicketResponse(BaseModel):
    ticket: str
    expires_in: int


class Health(BaseModel):
    status: str
    checks: dict[str, str] = {}


# --------------------------------------------------------------------------- database
# One table, created at start-up: a single file has no Alembic. The scaffolded project
# uses migrations instead; never create tables at import time.

metadata_obj = MetaData()
agent_jobs = Table(
    "agent_jobs",
    metadata_obj,
    Column("id", String(36), primary_key=True),
    Column("owner", String(255), nullable=False),
    Column("status", String(16), nullable=False),
    Column("prompt", Text, nullable=False),
    Column("model", String(200)),
    Column("progress", Float, nullable=False, default=0.0),
    Column("result", Text),
    Column("error", Text),
    Column("usage", JSON, nullable=False, default=list),
    Column("cancel_requested", Boolean, nullable=False, default=False),
    Column("worker", String(255)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("started_at", DateTime(timezone=True)),
    Column("finished_at", DateTime(timezone=True)),
    Column("heartbeat_at", DateTime(timezone=True), nullable=False),
    Index("ix_agent_jobs_status_heartbeat", "status", "heartbeat_at"),
)
# Idempotency-Key of POST /agents/run/async, per caller: written in the job's own
# transaction, so a key and its job exist together or not at all (as Tier 3's orders).
idempotency_keys = Table(
    "idempotency_keys",
    metadata_obj,
    Column("owner", String(255), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("fingerprint", String(64), nullable=False),
    Column("job_id", String(36), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)
_SCHEMA_LOCK_KEY = 0x466F726765  # pg advisory lock: workers start together


def utcnow() -> datetime:
    return datetime.now(UTC)


@overload
def _aware(value: datetime) -> datetime: ...
@overload
def _aware(value: None) -> None: ...
def _aware(value: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes; everything stored here is UTC.
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def create_engine_for(settings: Settings) -> AsyncEngine:
    url = settings.async_database_url()
    if url.startswith("sqlite"):
        # hide_parameters: errors show the SQL without its values (they may be secrets).
        engine = create_async_engine(
            url, connect_args={"timeout": 30}, hide_parameters=True
        )

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _: Any) -> None:
            cursor = dbapi_connection.cursor()
            # WAL lets readers (status polls) run while a job writes its progress.
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine
    return create_async_engine(
        url,
        pool_size=settings.db_pool_size,
        max_overflow=5,
        pool_pre_ping=True,
        hide_parameters=True,
    )


async def create_schema(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            await conn.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SCHEMA_LOCK_KEY}
            )
        for table in (agent_jobs, idempotency_keys):
            await conn.execute(CreateTable(table, if_not_exists=True))
        for index in agent_jobs.indexes:
            await conn.execute(CreateIndex(index, if_not_exists=True))


def job_out(row: Any) -> JobOut:
    return JobOut(
        job_id=row["id"],
        status=row["status"],
        progress=row["progress"],
        result=row["result"],
        error=row["error"],
        usage=[UsageOut(**item) for item in row["usage"] or []],
        cancel_requested=row["cancel_requested"],
        created_at=_aware(row["created_at"]),
        started_at=_aware(row["started_at"]),
        finished_at=_aware(row["finished_at"]),
    )


class JobStore:
    """Job rows; every state change is a conditional UPDATE, so workers never race."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def create(
        self,
        owner: str,
        prompt: str,
        model: str | None,
        idempotency: tuple[str, str] | None = None,
    ) -> tuple[JobOut, bool]:
        """The new job, or with `idempotency` (key, request fingerprint) the job of an
        earlier request with that key and body: (job, True). A concurrent duplicate
        waits on the key's primary key until the first transaction ends."""
        now = utcnow()
        row = {
            "id": str(uuid.uuid4()),
            "owner": owner,
            "status": "queued",
            "prompt": prompt,
            "model": model,
            "progress": 0.0,
            "result": None,
            "error": None,
            "usage": [],
            "cancel_requested": False,
            "created_at": now,
            "started_at": None,
            "finished_at": None,
            "heartbeat_at": now,
        }
        try:
            async with self.engine.begin() as conn:
                await conn.execute(insert(agent_jobs).values(**row))
                if idempotency is not None:
                    key, fingerprint = idempotency
                    await conn.execute(
                        insert(idempotency_keys).values(
                            owner=owner,
                            key=key,
                            fingerprint=fingerprint,
                            job_id=row["id"],
                            created_at=now,
                        )
                    )
        except IntegrityError:
            if idempotency is None:
                raise
            return await self._earlier(owner, *idempotency), True
        return job_out(row), False

    async def _earlier(self, owner: str, key: str, fingerprint: str) -> JobOut:
        query = select(idempotency_keys).where(
            idempotency_keys.c.owner == owner, idempotency_keys.c.key == key
        )
        async with self.engine.connect() as conn:
            earlier = (await conn.execute(query)).mappings().one()
        if earlier["fingerprint"] != fingerprint:
            raise ApiError(
                422,
                "idempotency_key_reused",
                "this Idempotency-Key was used with another request body",
            )
        job = await self.get(uuid.UUID(earlier["job_id"]), owner)
        if job is None:
            raise ApiError(404, "job_not_found", "no such job")
        return job

    async def get(self, job_id: uuid.UUID, owner: str) -> JobOut | None:
        query = select(agent_jobs).where(
            agent_jobs.c.id == str(job_id), agent_jobs.c.owner == owner
        )
        async with self.engine.connect() as conn:
            row = (await conn.execute(query)).mappings().first()
        return None if row is None else job_out(row)

    async def _update(self, job_id: str, when: tuple[str, ...], **values: Any) -> bool:
        async with self.engine.begin() as conn:
            result = await conn.execute(
                update(agent_jobs)
                .where(agent_jobs.c.id == job_id, agent_jobs.c.status.in_(when))
                .values(**values)
            )
        return result.rowcount == 1

    async def mark_running(self, job_id: str, worker: str) -> bool:
        now = utcnow()
        return await self._update(
            job_id,
            ("queued",),
            status="running",
            worker=worker,
            started_at=now,
            heartbeat_at=now,
        )

    async def touch(self, job_id: str, progress: float) -> bool:
        """Save progress and renew the lease; returns whether a cancel was requested."""
        async with self.engine.begin() as conn:
            result = await conn.execute(
                update(agent_jobs)
                .where(agent_jobs.c.id == job_id, agent_jobs.c.status.in_(ACTIVE))
                .values(heartbeat_at=utcnow(), progress=progress)
                .returning(agent_jobs.c.cancel_requested)
            )
            flag = result.scalar_one_or_none()
        return bool(flag)

    async def finish(self, job_id: str, status_: JobStatus, **values: Any) -> None:
        if status_ == "completed":
            values["progress"] = 1.0
        await self._update(
            job_id, ACTIVE, status=status_, finished_at=utcnow(), **values
        )

    async def request_cancel(self, job_id: str) -> str | None:
        """Queued jobs are cancelled on the spot; running ones get the flag their
        worker polls. Returns the status the job had, None if it had finished."""
        if await self._update(
            job_id,
            ("queued",),
            status="cancelled",
            cancel_requested=True,
            finished_at=utcnow(),
        ):
            return "queued"
        if await self._update(job_id, ("running",), cancel_requested=True):
            return "running"
        return None

    async def fail_stale(self, older_than: timedelta) -> int:
        async with self.engine.begin() as conn:
            result = await conn.execute(
                update(agent_jobs)
                .where(
                    agent_jobs.c.status.in_(ACTIVE),
                    agent_jobs.c.heartbeat_at < utcnow() - older_than,
                )
                .values(
                    status="failed",
                    finished_at=utcnow(),
                    error="interrupted: the worker stopped",
                )
            )
        return result.rowcount


# --------------------------------------------------------------------------- rate limit


@dataclass(frozen=True, slots=True)
class RateDecision:
    allowed: bool
    retry_after: int


class RateLimiter(Protocol):
    backend: str

    async def hit(self, key: str) -> RateDecision: ...


# Fixed window in one round trip: INCR, start the window on the first hit, report TTL.
_RATE_LUA = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]); ttl = tonumber(ARGV[1]) end
return {count, ttl}
"""


class RedisRateLimiter:
    """Shared by every worker and replica: the counter lives in Redis."""

    backend = "redis"

    def __init__(self, redis: Redis, prefix: str, limit: int, window: int) -> None:
        self.script = redis.register_script(_RATE_LUA)
        self.prefix = prefix
        self.limit = limit
        self.window_ms = window * 1000

    async def hit(self, key: str) -> RateDecision:
        count, ttl_ms = await self.script(
            keys=[f"{self.prefix}ratelimit:{key}"], args=[self.window_ms]
        )
        retry_after = max(1, -(-int(ttl_ms) // 1000))
        return RateDecision(int(count) <= self.limit, retry_after)


class MemoryRateLimiter:
    """Zero-setup only: each worker counts alone (N workers allow N x the limit)."""

    backend = "memory"

    def __init__(self, limit: int, window: int) -> None:
        self.limit = limit
        self.window = window
        self.windows: dict[str, tuple[float, int]] = {}

    async def hit(self, key: str) -> RateDecision:
        now = time.monotonic()
        if len(self.windows) > 10_000:  # bound memory: drop expired windows
            self.windows = {
                k: v for k, v in self.windows.items() if now - v[0] < self.window
            }
        start, count = self.windows.get(key, (now, 0))
        if now - start >= self.window:
            start, count = now, 0
        self.windows[key] = (start, count + 1)
        retry_after = max(1, int(start + self.window - now + 0.999))
        return RateDecision(count + 1 <= self.limit, retry_after)


# --------------------------------------------------------------------------- run slots

# No run announces its end: a client over its cap may try again after this long.
RUN_RETRY_AFTER_SECONDS = 5
# A caller's slots: run ids scored by lease expiry (Redis time). 1: taken.
_ACQUIRE_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""
_RENEW_LUA = """
if not redis.call('ZSCORE', KEYS[1], ARGV[2]) then return 0 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[1]), ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1
"""


class RunSlots:
    """AGENT_MAX_CONCURRENT_RUNS_PER_USER: in Redis, shared by every worker, each slot
    a lease renewed while its run lasts (a killed process's slots expire); in zero-setup
    mode a dict, so one worker only. Fails open, as the rate limiter does."""

    def __init__(self, redis: Redis | None, settings: Settings) -> None:
        self.redis = redis
        self.prefix = settings.redis_key_prefix
        self.limit = settings.agent_max_concurrent_runs_per_user
        self.lease_s = settings.agent_run_lease_seconds
        self.renew_wait_s = settings.redis_timeout_seconds
        self.memory: dict[str, int] = {}

    @asynccontextmanager
    async def hold(self, subject: str) -> AsyncIterator[None]:
        """One of `subject`'s slots for the block, or ApiError 429; released however
        the block ends, cancellation included."""
        if self.redis is None:
            if self.memory.get(subject, 0) >= self.limit:
                raise self.refusal()
            self.memory[subject] = self.memory.get(subject, 0) + 1
            try:
                yield
            finally:
                self.memory[subject] -= 1
                if not self.memory[subject]:
                    del self.memory[subject]
            return
        redis, key, run_id = (
            self.redis,
            f"{self.prefix}runs:{subject}",
            uuid.uuid4().hex,
        )
        lease_ms = int(self.lease_s * 1000)
        try:
            taken = await redis.register_script(_ACQUIRE_LUA)(
                keys=[key], args=[self.limit, lease_ms, run_id]
            )
        except Exception:
            log.warning("run_slot.unchecked", reason="redis_unavailable")
            RATE_LIMIT_UNCHECKED.inc()
            yield
            return
        if not int(taken):
            raise self.refusal()
        renew = redis.register_script(_RENEW_LUA)

        released = False

        async def renew_until_released() -> None:
            # Stops at `released` too, not only when cancelled: a cancellation that
            # lands in the Redis call may come out as a Redis error, which the loop
            # must not outlive (the release below would wait for it forever).
            while not released:
                await asyncio.sleep(self.lease_s / 3)
                if released:
                    return
                with suppress(Exception):
                    await renew(keys=[key], args=[lease_ms, run_id])

        renewer = asyncio.create_task(renew_until_released())
        try:
            yield
        finally:
            released = True
            renewer.cancel()
            # A client that left cancels this block again and again: the release must
            # still reach Redis, or the slot stays taken until its lease expires.
            with anyio.CancelScope(shield=True):
                await asyncio.wait([renewer], timeout=self.renew_wait_s)
                try:
                    await redis.zrem(key, run_id)
                except Exception:
                    log.warning("run_slot.not_released", reason="redis_unavailable")

    def refusal(self) -> ApiError:
        return ApiError(
            429,
            "too_many_concurrent_runs",
            f"at most {self.limit} agent runs at once per caller; retry when one ended",
            {"Retry-After": str(RUN_RETRY_AFTER_SECONDS)},
        )


# --------------------------------------------------------------------------- services


class TicketStore:
    """Single-use tickets for browsers' SSE and WebSocket (`?ticket=`): random, bound to
    the caller, consumed atomically. Redis (GETDEL, shared by every worker) when
    REDIS_URL is set; in zero-setup mode a dict, so one worker only. Only the ticket's
    SHA-256 is stored."""

    def __init__(self, redis: Redis | None, prefix: str, ttl_seconds: int) -> None:
        self.redis = redis
        self.prefix = prefix
        self.ttl_seconds = ttl_seconds
        self.memory: dict[str, tuple[float, str]] = {}

    def _key(self, ticket: str) -> str:
        return f"{self.prefix}ticket:{hashlib.sha256(ticket.encode()).hexdigest()}"

    async def issue(self, subject: str) -> str:
        ticket = secrets.token_urlsafe(32)
        if self.redis is not None:
            await self.redis.set(self._key(ticket), subject, ex=self.ttl_seconds)
        else:
            now = time.monotonic()
            self.memory = {k: v for k, v in self.memory.items() if v[0] > now}
            self.memory[self._key(ticket)] = (now + self.ttl_seconds, subject)
        return ticket

    async def redeem(self, ticket: str) -> str | None:
        if not ticket or len(ticket) > 128:
            return None
        if self.redis is not None:
            subject = await self.redis.getdel(self._key(ticket))
            return subject.decode() if isinstance(subject, bytes) else subject
        expires, subject = self.memory.pop(self._key(ticket), (0.0, ""))
        return subject if expires > time.monotonic() else None


@dataclass
class Services:
    settings: Settings
    engine: AsyncEngine
    redis: Redis | None
    limiter: RateLimiter
    tickets: TicketStore
    runner: AgentRunner
    jobs: JobManager
    run_slots: RunSlots

    async def ping_db(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))


def check_model(settings: Settings, model: str | None) -> None:
    """None is AGENT_MODEL; any other model must be listed in AGENT_ALLOWED_MODELS."""
    if model is not None and model not in {
        settings.agent_model,
        *settings.agent_allowed_models,
    }:
        raise ApiError(
            422,
            "model_not_allowed",
            f"model {model!r} is not allowed; omit `model` for the default",
        )


async def run_agent(
    runner: AgentRunner,
    request: AgentRequest,
    *,
    limit_s: float,
    mode: str,
    on_chunk: ChunkSink | None = None,
) -> AgentResult:
    """One agent run in the current task: timeout, metrics and token accounting.

    Tokens are counted as usage chunks arrive, so runs that time out or are cancelled
    after reporting usage are still accounted for.
    """

    async def account(chunk: AgentChunk) -> None:
        if chunk.type == "usage" and chunk.usage is not None:
            record_usage(chunk.usage)
        if on_chunk is not None:
            await on_chunk(chunk)

    started = time.perf_counter()
    outcome = "failed"
    try:
        async with asyncio.timeout(limit_s):
            result = await run_to_completion(runner, request, account)
        outcome = "completed"
        return result
    except TimeoutError:
        outcome = "timeout"
        raise
    except asyncio.CancelledError:
        outcome = "cancelled"
        raise
    finally:
        AGENT_RUNS.labels(mode, outcome).inc()
        AGENT_DURATION.labels(mode).observe(time.perf_counter() - started)


# How long a run that was left (client gone, timeout) may take to close its model call.
CLEANUP_SECONDS = 10.0


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
            with suppress(Exception):
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


class JobManager:
    """In-process job runner (asyncio tasks) with its state in the database.

    Each job has a watcher that, every JOB_POLL_SECONDS, saves progress, renews the
    job's lease and reads its cancel flag: so DELETE works whichever worker served it,
    and a lease that stops moving tells the other workers this one died (its jobs are
    then failed, never re-run: a paid run is not retried automatically).
    """

    def __init__(
        self, store: JobStore, runner: AgentRunner, settings: Settings
    ) -> None:
        self.store = store
        self.runner = runner
        self.settings = settings
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}"
        self.slots = asyncio.Semaphore(settings.worker_concurrency)
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self.cancelled_by_client: set[str] = set()

    async def submit(
        self, owner: str, body: RunRequest, idempotency_key: str | None = None
    ) -> tuple[JobOut, bool]:
        """Store the job, then start it: the answer is the job as queued. With an
        Idempotency-Key already used with this body: that job, (job, True)."""
        fingerprint = hashlib.sha256(body.model_dump_json().encode()).hexdigest()
        idempotency = (
            None if idempotency_key is None else (idempotency_key, fingerprint)
        )
        job, replayed = await self.store.create(
            owner, body.prompt, body.model, idempotency
        )
        if replayed:
            return job, True
        job_id = str(job.job_id)
        request = AgentRequest(body.prompt, body.session_id, body.model, body.metadata)
        task = asyncio.create_task(self._execute(job_id, request))
        self.tasks[job_id] = task
        task.add_done_callback(lambda _: self.tasks.pop(job_id, None))
        return job, False

    async def cancel(self, job_id: str) -> bool:
        """False if the job had already finished."""
        if await self.store.request_cancel(job_id) is None:
            return False
        task = self.tasks.get(job_id)
        if task is not None:  # ours: stop it now instead of at the next poll
            self.cancelled_by_client.add(job_id)
            task.cancel()
        return True

    async def _watch(
        self, job_id: str, chunks: list[int], run: asyncio.Task[Any]
    ) -> None:
        while True:
            await asyncio.sleep(self.settings.job_poll_seconds)
            # Agents do not announce their length: approach 1 without reaching it.
            progress = round(min(0.99, chunks[0] / (chunks[0] + 20)), 3)
            try:
                if await self.store.touch(job_id, progress):
                    self.cancelled_by_client.add(job_id)
                    run.cancel()
                    return
            except Exception:
                log.exception("job.watch_failed", job_id=job_id)

    async def _execute(self, job_id: str, request: AgentRequest) -> None:
        chunks = [0]
        usage: list[Usage] = []
        this_task = asyncio.current_task()
        assert this_task is not None
        watcher = asyncio.create_task(self._watch(job_id, chunks, this_task))

        async def track(chunk: AgentChunk) -> None:
            chunks[0] += 1
            if chunk.type == "usage" and chunk.usage is not None:
                usage.append(chunk.usage)

        structlog.contextvars.bind_contextvars(job_id=job_id)
        limit = self.settings.agent_timeout_seconds
        final: dict[str, Any]
        try:
            async with self.slots:
                if not await self.store.mark_running(job_id, self.worker_id):
                    return  # cancelled while queued
                JOBS_RUNNING.inc()
                try:
                    result = await run_agent(
                        self.runner, request, limit_s=limit, mode="job", on_chunk=track
                    )
                finally:
                    JOBS_RUNNING.dec()
            final = {"status_": "completed", "result": result.text}
        except TimeoutError:
            error = f"agent timed out after {limit:g} seconds"
            final = {"status_": "failed", "error": error}
        except AgentRunError as exc:
            final = {"status_": "failed", "error": str(exc)[:500]}
        except asyncio.CancelledError:
            if job_id in self.cancelled_by_client:
                final = {"status_": "cancelled"}
            else:
                final = {
                    "status_": "failed",
                    "error": "interrupted: the worker stopped",
                }
        except Exception:
            log.exception("job.crashed")
            final = {
                "status_": "failed",
                "error": "the agent failed; see the server logs",
            }
        finally:
            watcher.cancel()
            self.cancelled_by_client.discard(job_id)
        usage_out = [asdict(item) for item in usage]
        # Shielded: a second cancel (shutdown) must not lose the final state.
        await asyncio.shield(self.store.finish(job_id, usage=usage_out, **final))
        log.info("job.finished", status=final["status_"])

    async def reap_stale(self) -> None:
        """Fail jobs whose worker died; runs at start-up and then periodically."""
        count = await self.store.fail_stale(
            timedelta(seconds=self.settings.job_stale_seconds)
        )
        if count:
            log.warning("jobs.reaped_stale", count=count)

    async def close(self) -> None:
        tasks = list(self.tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


# ------------------------------------------------------------------------- dependencies


def get_services(conn: HTTPConnection) -> Services:
    return conn.state.services  # type: ignore[no-any-return]


ServicesDep = Annotated[Services, Depends(get_services)]


@dataclass(frozen=True, slots=True)
class Principal:
    subject: str


def verify_token(token: str, settings: Settings) -> Principal:
    """PyJWT with the algorithm pinned and exp, iat, sub, aud, iss required.

    `algorithms=[...]` is the whole defence against `alg: none` and key confusion: the
    header is never trusted to pick the algorithm.
    """
    try:
        claims = jwt.decode(
            token,
            settings.signing_key(),
            algorithms=[settings.jwt_algorithm],
            audience=settings.jwt_audience,
            issuer=settings.jwt_issuer,
            leeway=settings.jwt_leeway_seconds,
            options={"require": ["exp", "iat", "sub", "aud", "iss"]},
        )
    except jwt.ExpiredSignatureError:
        raise ApiError(401, "token_expired", "credentials are not valid") from None
    except jwt.InvalidTokenError:
        raise ApiError(401, "invalid_token", "credentials are not valid") from None
    return Principal(subject=str(claims["sub"]))


def issue_token(settings: Settings, subject: str, ttl_seconds: int = 3600) -> str:
    now = utcnow()
    claims: dict[str, Any] = {
        "sub": subject,
        "aud": settings.jwt_audience,
        "iss": settings.jwt_issuer,
        "iat": now,
        "exp": now + timedelta(seconds=ttl_seconds),
    }
    return jwt.encode(claims, settings.signing_key(), algorithm=settings.jwt_algorithm)


async def current_principal(conn: HTTPConnection, services: ServicesDep) -> Principal:
    """`Authorization: Bearer`, else (GET and WebSocket only) a single-use `?ticket=`
    from POST /auth/tickets, for browsers' EventSource and WebSocket, which cannot
    send headers. A dependency here (the project uses a middleware): one file, and
    health and metrics simply do not declare it. Once per request (a ticket is single
    use; `caller_run_slot` asks before the route does)."""
    principal = conn.scope.get("forge.principal")
    if not isinstance(principal, Principal):
        principal = conn.scope["forge.principal"] = await authenticate(conn, services)
    return principal


async def authenticate(conn: HTTPConnection, services: ServicesDep) -> Principal:
    scheme, _, token = conn.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return verify_token(token.strip(), services.settings)
    ticket = conn.query_params.get("ticket")
    if ticket and conn.scope.get("method", "GET") == "GET":
        subject = await services.tickets.redeem(ticket)
        if subject is None:
            raise ApiError(401, "invalid_ticket", "credentials are not valid")
        return Principal(subject=subject)
    raise ApiError(
        401,
        "missing_credentials",
        "authentication required",
        {"WWW-Authenticate": "Bearer"},
    )


PrincipalDep = Annotated[Principal, Depends(current_principal)]


async def rate_limited(services: ServicesDep, principal: PrincipalDep) -> None:
    """Per caller (the verified subject, which cannot be spoofed the way a client
    address behind a proxy can), shared by every worker through Redis."""
    try:
        decision = await services.limiter.hit(f"user:{principal.subject}")
    except Exception:
        # Fail open: a Redis outage must not take the API down; /health/ready reports
        # it so the load balancer drains this instance.
        log.exception("rate_limit.backend_unavailable")
        RATE_LIMIT_UNCHECKED.inc()
        return
    if not decision.allowed:
        RATE_LIMITED.inc()
        raise ApiError(
            429,
            "rate_limited",
            "too many requests; retry later",
            {"Retry-After": str(decision.retry_after), "X-RateLimit-Remaining": "0"},
        )


async def agent_run_slot() -> AsyncIterator[None]:
    """Held while a run's request lasts; capped per process in `create_app`."""
    yield


async def caller_run_slot(
    connection: HTTPConnection, services: ServicesDep
) -> AsyncIterator[None]:
    """One of the caller's AGENT_MAX_CONCURRENT_RUNS_PER_USER slots while the response
    lasts, or 429; a WebSocket takes one per run instead (`agent_ws`, which also
    answers its own authentication errors)."""
    if connection.scope["type"] == "websocket":
        yield
        return
    principal = await current_principal(connection, services)
    async with services.run_slots.hold(principal.subject):
        yield


# --------------------------------------------------------------------------- routes


class AuthFirstRoute(APIRoute):
    """A method the route does not serve (OPTIONS, say) is answered 405 only once the
    caller is authenticated: authentication is a dependency, which routing skips on a
    405. CORS preflights from allowed origins never get here: CORSMiddleware answers."""

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] not in self.methods:
            connection = HTTPConnection(scope)
            try:
                await current_principal(connection, get_services(connection))
            except ApiError as exc:
                response = await api_error_handler(Request(scope), exc)
                await response(scope, receive, send)
                return
        await super().handle(scope, receive, send)


health_router = APIRouter(tags=["health"])
limited = [Depends(rate_limited)]
auth_router = APIRouter(
    prefix="/auth", tags=["auth"], dependencies=limited, route_class=AuthFirstRoute
)
agents_router = APIRouter(
    prefix="/agents",
    tags=["agents"],
    dependencies=limited,
    route_class=AuthFirstRoute,
)
# The routes that run the agent in this process; mounted under the concurrency cap.
runs_router = APIRouter(prefix="/agents", tags=["agents"], route_class=AuthFirstRoute)


@health_router.get("/health")
async def health() -> Health:
    """Liveness: the process answers; no dependency is checked."""
    return Health(status="ok")


@health_router.get("/health/ready", responses={503: {"model": Health}})
async def ready(services: ServicesDep) -> Response:
    """Readiness: database and Redis answer within REDIS_TIMEOUT_SECONDS each."""
    limit = services.settings.redis_timeout_seconds
    checks: dict[str, str] = {}
    probes: dict[str, Callable[[], Awaitable[Any]]] = {"database": services.ping_db}
    if services.redis is not None:
        probes["redis"] = services.redis.ping
    for name, probe in probes.items():
        try:
            async with asyncio.timeout(limit):
                await probe()
            checks[name] = "ok"
        except Exception as exc:
            log.warning("ready.check_failed", check=name, error=type(exc).__name__)
            checks[name] = "failed"
    ok = all(value == "ok" for value in checks.values())
    body = Health(status="ready" if ok else "not_ready", checks=checks)
    return JSONResponse(body.model_dump(), status_code=200 if ok else 503)


@health_router.get("/metrics", include_in_schema=False)
async def metrics() -> Response:
    # Public like the probes: expose it only on the internal network / scrape port.
    return Response(render_metrics(), media_type=CONTENT_TYPE_LATEST)


@auth_router.post("/tickets", status_code=201)
async def create_ticket(
    services: ServicesDep, principal: PrincipalDep
) -> TicketResponse:
    """A ticket for one `?ticket=` on GET /agents/run/stream or WS /agents/ws."""
    ticket = await services.tickets.issue(principal.subject)
    return TicketResponse(
        ticket=ticket, expires_in=services.settings.ticket_ttl_seconds
    )


def _usage_out(usage: list[Usage]) -> list[UsageOut]:
    return [UsageOut(**asdict(item)) for item in usage]


def stream_event(chunk: AgentChunk) -> dict[str, Any]:
    """One chunk as sent over SSE (`data:`) and WebSocket: the project's StreamEvent."""
    usage = asdict(chunk.usage) if chunk.usage else None
    return {"type": chunk.type, "text": chunk.text, "data": chunk.data, "usage": usage}


# The last event of a run, over SSE and WebSocket: the StreamEvent shape.
DONE_EVENT = {"type": "done", "text": "", "data": {}, "usage": None}
TIMEOUT_EVENT = {
    **DONE_EVENT,
    "type": "error",
    "text": "the agent did not finish in time",
}


@runs_router.post("/run", dependencies=limited)
async def run(body: RunRequest, services: ServicesDep, _: PrincipalDep) -> RunResponse:
    """Run the agent and wait: 504 on timeout, 502 when the agent reports an error."""
    check_model(services.settings, body.model)
    request = AgentRequest(body.prompt, body.session_id, body.model, body.metadata)
    limit = services.settings.agent_timeout_seconds
    started = time.perf_counter()
    try:
        result = await run_agent(services.runner, request, limit_s=limit, mode="sync")
    except TimeoutError:
        raise ApiError(
            504, "agent_timeout", "the agent did not finish in time"
        ) from None
    except AgentRunError as exc:
        raise ApiError(502, "agent_error", str(exc)) from None
    return RunResponse(
        output=result.text,
        model=body.model or services.settings.agent_model,
        usage=_usage_out(result.usage),
        tool_calls=result.tool_calls,
        duration_seconds=round(time.perf_counter() - started, 4),
    )


@agents_router.post("/run/async", status_code=202)
async def run_async(
    body: RunRequest,
    services: ServicesDep,
    principal: PrincipalDep,
    response: Response,
    idempotency_key: Annotated[str | None, Header(min_length=1, max_length=255)] = None,
) -> JobOut:
    """Start a background job; poll GET /agents/jobs/{id} (the Location header).
    `Idempotency-Key`: the same key and body return the first job (header
    Idempotent-Replayed: true); another body with it is 422 idempotency_key_reused."""
    check_model(services.settings, body.model)
    job, replayed = await services.jobs.submit(principal.subject, body, idempotency_key)
    response.headers["Location"] = f"/agents/jobs/{job.job_id}"
    if replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return job


async def _owned_job(services: Services, job_id: uuid.UUID, subject: str) -> JobOut:
    job = await services.jobs.store.get(job_id, subject)
    if job is None:  # someone else's job is "not found" too: ids are not disclosed
        raise ApiError(404, "job_not_found", "no such job")
    return job


@agents_router.get("/jobs/{job_id}")
async def get_job(
    job_id: uuid.UUID, services: ServicesDep, principal: PrincipalDep
) -> JobOut:
    return await _owned_job(services, job_id, principal.subject)


@agents_router.delete("/jobs/{job_id}", status_code=202)
async def cancel_job(
    job_id: uuid.UUID, services: ServicesDep, principal: PrincipalDep
) -> JobOut:
    """Cancel a queued or running job: 202, cancellation requested (poll until
    `cancelled`); 409 if it had already finished; 404 if unknown or someone else's."""
    await _owned_job(services, job_id, principal.subject)
    if not await services.jobs.cancel(str(job_id)):
        raise ApiError(409, "job_finished", "the job has already finished")
    return await _owned_job(services, job_id, principal.subject)


async def allowed_query_model(
    services: ServicesDep, model: Annotated[ModelName | None, Query()] = None
) -> str | None:
    # Checked before the stream starts: once it has, a refusal can no longer be a 422.
    check_model(services.settings, model)
    return model


@runs_router.get(
    "/run/stream", response_class=EventSourceResponse, dependencies=limited
)
async def run_stream(
    services: ServicesDep,
    _: PrincipalDep,
    prompt: Annotated[str, Query(min_length=1, max_length=MAX_PROMPT_CHARS)],
    model: Annotated[str | None, Depends(allowed_query_model)],
) -> AsyncIterator[ServerSentEvent]:
    """Server-Sent Events: `tool_call`, `tool_result`, `text`, `usage`, then `done` or
    `error`. FastAPI sends `: ping` after 15 s of silence. A client that leaves cancels
    the task iterating this generator, and with it the agent run (`run_in_task`)."""
    deadline = (
        asyncio.get_running_loop().time() + services.settings.agent_timeout_seconds
    )
    chunks = run_in_task(services.runner, AgentRequest(prompt, model=model), deadline)
    sequence = 0
    STREAMS_OPEN.labels("sse").inc()
    try:
        async for chunk in chunks:
            if chunk.usage is not None:
                record_usage(chunk.usage)
            sequence += 1
            yield ServerSentEvent(
                event=chunk.type, id=str(sequence), data=stream_event(chunk)
            )
            if chunk.type == "error":
                return
        yield ServerSentEvent(event="done", id=str(sequence + 1), data=DONE_EVENT)
    except TimeoutError:
        yield ServerSentEvent(event="error", id=str(sequence + 1), data=TIMEOUT_EVENT)
    finally:
        STREAMS_OPEN.labels("sse").dec()
        await chunks.aclose()


class WsRun(BaseModel):
    type: Literal["run"]
    prompt: str = Field(min_length=1, max_length=MAX_PROMPT_CHARS)
    model: ModelName | None = None
    session_id: str | None = Field(default=None, max_length=200)


@runs_router.websocket("/ws")
async def agent_ws(websocket: WebSocket, services: ServicesDep) -> None:
    """Authenticated at the handshake (Authorization header, or `?ticket=`); refused
    with HTTP 401 before it is accepted. Then JSON frames:
    server `ready`; client `run` -> chunks (tool_call, tool_result, text, usage) then
    `done` or `error` (each as the SSE event's data; a run over the rate limit gets an
    `error` with data.code `rate_limited`, over AGENT_MAX_CONCURRENT_RUNS_PER_USER
    `too_many_concurrent_runs`); client `cancel` -> `cancelled`; client
    `ping` -> `pong`; server `ping` every WS_PING_INTERVAL_SECONDS. Close codes: 1003
    a message the server cannot parse, 1011 an unexpected server error."""
    try:
        principal = await current_principal(websocket, services)
        await rate_limited(services, principal)  # the handshake is a request too
    except ApiError as exc:
        body = error_body(exc.code, exc.message, _request_id(websocket))
        denial = JSONResponse(body, exc.status_code, exc.headers)
        await websocket.send_denial_response(denial)
        return
    await websocket.accept()
    settings = services.settings
    send_lock = asyncio.Lock()
    current: asyncio.Task[None] | None = None
    STREAMS_OPEN.labels("ws").inc()

    async def send(message: dict[str, Any]) -> None:
        async with send_lock:  # pongs and chunks come from different tasks
            await websocket.send_json(message)

    async def run_one(message: WsRun) -> None:
        last: dict[str, Any] | None = DONE_EVENT

        async def forward(chunk: AgentChunk) -> None:
            nonlocal last
            if chunk.type == "error":
                last = stream_event(chunk)  # sent once the run's slot is free
            else:
                await send(stream_event(chunk))

        request = AgentRequest(message.prompt, message.session_id, message.model)
        try:
            # Each run costs one request of the caller's rate limit, as over HTTP.
            await rate_limited(services, principal)
        except ApiError as exc:
            retry = int(exc.headers["Retry-After"])
            data = {"code": exc.code, "retry_after": retry}
            await send(stream_event(AgentChunk("error", text=exc.message, data=data)))
            return
        try:
            async with services.run_slots.hold(principal.subject):
                await run_agent(
                    services.runner,
                    request,
                    limit_s=settings.agent_timeout_seconds,
                    mode="ws",
                    on_chunk=forward,
                )
        except TimeoutError:
            last = TIMEOUT_EVENT
        except AgentRunError:
            pass  # `last` is its error chunk
        except ApiError as over:  # only the run slot raises it
            data = {"code": over.code, "retry_after": RUN_RETRY_AFTER_SECONDS}
            last = stream_event(AgentChunk("error", text=over.message, data=data))
        # The last frame goes out once the slot is free: a client that runs again as
        # soon as it has it must find neither this run in progress nor its slot taken.
        await send(last)

    async def heartbeat() -> None:
        while True:
            await asyncio.sleep(settings.ws_ping_interval_seconds)
            await send({"type": "ping"})

    pinger = asyncio.create_task(heartbeat())
    try:
        await send({"type": "ready"})
        while True:
            try:
                message = json.loads(await websocket.receive_text())
                kind = message["type"]
                parsed = WsRun.model_validate(message) if kind == "run" else None
                if kind not in ("run", "ping", "cancel"):
                    raise ValueError(kind)
            except (ValueError, KeyError, TypeError, ValidationError):
                await websocket.close(
                    status.WS_1003_UNSUPPORTED_DATA, "invalid message"
                )
                return
            busy = current is not None and not current.done()
            if kind == "ping":
                await send({"type": "pong"})
            elif kind == "cancel" and current is not None and busy:
                current.cancel()
                with suppress(asyncio.CancelledError):
                    await current
                await send({"type": "cancelled"})
            elif parsed is not None and busy:
                await send({"type": "error", "text": "a run is already in progress"})
            elif parsed is not None:
                try:
                    check_model(settings, parsed.model)
                except ApiError as refused:
                    await send({"type": "error", "text": refused.message})
                    continue
                current = asyncio.create_task(run_one(parsed))
    except WebSocketDisconnect:
        log.info("ws.client_disconnected")
    except Exception:
        log.exception("ws.failed")
        with suppress(Exception):
            await websocket.close(code=status.WS_1011_INTERNAL_ERROR)
    finally:
        STREAMS_OPEN.labels("ws").dec()
        pinger.cancel()
        if current is not None:
            current.cancel()
        await asyncio.gather(
            pinger, *([current] if current else []), return_exceptions=True
        )


# --------------------------------------------------------------------------- app


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    configure_logging(settings.log_level)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[dict[str, Any]]:
        # One table, created at start-up: a single file has no Alembic (the generated
        # project migrates with Alembic instead and never creates tables itself).
        engine = create_engine_for(settings)
        await create_schema(engine)
        redis: Redis | None = None
        limiter: RateLimiter
        if settings.redis_url:
            redis = Redis.from_url(
                settings.redis_url,
                socket_connect_timeout=settings.redis_timeout_seconds,
                socket_timeout=settings.redis_timeout_seconds,
            )
            limiter = RedisRateLimiter(
                redis,
                settings.redis_key_prefix,
                settings.rate_limit_requests,
                settings.rate_limit_window_seconds,
            )
        else:
            limiter = MemoryRateLimiter(
                settings.rate_limit_requests, settings.rate_limit_window_seconds
            )
        tickets = TicketStore(
            redis, settings.redis_key_prefix, settings.ticket_ttl_seconds
        )
        runner = build_runner(settings)
        jobs = JobManager(JobStore(engine), runner, settings)
        await jobs.reap_stale()
        run_slots = RunSlots(redis, settings)
        services = Services(
            settings, engine, redis, limiter, tickets, runner, jobs, run_slots
        )
        database = "sqlite" if settings.database_url is None else "postgresql"
        modes = {
            "zero_setup": settings.zero_setup,
            "database": database,
            "database_file": str(settings.sqlite_path.resolve())
            if database == "sqlite"
            else None,
            "rate_limiter": limiter.backend,
            "jobs": "in-process asyncio tasks, state in the database",
            "auth_secret": "JWT_SECRET"
            if settings.jwt_secret
            else str(settings.dev_secret_file),
        }
        if settings.zero_setup:
            log.warning(
                "startup.zero_setup",
                message=(
                    f"zero-setup mode: SQLite file {modes['database_file']},"
                    " in-process rate limiter and tickets (per worker), in-process job"
                    " runner; set DATABASE_URL and REDIS_URL for production"
                ),
                **modes,
            )
        else:
            log.info("startup", **modes)

        async def reap_forever() -> None:
            while True:
                await asyncio.sleep(settings.job_stale_seconds)
                with suppress(Exception):
                    await jobs.reap_stale()

        reaper = asyncio.create_task(reap_forever())
        # Start-up objects live forever: keep them out of full collections, which
        # caused the SSE tail latency measured with thousands of streams.
        gc.freeze()
        try:
            yield {"services": services}
        finally:
            reaper.cancel()
            await jobs.close()
            if redis is not None:
                await redis.aclose()
            await engine.dispose()
            log.info("shutdown")

    app = FastAPI(title=settings.app_name, lifespan=lifespan)
    app.add_exception_handler(ApiError, api_error_handler)
    app.add_exception_handler(StarletteHTTPException, http_error_handler)
    app.add_exception_handler(RequestValidationError, validation_error_handler)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "X-Request-ID"],
            expose_headers=["X-Request-ID", "Retry-After", "Location"],
        )
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_request_body_bytes)
    app.add_middleware(RequestContextMiddleware)  # added last = outermost
    app.include_router(health_router)
    app.include_router(auth_router)
    app.include_router(agents_router)
    # One Depends object, declared on the APIRouter around the routes that run the
    # agent: AGENT_MAX_CONCURRENT_RUNS per process; more wait for a slot, held until the
    # response (an SSE stream, a WebSocket session) ends. The caller's own cap comes
    # first: a caller over it is refused without waiting.
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
    capped.include_router(runs_router)
    app.include_router(capped)
    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="single-file FastAPI agent backend")
    commands = parser.add_subparsers(dest="command")
    serve = commands.add_parser("serve", help="run with uvicorn (default)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1)
    token = commands.add_parser("token", help="print a bearer token for SUBJECT")
    token.add_argument("subject")
    token.add_argument("--ttl", type=int, default=3600, help="seconds (default 3600)")
    args = parser.parse_args(argv)
    if args.command == "token":
        print(issue_token(Settings(), args.subject, args.ttl))
        return
    import uvicorn

    module = Path(__file__).resolve()
    uvicorn.run(
        f"{module.stem}:create_app",
        factory=True,
        app_dir=str(module.parent),
        host=getattr(args, "host", "127.0.0.1"),
        port=getattr(args, "port", 8000),
        workers=getattr(args, "workers", 1),
        log_config=None,  # our JSON logging is configured by create_app
    )


if __name__ == "__main__":
    main()
