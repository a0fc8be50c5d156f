"""Single-file FastAPI agent backend (Tier 1 in one module).

Everything an agent API needs in production, in one file you can copy and run: settings,
lifespan, JWT auth, rate limiting, JSON logs with a request id, Prometheus metrics,
liveness/readiness, structured errors, and the agent endpoints:

    POST   /agents/run          run and wait for the result
    POST   /agents/run/async    start a background job, returns its id (202)
    GET    /agents/run/stream   Server-Sent Events: tokens, tool calls, usage, heartbeat
    WS     /agents/ws           bidirectional: auth, ping/pong, run, cancel
    GET    /agents/jobs/{id}    job status, progress, result or error, token usage
    DELETE /agents/jobs/{id}    cancel a queued or running job (really stops it)

Zero setup: without DATABASE_URL and REDIS_URL it keeps jobs in a SQLite file
(`forge_app.db`), limits rates in process memory (per worker) and signs development
tokens with a secret kept in `.forge-dev-secret`; the start-up log says so. With
DATABASE_URL (PostgreSQL, asyncpg) and REDIS_URL set it uses them, and the rate limit
is shared by every worker. Jobs run in-process (asyncio tasks) in both modes: their
state lives in the database, a worker polls its jobs' cancel flag, so a DELETE served by
any worker stops the job, and jobs of a worker that died are marked failed. The
scaffolded Tier 1 project (scripts/scaffold_fastapi.py) moves jobs to an ARQ worker;
this file stays one process type on purpose.

Requirements (Python 3.11+):
    fastapi>=0.135.0            # fastapi.sse.EventSourceResponse (native SSE)
    uvicorn[standard]>=0.33.0   # older ones miss SSE client disconnects
    pydantic>=2.7
    pydantic-settings>=2.3
    sqlalchemy[asyncio]>=2.0.30
    aiosqlite>=0.20             # zero-setup database
    asyncpg>=0.29               # DATABASE_URL=postgresql://...
    redis>=5.0.1                # REDIS_URL=redis://...
    structlog>=24.1
    prometheus-client>=0.20
    pyjwt>=2.10
    claude-agent-sdk>=0.2       # optional: only imported when AGENT_RUNNER=claude

Run:
    python single_api.py token alice          # prints a bearer token for user "alice"
    python single_api.py serve --port 8000    # or: uvicorn single_api:app
    curl -H "Authorization: Bearer $TOKEN" -H 'content-type: application/json' \
         -d '{"prompt": "hello there"}' localhost:8000/agents/run

Production: set ENVIRONMENT=production, JWT_SECRET (32+ bytes), DATABASE_URL, REDIS_URL;
for several workers set PROMETHEUS_MULTIPROC_DIR to an empty directory so /metrics sums
all workers. Every setting is a field of `Settings` below (environment variable = field
name in upper case, or a `.env` file).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
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
from http import HTTPStatus
from pathlib import Path
from typing import Annotated, Any, Literal, Protocol, overload

import jwt
import structlog
from fastapi import (
    APIRouter,
    Depends,
    FastAPI,
    Query,
    Request,
    WebSocket,
    WebSocketDisconnect,
    status,
)
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
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
from pydantic import BaseModel, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from redis.asyncio import Redis
from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
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
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.schema import CreateIndex, CreateTable
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# --------------------------------------------------------------------------- settings


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    app_name: str = "forge-agent-api"
    environment: Literal["development", "production"] = "development"
    log_level: str = "INFO"

    # Unset means zero setup: a SQLite file and an in-process rate limiter.
    database_url: str | None = None
    sqlite_path: Path = Path("forge_app.db")
    db_pool_size: int = 10
    redis_url: str | None = None
    # Every Redis key starts with this, so several apps (or test runs) share one Redis.
    redis_prefix: str = "forge:"

    jwt_secret: SecretStr | None = None
    # Pinned: the token header never chooses the algorithm (no `none`, no RS/HS swap).
    jwt_algorithm: Literal["HS256", "HS384", "HS512"] = "HS256"
    jwt_audience: str = "forge-agent-api"
    jwt_issuer: str | None = None
    jwt_leeway_seconds: float = 10.0
    dev_secret_file: Path = Path(".forge-dev-secret")

    rate_limit_requests: int = Field(default=60, ge=1)
    rate_limit_window_seconds: int = Field(default=60, ge=1)
    cors_origins: list[str] = []

    agent_runner: Literal["fake", "claude"] = "fake"
    agent_model: str = "claude-sonnet-5"
    agent_api_key: SecretStr | None = None
    agent_base_url: str | None = None
    agent_timeout_seconds: float = Field(default=300.0, gt=0)
    agent_max_turns: int = Field(default=15, ge=1)
    agent_max_concurrent_jobs: int = Field(default=8, ge=1)
    # Tools the Claude runner may use; an API server should not get Bash by default.
    claude_allowed_tools: list[str] = ["Read", "Grep", "Glob"]
    claude_workdir: Path | None = None
    fake_agent_delay_seconds: float = Field(default=0.02, ge=0)
    fake_agent_fail: bool = False

    sse_heartbeat_seconds: float = Field(default=15.0, gt=0)
    ws_auth_timeout_seconds: float = Field(default=10.0, gt=0)
    # How often a job saves progress, renews its lease and reads its cancel flag.
    job_poll_seconds: float = Field(default=0.5, gt=0)
    # A queued/running job whose lease is older than this belongs to a dead worker.
    job_stale_seconds: float = Field(default=30.0, gt=0)

    @model_validator(mode="after")
    def _production_needs_real_secrets(self) -> Settings:
        if self.environment == "production":
            secret = self.jwt_secret.get_secret_value() if self.jwt_secret else ""
            if len(secret.encode()) < 32:
                raise ValueError(
                    "JWT_SECRET of at least 32 bytes is required in production"
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


def _request_id(conn: HTTPConnection) -> str | None:
    return conn.scope.get("state", {}).get("request_id")


async def api_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return JSONResponse(
        error_body(exc.code, exc.message, _request_id(request)),
        status_code=exc.status_code,
        headers=exc.headers,
    )


async def http_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    code = re.sub(r"\W+", "_", _status_phrase(exc.status_code).lower()).strip("_")
    message = (
        exc.detail if isinstance(exc.detail, str) else _status_phrase(exc.status_code)
    )
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
            "loc": list(err.get("loc", ())),
            "msg": err.get("msg"),
            "type": err.get("type"),
        }
        for err in exc.errors()
    ]
    return JSONResponse(
        error_body(
            "validation_error",
            "request is invalid",
            _request_id(request),
            details=details,
        ),
        status_code=422,
    )


def _status_phrase(code: int) -> str:
    try:
        return HTTPStatus(code).phrase
    except ValueError:
        return "error"


# --------------------------------------------------------------------------- middleware

_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,128}$")


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
    """Deterministic stand-in for an LLM: echoes the prompt word by word.

    One word per `delay` seconds, then a `word_count` tool call and its result, then a
    usage chunk (input tokens = prompt words, output tokens = words emitted). With
    `fail=True` it reports an error halfway through.
    """

    name = "fake"

    def __init__(self, model: str, delay: float, fail: bool) -> None:
        self.model = model
        self.delay = delay
        self.fail = fail

    async def stream(self, request: AgentRequest) -> AsyncIterator[AgentChunk]:
        words = request.prompt.split()
        half = len(words) // 2
        emitted = 0
        for index, word in enumerate(words):
            if index == half:
                if self.fail:
                    yield AgentChunk(
                        "error", text="the fake agent failed as configured"
                    )
                    return
                call = {
                    "id": "call_1",
                    "name": "word_count",
                    "arguments": {"words": half},
                }
                yield AgentChunk("tool_call", data=call)
                yield AgentChunk(
                    "tool_result", data={"id": "call_1", "output": len(words)}
                )
            await asyncio.sleep(self.delay)
            yield AgentChunk("text", text=word if index == 0 else f" {word}")
            emitted += 1
        model = request.model or self.model
        yield AgentChunk(
            "usage",
            usage=Usage(model=model, input_tokens=len(words), output_tokens=emitted),
        )


class ClaudeRunner:
    """Claude Agent SDK runner (`pip install claude-agent-sdk`), imported lazily.

    The SDK drives the Claude Code CLI bundled in its wheel; partial messages give
    token-level text, and the result message gives usage per model.
    """

    name = "claude"

    def __init__(self, settings: Settings) -> None:
        import claude_agent_sdk  # noqa: F401  (fail at start-up, not on the first run)

        self.settings = settings

    async def stream(self, request: AgentRequest) -> AsyncIterator[AgentChunk]:
        from claude_agent_sdk import (
            AssistantMessage,
            ClaudeAgentOptions,
            ResultMessage,
            StreamEvent,
            ToolResultBlock,
            ToolUseBlock,
            UserMessage,
            query,
        )

        env: dict[str, str] = {}
        if self.settings.agent_api_key is not None:
            env["ANTHROPIC_API_KEY"] = self.settings.agent_api_key.get_secret_value()
        if self.settings.agent_base_url:
            env["ANTHROPIC_BASE_URL"] = self.settings.agent_base_url
        options = ClaudeAgentOptions(
            model=request.model or self.settings.agent_model,
            max_turns=self.settings.agent_max_turns,
            tools=self.settings.claude_allowed_tools,
            allowed_tools=self.settings.claude_allowed_tools,
            permission_mode="dontAsk",
            include_partial_messages=True,
            cwd=self.settings.claude_workdir,
            env=env,
        )
        messages = query(prompt=request.prompt, options=options)
        try:
            async for message in messages:
                if isinstance(message, StreamEvent):
                    delta = message.event.get("delta", {})
                    if (
                        message.event.get("type") == "content_block_delta"
                        and delta.get("type") == "text_delta"
                    ):
                        yield AgentChunk("text", text=delta.get("text", ""))
                elif isinstance(message, AssistantMessage):
                    for block in message.content:
                        if isinstance(block, ToolUseBlock):
                            yield AgentChunk(
                                "tool_call",
                                data={
                                    "id": block.id,
                                    "name": block.name,
                                    "arguments": block.input,
                                },
                            )
                elif isinstance(message, UserMessage) and isinstance(
                    message.content, list
                ):
                    for block in message.content:
                        if isinstance(block, ToolResultBlock):
                            yield AgentChunk(
                                "tool_result",
                                data={"id": block.tool_use_id, "output": block.content},
                            )
                elif isinstance(message, ResultMessage):
                    for model, figures in (message.model_usage or {}).items():
                        yield AgentChunk(
                            "usage",
                            usage=Usage(
                                model=model,
                                input_tokens=figures.get("inputTokens", 0),
                                output_tokens=figures.get("outputTokens", 0),
                                cache_read_tokens=figures.get(
                                    "cacheReadInputTokens", 0
                                ),
                                cache_write_tokens=figures.get(
                                    "cacheCreationInputTokens", 0
                                ),
                                cost_usd=figures.get("costUSD"),
                            ),
                        )
                    if message.is_error:
                        # The SDK's error text may carry paths: log it, return a code.
                        log.warning(
                            "agent.sdk_error",
                            subtype=message.subtype,
                            errors=message.errors,
                        )
                        yield AgentChunk(
                            "error", text=f"agent run ended: {message.subtype}"
                        )
        finally:
            # Closing the generator stops the CLI subprocess (cancellation, timeouts).
            await messages.aclose()  # type: ignore[attr-defined]


def build_runner(settings: Settings) -> AgentRunner:
    if settings.agent_runner == "claude":
        return ClaudeRunner(settings)
    return FakeRunner(
        settings.agent_model,
        settings.fake_agent_delay_seconds,
        settings.fake_agent_fail,
    )


# --------------------------------------------------------------------------- schemas

JobStatus = Literal["queued", "running", "completed", "failed", "cancelled"]
ACTIVE: tuple[JobStatus, ...] = ("queued", "running")


class RunRequest(BaseModel):
    prompt: str = Field(min_length=1, max_length=50_000)
    model: str | None = Field(default=None, max_length=128)
    # Capped by AGENT_TIMEOUT_SECONDS; the lower of the two wins.
    timeout_seconds: float | None = Field(default=None, gt=0, le=3600)
    session_id: str | None = Field(default=None, max_length=128)
    metadata: dict[str, str] = Field(default_factory=dict, max_length=32)


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


class JobOut(BaseModel):
    job_id: str
    status: JobStatus
    progress: float = Field(ge=0, le=1)
    steps: int
    model: str
    result: str | None = None
    error: JobError | None = None
    usage: list[UsageOut] = []
    cancel_requested: bool = False
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None


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
    Column("id", String(32), primary_key=True),
    Column("owner", String(255), nullable=False),
    Column("status", String(16), nullable=False),
    Column("prompt", Text, nullable=False),
    Column("model", String(128), nullable=False),
    Column("timeout_seconds", Float, nullable=False),
    Column("progress", Float, nullable=False, default=0.0),
    Column("steps", Integer, nullable=False, default=0),
    Column("result", Text),
    Column("error_code", String(64)),
    Column("error_message", Text),
    Column("usage", JSON, nullable=False, default=list),
    Column("cancel_requested", Boolean, nullable=False, default=False),
    Column("worker", String(255)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("started_at", DateTime(timezone=True)),
    Column("finished_at", DateTime(timezone=True)),
    Column("heartbeat_at", DateTime(timezone=True), nullable=False),
    Index("ix_agent_jobs_status_heartbeat", "status", "heartbeat_at"),
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
        engine = create_async_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _: Any) -> None:
            cursor = dbapi_connection.cursor()
            # WAL lets readers (status polls) run while a job writes its progress.
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine
    return create_async_engine(
        url, pool_size=settings.db_pool_size, max_overflow=5, pool_pre_ping=True
    )


async def create_schema(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            await conn.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SCHEMA_LOCK_KEY}
            )
        await conn.execute(CreateTable(agent_jobs, if_not_exists=True))
        for index in agent_jobs.indexes:
            await conn.execute(CreateIndex(index, if_not_exists=True))


class JobStore:
    """Job rows; every state change is a conditional UPDATE, so workers never race."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def create(self, owner: str, prompt: str, model: str, limit_s: float) -> str:
        job_id = uuid.uuid4().hex
        now = utcnow()
        async with self.engine.begin() as conn:
            await conn.execute(
                insert(agent_jobs).values(
                    id=job_id,
                    owner=owner,
                    status="queued",
                    prompt=prompt,
                    model=model,
                    timeout_seconds=limit_s,
                    usage=[],
                    created_at=now,
                    heartbeat_at=now,
                )
            )
        return job_id

    async def get(self, job_id: str, owner: str) -> JobOut | None:
        async with self.engine.connect() as conn:
            row = (
                (
                    await conn.execute(
                        select(agent_jobs).where(
                            agent_jobs.c.id == job_id, agent_jobs.c.owner == owner
                        )
                    )
                )
                .mappings()
                .first()
            )
        if row is None:
            return None
        error = None
        if row["error_code"]:
            error = JobError(code=row["error_code"], message=row["error_message"] or "")
        return JobOut(
            job_id=row["id"],
            status=row["status"],
            progress=row["progress"],
            steps=row["steps"],
            model=row["model"],
            result=row["result"],
            error=error,
            usage=[UsageOut(**item) for item in row["usage"] or []],
            cancel_requested=row["cancel_requested"],
            created_at=_aware(row["created_at"]),
            started_at=_aware(row["started_at"]),
            finished_at=_aware(row["finished_at"]),
        )

    async def mark_running(self, job_id: str, worker: str) -> bool:
        now = utcnow()
        async with self.engine.begin() as conn:
            result = await conn.execute(
                update(agent_jobs)
                .where(agent_jobs.c.id == job_id, agent_jobs.c.status == "queued")
                .values(
                    status="running", worker=worker, started_at=now, heartbeat_at=now
                )
            )
        return result.rowcount == 1

    async def touch(self, job_id: str, progress: float, steps: int) -> bool:
        """Save progress and renew the lease; returns whether a cancel was requested."""
        async with self.engine.begin() as conn:
            result = await conn.execute(
                update(agent_jobs)
                .where(agent_jobs.c.id == job_id, agent_jobs.c.status.in_(ACTIVE))
                .values(heartbeat_at=utcnow(), progress=progress, steps=steps)
                .returning(agent_jobs.c.cancel_requested)
            )
            flag = result.scalar_one_or_none()
        return bool(flag)

    async def finish(
        self,
        job_id: str,
        status_: JobStatus,
        *,
        steps: int,
        usage: list[Usage],
        result: str | None = None,
        error: tuple[str, str] | None = None,
    ) -> None:
        values: dict[str, Any] = {
            "status": status_,
            "finished_at": utcnow(),
            "steps": steps,
            "usage": [asdict(item) for item in usage],
            "result": result,
        }
        if status_ == "completed":
            values["progress"] = 1.0
        if error is not None:
            values["error_code"], values["error_message"] = error
        async with self.engine.begin() as conn:
            await conn.execute(
                update(agent_jobs)
                .where(agent_jobs.c.id == job_id, agent_jobs.c.status.in_(ACTIVE))
                .values(**values)
            )

    async def request_cancel(self, job_id: str, owner: str) -> None:
        """Queued jobs are cancelled on the spot; running ones get the flag their
        worker polls."""
        mine = (agent_jobs.c.id == job_id, agent_jobs.c.owner == owner)
        async with self.engine.begin() as conn:
            await conn.execute(
                update(agent_jobs)
                .where(*mine, agent_jobs.c.status == "queued")
                .values(
                    status="cancelled",
                    cancel_requested=True,
                    finished_at=utcnow(),
                    error_code="cancelled",
                    error_message="cancelled by the client",
                )
            )
            await conn.execute(
                update(agent_jobs)
                .where(*mine, agent_jobs.c.status == "running")
                .values(cancel_requested=True)
            )

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
                    error_code="worker_lost",
                    error_message="the worker running this job stopped",
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


# --------------------------------------------------------------------------- services


@dataclass
class Services:
    settings: Settings
    engine: AsyncEngine
    redis: Redis | None
    limiter: RateLimiter
    runner: AgentRunner
    jobs: JobManager


def effective_timeout(settings: Settings, requested: float | None) -> float:
    if requested is None:
        return settings.agent_timeout_seconds
    return min(requested, settings.agent_timeout_seconds)


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


@dataclass
class _Progress:
    steps: int = 0
    turns: int = 0
    usage: list[Usage] = field(default_factory=list)


class JobManager:
    """In-process job runner (asyncio tasks) with its state in the database.

    Each job has a watcher that, every JOB_POLL_SECONDS, saves progress, renews the
    job's lease and reads its cancel flag: so DELETE works whichever worker served it,
    and a lease that stops moving tells the other workers this one died.
    """

    def __init__(
        self, store: JobStore, runner: AgentRunner, settings: Settings
    ) -> None:
        self.store = store
        self.runner = runner
        self.settings = settings
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}"
        self.slots = asyncio.Semaphore(settings.agent_max_concurrent_jobs)
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self.cancelled_by_client: set[str] = set()
        self.closing = False

    async def submit(self, owner: str, body: RunRequest) -> JobOut:
        """Store the job, then start it: the answer is the job as queued."""
        model = body.model or self.settings.agent_model
        timeout = effective_timeout(self.settings, body.timeout_seconds)
        job_id = await self.store.create(owner, body.prompt, model, timeout)
        queued = await self.store.get(job_id, owner)
        assert queued is not None
        request = AgentRequest(
            prompt=body.prompt,
            session_id=body.session_id,
            model=body.model,
            metadata=body.metadata,
        )
        task = asyncio.create_task(self._execute(job_id, request, timeout))
        self.tasks[job_id] = task
        task.add_done_callback(lambda _: self.tasks.pop(job_id, None))
        return queued

    async def cancel(self, job_id: str, owner: str) -> None:
        await self.store.request_cancel(job_id, owner)
        task = self.tasks.get(job_id)
        if task is not None:  # ours: stop it now instead of at the next poll
            self.cancelled_by_client.add(job_id)
            task.cancel()

    async def _watch(
        self, job_id: str, progress: _Progress, run: asyncio.Task[Any]
    ) -> None:
        max_turns = self.settings.agent_max_turns
        while True:
            await asyncio.sleep(self.settings.job_poll_seconds)
            fraction = min(0.99, progress.turns / max_turns)
            try:
                if await self.store.touch(job_id, fraction, progress.steps):
                    self.cancelled_by_client.add(job_id)
                    run.cancel()
                    return
            except Exception:
                log.exception("job.watch_failed", job_id=job_id)

    async def _execute(
        self, job_id: str, request: AgentRequest, limit_s: float
    ) -> None:
        progress = _Progress()
        this_task = asyncio.current_task()
        assert this_task is not None
        watcher = asyncio.create_task(self._watch(job_id, progress, this_task))

        async def track(chunk: AgentChunk) -> None:
            progress.steps += 1
            if chunk.type == "tool_result":
                progress.turns += 1
            elif chunk.type == "usage" and chunk.usage is not None:
                progress.usage.append(chunk.usage)

        structlog.contextvars.bind_contextvars(job_id=job_id)
        final: tuple[JobStatus, str | None, tuple[str, str] | None]
        try:
            async with self.slots:
                if not await self.store.mark_running(job_id, self.worker_id):
                    return  # cancelled while queued
                log.info("job.started", worker=self.worker_id)
                JOBS_RUNNING.inc()
                try:
                    result = await run_agent(
                        self.runner,
                        request,
                        limit_s=limit_s,
                        mode="job",
                        on_chunk=track,
                    )
                finally:
                    JOBS_RUNNING.dec()
            final = ("completed", result.text, None)
        except TimeoutError:
            final = (
                "failed",
                None,
                ("agent_timeout", f"no result within {limit_s:g} s"),
            )
        except AgentRunError as exc:
            final = ("failed", None, ("agent_error", str(exc)))
        except asyncio.CancelledError:
            if job_id in self.cancelled_by_client and not self.closing:
                final = ("cancelled", None, ("cancelled", "cancelled by the client"))
            else:
                final = (
                    "failed",
                    None,
                    ("shutdown", "the server stopped during the run"),
                )
        except Exception:
            log.exception("job.crashed")
            final = ("failed", None, ("internal_error", "the agent run failed"))
        finally:
            watcher.cancel()
            self.cancelled_by_client.discard(job_id)
        status_, text_, error = final
        # Shielded: a second cancel (shutdown) must not lose the final state.
        await asyncio.shield(
            self.store.finish(
                job_id,
                status_,
                steps=progress.steps,
                usage=progress.usage,
                result=text_,
                error=error,
            )
        )
        log.info("job.finished", status=status_, error=error[0] if error else None)

    async def reap_stale(self) -> None:
        """Fail jobs whose worker died; runs at start-up and then periodically."""
        count = await self.store.fail_stale(
            timedelta(seconds=self.settings.job_stale_seconds)
        )
        if count:
            log.warning("jobs.reaped_stale", count=count)

    async def close(self) -> None:
        self.closing = True
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
    """PyJWT with the algorithm pinned and exp/aud/sub required.

    `algorithms=[...]` is the whole defence against `alg: none` and key confusion: the
    header is never trusted to pick the algorithm.
    """
    challenge = {"WWW-Authenticate": 'Bearer error="invalid_token"'}
    required = ["exp", "sub", "aud"] + (["iss"] if settings.jwt_issuer else [])
    try:
        claims = jwt.decode(
            token,
            settings.signing_key(),
            algorithms=[settings.jwt_algorithm],
            audience=settings.jwt_audience,
            issuer=settings.jwt_issuer,
            leeway=settings.jwt_leeway_seconds,
            options={"require": required},
        )
    except jwt.ExpiredSignatureError:
        raise ApiError(401, "token_expired", "token has expired", challenge) from None
    except jwt.InvalidTokenError:
        raise ApiError(401, "invalid_token", "token is invalid", challenge) from None
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject:
        raise ApiError(401, "invalid_token", "token is invalid", challenge)
    return Principal(subject=subject)


def issue_token(settings: Settings, subject: str, ttl_seconds: int = 3600) -> str:
    now = utcnow()
    claims: dict[str, Any] = {
        "sub": subject,
        "aud": settings.jwt_audience,
        "iat": now,
        "exp": now + timedelta(seconds=ttl_seconds),
    }
    if settings.jwt_issuer:
        claims["iss"] = settings.jwt_issuer
    return jwt.encode(claims, settings.signing_key(), algorithm=settings.jwt_algorithm)


_bearer = HTTPBearer(auto_error=False)


async def current_principal(
    services: ServicesDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """Auth is a dependency, not middleware: each route declares it (health and
    metrics stay public without a path allow-list that drifts), OpenAPI shows the
    scheme, and the principal arrives typed. Verifying is one HMAC: cheap per request.
    """
    if credentials is None:
        raise ApiError(
            401,
            "not_authenticated",
            "bearer token required",
            {"WWW-Authenticate": "Bearer"},
        )
    return verify_token(credentials.credentials, services.settings)


PrincipalDep = Annotated[Principal, Depends(current_principal)]


async def check_rate(services: Services, principal: Principal) -> RateDecision:
    try:
        return await services.limiter.hit(principal.subject)
    except Exception:
        # Fail open: a Redis outage must not take the API down; /health/ready reports
        # it so the load balancer drains this instance.
        log.exception("rate_limit.backend_unavailable")
        return RateDecision(True, 0)


async def rate_limited(services: ServicesDep, principal: PrincipalDep) -> Principal:
    """Per user, after auth, on the routes that start runs: runs cost money per user,
    and a verified subject cannot be spoofed the way a client IP behind a proxy can.
    Job status and cancel are not limited: polling is cheap, and a client must always
    be able to stop a run it pays for."""
    decision = await check_rate(services, principal)
    if not decision.allowed:
        RATE_LIMITED.inc()
        raise ApiError(
            429,
            "rate_limited",
            "too many requests",
            {"Retry-After": str(decision.retry_after)},
        )
    return principal


LimitedPrincipal = Annotated[Principal, Depends(rate_limited)]


# --------------------------------------------------------------------------- routes

health_router = APIRouter(tags=["health"])
agents_router = APIRouter(prefix="/agents", tags=["agents"])


@health_router.get("/health")
async def health() -> Health:
    """Liveness: the process answers; no dependency is checked."""
    return Health(status="ok")


@health_router.get("/health/ready", responses={503: {"model": Health}})
async def ready(services: ServicesDep) -> Response:
    """Readiness: database and Redis answer within two seconds each."""
    checks: dict[str, str] = {}
    try:
        async with asyncio.timeout(2):
            async with services.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:
        log.warning("ready.database_failed", error_type=type(exc).__name__)
        checks["database"] = "unavailable"
    if services.redis is not None:
        try:
            async with asyncio.timeout(2):
                await services.redis.ping()
            checks["redis"] = "ok"
        except Exception as exc:
            log.warning("ready.redis_failed", error_type=type(exc).__name__)
            checks["redis"] = "unavailable"
    ok = all(value == "ok" for value in checks.values())
    body = Health(status="ready" if ok else "unavailable", checks=checks)
    return JSONResponse(body.model_dump(), status_code=200 if ok else 503)


@health_router.get("/metrics", include_in_schema=False)
async def metrics() -> Response:
    # Public like the probes: expose it only on the internal network / scrape port.
    return Response(render_metrics(), media_type=CONTENT_TYPE_LATEST)


def _agent_request(body: RunRequest) -> AgentRequest:
    return AgentRequest(
        prompt=body.prompt,
        session_id=body.session_id,
        model=body.model,
        metadata=body.metadata,
    )


def _usage_out(usage: list[Usage]) -> list[UsageOut]:
    return [UsageOut(**asdict(item)) for item in usage]


@agents_router.post("/run")
async def run(
    body: RunRequest, services: ServicesDep, _: LimitedPrincipal
) -> RunResponse:
    """Run the agent and wait: 504 on timeout, 502 when the agent reports an error."""
    timeout = effective_timeout(services.settings, body.timeout_seconds)
    started = time.perf_counter()
    try:
        result = await run_agent(
            services.runner, _agent_request(body), limit_s=timeout, mode="sync"
        )
    except TimeoutError:
        raise ApiError(
            504, "agent_timeout", f"the agent gave no result within {timeout:g} s"
        ) from None
    except AgentRunError as exc:
        raise ApiError(502, "agent_error", str(exc)) from None
    return RunResponse(
        text=result.text,
        usage=_usage_out(result.usage),
        tool_calls=result.tool_calls,
        duration_seconds=round(time.perf_counter() - started, 3),
    )


@agents_router.post("/run/async", status_code=202)
async def run_async(
    body: RunRequest, services: ServicesDep, principal: LimitedPrincipal
) -> JobOut:
    """Start a background job; poll GET /agents/jobs/{id}."""
    return await services.jobs.submit(principal.subject, body)


@agents_router.get("/jobs/{job_id}")
async def get_job(
    job_id: str, services: ServicesDep, principal: PrincipalDep
) -> JobOut:
    job = await services.jobs.store.get(job_id, principal.subject)
    if job is None:  # someone else's job is "not found" too: ids are not disclosed
        raise ApiError(404, "job_not_found", "no such job")
    return job


@agents_router.delete(
    "/jobs/{job_id}", response_model=JobOut, responses={202: {"model": JobOut}}
)
async def cancel_job(
    job_id: str, services: ServicesDep, principal: PrincipalDep
) -> JobOut | Response:
    """Cancel a queued or running job: 200 once it is cancelled, 202 while the worker
    that runs it is still stopping it, 409 if it had already finished."""
    store = services.jobs.store
    job = await store.get(job_id, principal.subject)
    if job is None:
        raise ApiError(404, "job_not_found", "no such job")
    if job.status not in ACTIVE:
        raise ApiError(409, "job_finished", f"job already {job.status}")
    await services.jobs.cancel(job_id, principal.subject)
    deadline = time.monotonic() + 2 * services.settings.job_poll_seconds + 1
    while time.monotonic() < deadline:
        job = await store.get(job_id, principal.subject)
        assert job is not None
        if job.status not in ACTIVE:
            return job
        await asyncio.sleep(0.05)
    return JSONResponse(job.model_dump(mode="json"), status_code=202)


def _chunk_payload(chunk: AgentChunk) -> dict[str, Any]:
    if chunk.type == "text":
        return {"text": chunk.text}
    if chunk.type == "usage" and chunk.usage is not None:
        return asdict(chunk.usage)
    if chunk.type == "error":
        return {"code": "agent_error", "message": chunk.text}
    return chunk.data


_END = object()


@agents_router.get("/run/stream", response_class=EventSourceResponse)
async def run_stream(
    services: ServicesDep,
    _: LimitedPrincipal,
    prompt: Annotated[str, Query(min_length=1, max_length=50_000)],
    model: Annotated[str | None, Query(max_length=128)] = None,
    timeout_seconds: Annotated[float | None, Query(gt=0, le=3600)] = None,
) -> AsyncIterator[ServerSentEvent]:
    """Server-Sent Events: `text`, `tool_call`, `tool_result`, `usage`, then `done` or
    `error`. A `: heartbeat` comment goes out after SSE_HEARTBEAT_SECONDS of silence so
    proxies keep the connection. Runs are not resumable: clients close on `done`/`error`
    instead of reconnecting. Auth, validation and rate limiting happen before the stream
    starts, so they answer with normal JSON errors.
    """
    timeout = effective_timeout(services.settings, timeout_seconds)
    request = AgentRequest(prompt=prompt, model=model)
    queue: asyncio.Queue[AgentChunk | object] = asyncio.Queue(maxsize=64)
    outcome: dict[str, Any] = {}

    async def produce() -> None:
        started = time.perf_counter()
        try:
            result = await run_agent(
                services.runner,
                request,
                limit_s=timeout,
                mode="sse",
                on_chunk=queue.put,
            )
            outcome["done"] = {
                "usage": [asdict(item) for item in result.usage],
                "duration_seconds": round(time.perf_counter() - started, 3),
            }
        except TimeoutError:
            outcome["error"] = {
                "code": "agent_timeout",
                "message": f"the agent gave no result within {timeout:g} s",
            }
        except AgentRunError:
            pass  # its error chunk is already queued
        except Exception:
            log.exception("sse.agent_failed")
            outcome["error"] = {
                "code": "internal_error",
                "message": "the agent run failed",
            }
        finally:
            await queue.put(_END)

    producer = asyncio.create_task(produce())
    STREAMS_OPEN.labels("sse").inc()
    event_id = 0
    finished = False
    try:
        while True:
            try:
                async with asyncio.timeout(services.settings.sse_heartbeat_seconds):
                    item = await queue.get()
            except TimeoutError:
                yield ServerSentEvent(comment="heartbeat")
                continue
            event_id += 1
            if item is _END:
                finished = True
                if "done" in outcome:
                    yield ServerSentEvent(
                        event="done", data=outcome["done"], id=str(event_id)
                    )
                elif "error" in outcome:
                    yield ServerSentEvent(
                        event="error", data=outcome["error"], id=str(event_id)
                    )
                return
            assert isinstance(item, AgentChunk)
            yield ServerSentEvent(
                event=item.type, data=_chunk_payload(item), id=str(event_id)
            )
    finally:
        STREAMS_OPEN.labels("sse").dec()
        if not finished:
            log.info("sse.client_disconnected")
        producer.cancel()
        with suppress(asyncio.CancelledError):
            await producer


async def _ws_authenticate(websocket: WebSocket, settings: Settings) -> Principal:
    """`Authorization: Bearer` on the handshake (non-browser clients), else a first
    message `{"type": "auth", "token": ...}` (browsers cannot set headers; a token in
    the query string would end up in access logs)."""
    header = websocket.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return verify_token(header[7:].strip(), settings)
    try:
        async with asyncio.timeout(settings.ws_auth_timeout_seconds):
            raw = await websocket.receive_text()
    except TimeoutError:
        raise ApiError(401, "not_authenticated", "no auth message in time") from None
    try:
        message = json.loads(raw)
    except ValueError:
        message = None
    if not isinstance(message, dict) or message.get("type") != "auth":
        raise ApiError(401, "not_authenticated", "first message must be auth")
    return verify_token(str(message.get("token", "")), settings)


@agents_router.websocket("/ws")
async def agent_ws(websocket: WebSocket, services: ServicesDep) -> None:
    """Messages in: auth, ping, run {prompt, model?, timeout_seconds?, id?}, cancel.
    Out: ready, pong, and per run its chunks then done/error/cancelled, each with
    `run_id` (the run message's `id`, or a generated one).
    Close codes: 1008 auth failed or timed out, 1011 server error; the client closes
    normally (1000) when it is done."""
    await websocket.accept()
    try:
        principal = await _ws_authenticate(websocket, services.settings)
    except ApiError as exc:
        await websocket.close(code=status.WS_1008_POLICY_VIOLATION, reason=exc.message)
        return
    except WebSocketDisconnect:
        return
    send_lock = asyncio.Lock()
    current: asyncio.Task[None] | None = None
    current_id: str | None = None
    STREAMS_OPEN.labels("ws").inc()

    async def send(message: dict[str, Any]) -> None:
        async with send_lock:  # pongs and chunks come from different tasks
            await websocket.send_json(message)

    async def run_one(body: RunRequest, run_id: str) -> None:
        timeout = effective_timeout(services.settings, body.timeout_seconds)

        async def forward(chunk: AgentChunk) -> None:
            await send({"type": chunk.type, "run_id": run_id, **_chunk_payload(chunk)})

        started = time.perf_counter()
        try:
            result = await run_agent(
                services.runner,
                _agent_request(body),
                limit_s=timeout,
                mode="ws",
                on_chunk=forward,
            )
            await send(
                {
                    "type": "done",
                    "run_id": run_id,
                    "usage": [asdict(item) for item in result.usage],
                    "duration_seconds": round(time.perf_counter() - started, 3),
                }
            )
        except TimeoutError:
            await send(
                {
                    "type": "error",
                    "run_id": run_id,
                    "code": "agent_timeout",
                    "message": f"the agent gave no result within {timeout:g} s",
                }
            )
        except AgentRunError:
            pass  # the error chunk was forwarded
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("ws.run_failed")
            await send(
                {
                    "type": "error",
                    "run_id": run_id,
                    "code": "internal_error",
                    "message": "failed",
                }
            )

    try:
        await send({"type": "ready", "subject": principal.subject})
        while True:
            raw = await websocket.receive_text()
            try:
                message = json.loads(raw)
                kind = message["type"]
            except (ValueError, KeyError, TypeError):
                await send(
                    {
                        "type": "error",
                        "code": "bad_message",
                        "message": "need JSON with type",
                    }
                )
                continue
            if kind == "ping":
                await send({"type": "pong"})
            elif kind == "cancel":
                if current is not None and not current.done():
                    current.cancel()
                    with suppress(asyncio.CancelledError):
                        await current
                    await send({"type": "cancelled", "run_id": current_id})
            elif kind == "run":
                if current is not None and not current.done():
                    await send(
                        {"type": "error", "code": "busy", "message": "a run is active"}
                    )
                    continue
                try:
                    body = RunRequest.model_validate(message)
                except ValidationError:
                    await send(
                        {
                            "type": "error",
                            "code": "validation_error",
                            "message": "bad run",
                        }
                    )
                    continue
                decision = await check_rate(services, principal)
                if not decision.allowed:
                    RATE_LIMITED.inc()
                    await send(
                        {
                            "type": "error",
                            "code": "rate_limited",
                            "retry_after": decision.retry_after,
                        }
                    )
                    continue
                current_id = str(message.get("id") or uuid.uuid4().hex)
                current = asyncio.create_task(run_one(body, current_id))
            else:
                await send({"type": "error", "code": "unknown_type", "message": kind})
    except WebSocketDisconnect:
        log.info("ws.client_disconnected")
    except Exception:
        log.exception("ws.failed")
        with suppress(Exception):
            await websocket.close(code=status.WS_1011_INTERNAL_ERROR)
    finally:
        STREAMS_OPEN.labels("ws").dec()
        if current is not None and not current.done():
            current.cancel()
            with suppress(asyncio.CancelledError):
                await current


# --------------------------------------------------------------------------- app


def _describe_modes(settings: Settings, limiter: RateLimiter) -> dict[str, Any]:
    database = "sqlite" if settings.database_url is None else "postgresql"
    return {
        "zero_setup": settings.zero_setup,
        "database": database,
        "database_file": str(settings.sqlite_path.resolve())
        if database == "sqlite"
        else None,
        "rate_limiter": limiter.backend,
        "jobs": "in-process asyncio tasks, state in the database",
        "agent_runner": settings.agent_runner,
        "auth_secret": "JWT_SECRET"
        if settings.jwt_secret
        else str(settings.dev_secret_file),
    }


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    configure_logging(settings.log_level)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[dict[str, Any]]:
        engine = create_engine_for(settings)
        await create_schema(engine)
        redis: Redis | None = None
        limiter: RateLimiter
        if settings.redis_url:
            redis = Redis.from_url(
                settings.redis_url, socket_connect_timeout=2, socket_timeout=2
            )
            limiter = RedisRateLimiter(
                redis,
                settings.redis_prefix,
                settings.rate_limit_requests,
                settings.rate_limit_window_seconds,
            )
        else:
            limiter = MemoryRateLimiter(
                settings.rate_limit_requests, settings.rate_limit_window_seconds
            )
        runner = build_runner(settings)
        jobs = JobManager(JobStore(engine), runner, settings)
        await jobs.reap_stale()
        services = Services(settings, engine, redis, limiter, runner, jobs)
        modes = _describe_modes(settings, limiter)
        if settings.zero_setup:
            log.warning(
                "startup.zero_setup",
                message=(
                    f"zero-setup mode: SQLite file {modes['database_file']},"
                    " in-process rate limiter (per worker), in-process job runner;"
                    " set DATABASE_URL and REDIS_URL for production"
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
            allow_methods=["*"],
            allow_headers=["Authorization", "Content-Type", "X-Request-ID"],
            expose_headers=["X-Request-ID", "Retry-After"],
        )
    app.add_middleware(RequestContextMiddleware)  # added last = outermost
    app.include_router(health_router)
    app.include_router(agents_router)
    return app


app = create_app()


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
        f"{module.stem}:app",
        app_dir=str(module.parent),
        host=getattr(args, "host", "127.0.0.1"),
        port=getattr(args, "port", 8000),
        workers=getattr(args, "workers", 1),
        log_config=None,  # our JSON logging is configured by create_app
    )


if __name__ == "__main__":
    main()
