"""Edge gateway for a Tier 2 system, in one file: ``uvicorn microservice_gateway:app``.

Per request, in this order: request id (``X-Request-ID`` in, out and upstream), JWT
check at the edge, routing by the first path segment, the service's circuit breaker,
a free connection to the service (a bounded wait, else 503 ``overloaded``), then a
streamed proxy: request and response bodies are relayed as they arrive (SSE passes
through unbuffered, a 10 MB upload holds one chunk at a time). The upstream deadline
covers the service's time only: waiting for a slow client's body is the client's
time (408 after ``CLIENT_BODY_TIMEOUT_SECONDS`` of silence), never a breaker failure.
One client request counts once for its breaker, whatever its retries. Only connect
failures are retried (the service never saw the request), never streams nor services
configured with ``retry_attempts: 0`` (paid agent runs).
``/health`` (liveness), ``/health/ready`` (every service's breaker and probe) and
``/metrics`` (Prometheus) are served by the gateway itself, without a token.

Configuration comes from the environment (or ``.env``)::

    SERVICES='{"users": {"url": "http://user-service:8000", "required": true},
               "agents": {"url": "http://agent-service:8000", "timeout_seconds": 30,
                          "retry_attempts": 0, "stream_paths": ["/agents/run/stream"]},
               "notify": "http://notification-service:8000"}'
    JWKS_URL=http://user-service:8000/.well-known/jwks.json  # the token issuer's keys
    JWT_AUDIENCE=forge-api
    JWT_ISSUER=forge-api
    PUBLIC_PATHS='["/users/auth"]'   # gateway paths that need no token (login, sign-up)

Run it with its own HTTP protocol class, which bounds every request head in size
(h11: 16 KiB, else 400) and in time (``HEADER_TIMEOUT_SECONDS``, slowloris)::

    uvicorn microservice_gateway:app --host 0.0.0.0 --port 8000 \
        --http microservice_gateway:GatewayHTTPProtocol \
        --h11-max-incomplete-event-size 16384 --timeout-keep-alive 5 --no-proxy-headers

``--no-proxy-headers`` when clients connect directly; behind a load balancer use
``--forwarded-allow-ips=<its addresses>`` instead, so that forwarded-for headers from
clients are never trusted.

``/users/...`` goes to the ``users`` service with the path unchanged (``strip_prefix``
removes ``/users``). WebSocket upgrades are not proxied: route them to the service
directly (ingress rule) or add a WebSocket relay. Breakers live in each process: with
``--workers N`` every worker learns of an outage on its own (N x the threshold).

Requirements (minimum versions):
    fastapi[standard]>=0.164  # FastAPI(max_body_size=...)
    uvicorn[standard]>=0.33   # older ones miss client disconnects of streams
    h11>=0.16                 # uvicorn's; GatewayHTTPProtocol reads its states
    httpx>=0.28
    pydantic>=2.9
    pydantic-settings>=2.6
    pyjwt[crypto]>=2.15       # PyJWKClient's refetch cooldown
    prometheus-client>=0.21
"""

import asyncio
import enum
import functools
import logging
import math
import random
import re
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any, Literal
from urllib.parse import unquote

import h11
import httpx
import jwt
from fastapi import Depends, FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client import Enum as EnumMetric
from pydantic import (
    AnyHttpUrl,
    BaseModel,
    ConfigDict,
    Field,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

try:
    import sniffio  # noqa: F401
except ImportError:
    # httpcore asks for sniffio on every lock, event and pool operation and uses
    # asyncio without it (anyio >= 4.11 no longer installs it). Python does not
    # remember a failed import: each ask searched sys.path again, four per proxied
    # request. None in sys.modules makes the miss immediate.
    sys.modules["sniffio"] = None  # type: ignore[assignment]

log = logging.getLogger("gateway")

PROXY_METHODS = ["GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE"]
# The only failures retried: the service never received the request, so even a POST
# or a paid run is safe to send again. A read timeout or a 5xx may have done the work.
RETRYABLE_ERRORS = (httpx.ConnectError, httpx.ConnectTimeout)
# Hop-by-hop (RFC 9110 7.6.1, RFC 2616 13.5.1): they describe one connection only.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
RESERVED_NAMES = frozenset({"health", "metrics", "docs", "redoc", "openapi.json"})
SERVICE_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
# Set only by the gateway; a client-sent value is dropped (no impersonation).
SUBJECT_HEADER = "x-auth-subject"
# Client values of these are dropped: the gateway sets its own, or services behind it
# (and their frameworks) would take them for the edge's word on who and where.
DROPPED_REQUEST_HEADERS = frozenset(
    {
        "host",
        "x-request-id",
        "forwarded",
        "x-real-ip",
        "x-client-ip",
        "true-client-ip",
        "x-original-url",
        "x-original-uri",
        "x-rewrite-url",
    }
)
# Whole families: x-forwarded-for/-host/-proto/-prefix/-port, x-auth-subject/-roles
DROPPED_REQUEST_PREFIXES = ("x-forwarded-", "x-auth-")
# Dot segments, also disguised: backslashes (some servers read them as '/'), Tomcat's
# ';' parameters ("..;"), and percent-encoding that a service may decode once more.
PATH_SEGMENT_SEPARATOR = re.compile(r"[/\\]")


# ----------------------------------------------------------------------- settings


class ServiceSpec(BaseModel):
    """One upstream; in `SERVICES` a bare URL string is short for `{"url": ...}`."""

    model_config = ConfigDict(extra="forbid")

    url: AnyHttpUrl
    # Deadline for the response headers (connect, send, wait), not counting the time
    # spent waiting for the client's body; None: the gateway's default.
    timeout_seconds: float | None = Field(default=None, gt=0)
    # Extra attempts after a connect failure; None: RETRY_ATTEMPTS. 0 for services
    # whose calls cost money (agent runs): no second chance, however safe it looks.
    retry_attempts: int | None = Field(default=None, ge=0)
    # Gateway path prefixes of streaming routes (SSE): they use the streaming limit
    # and are never retried, like any request that accepts text/event-stream.
    stream_paths: list[str] = []
    # Required services make /health/ready answer 503 while they are down. Keep the
    # list short: an unready gateway leaves rotation for every route, not just this one.
    required: bool = False
    strip_prefix: bool = False
    health_path: str = "/health/ready"

    @model_validator(mode="before")
    @classmethod
    def _url_shorthand(cls, data: Any) -> Any:
        return {"url": data} if isinstance(data, str) else data


class GatewaySettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    services: dict[str, ServiceSpec]
    # Tokens are RS256, signed by the issuer (user-service) alone: the gateway holds
    # only its public keys, fetched from JWKS_URL, cached, and refetched for an
    # unknown `kid` at most once per JWKS_REFETCH_SECONDS (no flood of the issuer).
    jwks_url: str = Field(pattern=r"^https?://")
    jwks_cache_seconds: float = Field(default=300.0, gt=0)
    jwks_refetch_seconds: float = Field(default=30.0, ge=0)
    jwks_timeout_seconds: float = Field(default=5.0, gt=0)
    jwt_audience: str
    jwt_issuer: str
    jwt_leeway_seconds: int = Field(default=0, ge=0)
    public_paths: list[str] = []
    cors_origins: list[str] = []

    upstream_timeout_seconds: float = Field(default=10.0, gt=0)
    # Longest silence allowed between two chunks of a streamed body (SSE services should
    # send a comment line as heartbeat more often than this).
    stream_idle_timeout_seconds: float = Field(default=120.0, gt=0)
    health_timeout_seconds: float = Field(default=2.0, gt=0)
    # Longest silence allowed between two chunks of a client's request body: 408 after.
    client_body_timeout_seconds: float = Field(default=10.0, gt=0)
    # Concurrent requests, and separately concurrent streams, per service; a request
    # that finds no free slot within queue_timeout_seconds is answered 503 overloaded.
    max_connections_per_service: int = Field(default=100, ge=1)
    max_streams_per_service: int = Field(default=100, ge=1)
    queue_timeout_seconds: float = Field(default=0.5, ge=0)
    max_body_bytes: int = Field(default=10 * 1024 * 1024, ge=0)

    breaker_failure_threshold: int = Field(default=5, ge=1)
    breaker_open_seconds: float = Field(default=30.0, gt=0)
    breaker_half_open_max_calls: int = Field(default=1, ge=1)

    retry_attempts: int = Field(default=2, ge=0)  # after connect failures only
    retry_backoff_seconds: float = Field(default=0.1, ge=0)
    retry_backoff_max_seconds: float = Field(default=2.0, ge=0)

    @model_validator(mode="after")
    def _check(self) -> "GatewaySettings":
        if not self.services:
            raise ValueError("SERVICES is empty: map at least one path prefix to a URL")
        for name in self.services:
            if not SERVICE_NAME.match(name) or name in RESERVED_NAMES:
                raise ValueError(
                    f"SERVICES: {name!r} is not a usable path prefix (lowercase "
                    f"letters, digits, '-', '_'; not one of {sorted(RESERVED_NAMES)})"
                )
        return self


# ------------------------------------------------------------------- circuit breaker


class BreakerState(enum.StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitOpenError(Exception):
    def __init__(self, service: str, state: BreakerState, retry_after: float) -> None:
        super().__init__(f"circuit for {service} is {state}")
        self.service = service
        self.state = state
        self.retry_after = max(retry_after, 0.0)


# --8<-- [start:breaker]
class CircuitBreaker:
    """Consecutive-failure breaker for one upstream: closed, open, half-open, closed.

    Calls report through the `Permit` that `acquire()` returns. A permit taken before
    the breaker last changed state is stale and its outcome is ignored: a slow success
    from before an outage cannot close an open breaker, a late failure cannot reopen a
    fresh one. One event loop owns it (no awaits inside, so no lock is needed).
    """

    def __init__(
        self,
        name: str,
        *,
        failure_threshold: int,
        open_seconds: float,
        half_open_max_calls: int,
        on_change: Callable[[str, BreakerState], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.failure_threshold = failure_threshold
        self.open_seconds = open_seconds
        self.half_open_max_calls = half_open_max_calls
        self._on_change = on_change
        self._clock = clock
        self._state = BreakerState.CLOSED
        self._generation = 0
        self._failures = 0
        self._trials = 0
        self._opened_at = 0.0

    @property
    def state(self) -> BreakerState:
        # The open interval ends lazily, on the next look; no timer task to manage.
        if (
            self._state is BreakerState.OPEN
            and self._clock() - self._opened_at >= self.open_seconds
        ):
            self._transition(BreakerState.HALF_OPEN)
        return self._state

    def acquire(self) -> "Permit":
        state = self.state
        if state is BreakerState.OPEN:
            remaining = self._opened_at + self.open_seconds - self._clock()
            raise CircuitOpenError(self.name, state, remaining)
        trial = state is BreakerState.HALF_OPEN
        if trial:
            if self._trials >= self.half_open_max_calls:
                # Trial calls are in flight; their outcome decides soon.
                raise CircuitOpenError(self.name, state, min(1.0, self.open_seconds))
            self._trials += 1
        return Permit(self, self._generation, trial)

    def _record(self, permit: "Permit", ok: bool) -> None:
        if permit.generation != self._generation:
            return
        if self._state is BreakerState.HALF_OPEN:
            self._transition(BreakerState.CLOSED if ok else BreakerState.OPEN)
        elif ok:
            self._failures = 0
        else:
            self._failures += 1
            if self._failures >= self.failure_threshold:
                self._transition(BreakerState.OPEN)

    def _release(self, permit: "Permit") -> None:
        if permit.trial and permit.generation == self._generation:
            self._trials -= 1

    def _transition(self, state: BreakerState) -> None:
        previous = self._state
        self._state = state
        self._generation += 1
        self._failures = 0
        self._trials = 0
        if state is BreakerState.OPEN:
            self._opened_at = self._clock()
        log.warning("circuit %s: %s -> %s", self.name, previous, state)
        if self._on_change is not None:
            self._on_change(self.name, state)
            # --8<-- [end:breaker]


class Permit:
    """One call's ticket; the first of success/failure/release counts, later no-ops."""

    __slots__ = ("_breaker", "_done", "generation", "trial")

    def __init__(self, breaker: CircuitBreaker, generation: int, trial: bool) -> None:
        self._breaker = breaker
        self._done = False
        self.generation = generation
        self.trial = trial

    def success(self) -> None:
        self._finish(True)

    def failure(self) -> None:
        self._finish(False)

    def release(self) -> None:
        """No outcome (the caller went away): frees a half-open trial slot."""
        self._finish(None)

    def broke(self) -> None:
        """A failure, even after success: the service cut its response off.

        Ignored if the breaker changed state since (a half-open trial whose headers
        arrived has closed it; later calls decide then)."""
        if not self._done:
            self.failure()
        elif self.generation == self._breaker._generation:
            self._breaker._record(self, False)

    def _finish(self, ok: bool | None) -> None:
        if self._done:
            return
        self._done = True
        if ok is not None:
            self._breaker._record(self, ok)
        self._breaker._release(self)


# ----------------------------------------------------------------------- metrics


@dataclass(frozen=True, slots=True)
class Metrics:
    registry: CollectorRegistry
    breaker_state: EnumMetric
    breaker_transitions: Counter
    upstream_requests: Counter
    upstream_latency: Histogram

    @classmethod
    def create(cls) -> "Metrics":
        # A registry per app: two apps in one process (tests) do not collide.
        registry = CollectorRegistry()
        return cls(
            registry=registry,
            breaker_state=EnumMetric(
                "gateway_circuit_breaker_state",
                "Circuit breaker state per upstream service.",
                ["service"],
                states=[s.value for s in BreakerState],
                registry=registry,
            ),
            breaker_transitions=Counter(
                "gateway_circuit_breaker_transitions",
                "Circuit breaker state changes, by the state entered.",
                ["service", "state"],
                registry=registry,
            ),
            upstream_requests=Counter(
                "gateway_upstream_requests",
                "Client requests by outcome: ok, client_error, server_error, timeout, "
                "connection_error (per attempt), circuit_open, overloaded, "
                "client_timeout, client_disconnected, stream_broken.",
                ["service", "outcome"],
                registry=registry,
            ),
            upstream_latency=Histogram(
                "gateway_upstream_response_seconds",
                "Time until the upstream's response headers arrived.",
                ["service"],
                registry=registry,
            ),
        )

    def on_breaker_change(self, service: str, state: BreakerState) -> None:
        self.breaker_state.labels(service).state(state.value)
        self.breaker_transitions.labels(service, state.value).inc()


# ----------------------------------------------------------------------- errors


class GatewayError(Exception):
    """An error answered by the gateway itself, as the shared JSON error envelope."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers
        self.extra = extra


def error_response(
    request: Request,
    status: int,
    code: str,
    message: str,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    request_id = getattr(request.state, "request_id", None)
    body = {
        "error": {"code": code, "message": message, "request_id": request_id, **extra}
    }
    return JSONResponse(body, status_code=status, headers=headers)


# ----------------------------------------------------------------------- request id


class RequestIdMiddleware:
    """Pure ASGI (no body buffering): keeps a well-formed client id, else makes one."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = next(
            (v.decode("latin-1") for k, v in scope["headers"] if k == b"x-request-id"),
            "",
        )
        request_id = incoming if REQUEST_ID.match(incoming) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        encoded = request_id.encode("latin-1")

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (k, v)
                    for k, v in message.get("headers", [])
                    if k != b"x-request-id"
                ]
                headers.append((b"x-request-id", encoded))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_id)


# ----------------------------------------------------------------------- proxy


def _connection_listed(values: list[str]) -> set[str]:
    """Header names that a `Connection` header declares hop-by-hop."""
    return {
        token.strip().lower().replace("_", "-")
        for value in values
        for token in value.split(",")
        if token.strip()
    }


def _dropped_request_header(name: str, connection_listed: set[str]) -> bool:
    # Underscore spellings too: CGI-style frameworks read x_auth_subject as the same
    # header as x-auth-subject.
    key = name.lower().replace("_", "-")
    return (
        key in HOP_BY_HOP
        or key in DROPPED_REQUEST_HEADERS
        or key in connection_listed
        or key.startswith(DROPPED_REQUEST_PREFIXES)
    )


def _under(path: str, prefixes: list[str]) -> bool:
    """Whether `path` is one of `prefixes` or below one (whole segments only)."""
    for prefix in prefixes:
        stem = prefix.rstrip("/")
        if path == stem or path.startswith(stem + "/"):
            return True
    return False


def has_dot_segment(path: str) -> bool:
    """Whether a (decoded) path holds a dot segment, also a disguised one."""
    for _ in range(3):  # %252e%252e decodes to %2e%2e, which a service may decode
        for segment in PATH_SEGMENT_SEPARATOR.split(path):
            if segment.split(";", 1)[0] in (".", ".."):
                return True
        decoded = unquote(path)
        if decoded == path:
            return False
        path = decoded
    return True  # still encoded after three rounds: nobody sends that in good faith


class ClientBodyTimeout(Exception):
    """The client went quiet in the middle of its request body."""


class UpstreamFailure(Exception):
    """The service failed this request (after any retries): one breaker failure."""

    def __init__(self, error: GatewayError) -> None:
        super().__init__(error.message)
        self.error = error


class ClientBody:
    """The client's request body, relayed chunk by chunk as it arrives.

    Time spent waiting for the client is the client's, not the service's: while a
    chunk is awaited the upstream deadline is paused (then moved on by as long), and
    a silence longer than `idle_seconds` raises ClientBodyTimeout. Nothing is
    buffered beyond the chunk in hand.
    """

    def __init__(self, chunks: AsyncIterator[bytes], idle_seconds: float) -> None:
        self._chunks = chunks
        self._idle_seconds = idle_seconds
        self.deadline: asyncio.Timeout | None = None
        self.started = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        self.started = True
        loop = asyncio.get_running_loop()
        while True:
            deadline = self.deadline
            if deadline is not None and deadline.expired():
                deadline = None  # it fired as we resumed: its cancellation comes next
            when = deadline.when() if deadline is not None else None
            if deadline is not None:
                deadline.reschedule(None)
            waiting_since = loop.time()
            try:
                async with asyncio.timeout(self._idle_seconds):
                    chunk = await anext(self._chunks, None)
            except TimeoutError as exc:
                raise ClientBodyTimeout from exc
            finally:
                if deadline is not None and when is not None:
                    deadline.reschedule(when + loop.time() - waiting_since)
            if chunk is None:
                return
            if chunk:
                yield chunk


class UpstreamResponse(Response):
    """Relays an upstream response chunk by chunk, as it arrives.

    Watches for the client going away at the same time, so an abandoned SSE stream
    closes its upstream connection at once instead of at the next event. `on_end`
    runs once the upstream connection is given back, with the transport error that
    cut the body off, if one did.
    """

    def __init__(
        self,
        upstream: httpx.Response,
        on_end: Callable[[httpx.TransportError | None], None],
    ) -> None:
        drop = (
            HOP_BY_HOP
            | _connection_listed(upstream.headers.get_list("connection"))
            | {"server", "date"}
        )
        self.status_code = upstream.status_code
        self.raw_headers = [
            (name, value)
            for name, value in upstream.headers.raw
            if name.decode("latin-1").lower() not in drop
        ]
        self.background = None
        self._upstream = upstream
        self._on_end = on_end

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def relay() -> None:
            await send(
                {
                    "type": "http.response.start",
                    "status": self.status_code,
                    "headers": self.raw_headers,
                }
            )
            async for chunk in self._upstream.aiter_raw():
                await send(
                    {"type": "http.response.body", "body": chunk, "more_body": True}
                )
            await send({"type": "http.response.body", "body": b"", "more_body": False})

        async def client_gone() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass

        relay_task = asyncio.create_task(relay())
        watch_task = asyncio.create_task(client_gone())
        try:
            await asyncio.wait(
                {relay_task, watch_task}, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            relay_task.cancel()
            watch_task.cancel()
            await asyncio.gather(relay_task, watch_task, return_exceptions=True)
            await self._upstream.aclose()
            error = None if relay_task.cancelled() else relay_task.exception()
            # Headers are out: the only honest signal left is a cut connection, which
            # uvicorn makes of a response that ends unfinished. Reported by on_end in
            # one line, not as a traceback: the service's fault, not the gateway's.
            broken = error if isinstance(error, httpx.TransportError) else None
            self._on_end(broken)
        if error is not None and broken is None:
            raise error


@dataclass(slots=True)
class Upstream:
    name: str
    spec: ServiceSpec
    client: httpx.AsyncClient
    breaker: CircuitBreaker
    timeout_seconds: float
    # Free slots: ordinary requests and streams are counted apart, so that long-lived
    # streams cannot take every connection to the service.
    requests: asyncio.Semaphore
    streams: asyncio.Semaphore

    def url_for(self, raw_path: bytes, query: bytes) -> httpx.URL:
        path = raw_path
        if self.spec.strip_prefix:
            # The prefix is the first segment as sent, however it is encoded
            # ("/%61gents/x" is "/agents/x"); an encoded '/' in it names no service.
            first, slash, rest = raw_path[1:].partition(b"/")
            if unquote(first.decode("latin-1")) != self.name:
                raise GatewayError(400, "invalid_path", "malformed service prefix")
            path = slash + rest or b"/"
        base = httpx.URL(str(self.spec.url))
        target = base.raw_path.rstrip(b"/") + path
        return base.copy_with(raw_path=target + (b"?" + query if query else b""))


class ServiceHealth(BaseModel):
    status: Literal["up", "down"]
    breaker: BreakerState
    reachable: bool
    required: bool


class Readiness(BaseModel):
    status: Literal["ok", "degraded"]
    services: dict[str, ServiceHealth]


class Gateway:
    def __init__(self, settings: GatewaySettings, metrics: Metrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.jwks = jwt.PyJWKClient(
            settings.jwks_url,
            lifespan=settings.jwks_cache_seconds,
            cooldown_duration=settings.jwks_refetch_seconds,
            timeout=settings.jwks_timeout_seconds,
        )
        self.upstreams: dict[str, Upstream] = {}
        requests = settings.max_connections_per_service
        streams = settings.max_streams_per_service
        for name, spec in settings.services.items():
            timeout_seconds = spec.timeout_seconds or settings.upstream_timeout_seconds
            client = httpx.AsyncClient(
                base_url=str(spec.url),
                # The header deadline wraps send(); read= bounds gaps inside a body.
                timeout=httpx.Timeout(
                    timeout_seconds,
                    read=settings.stream_idle_timeout_seconds,
                ),
                # A pool per service: a slow service exhausts only its own connections.
                # The slots below admit no more than it holds (+1: readiness probes).
                limits=httpx.Limits(
                    max_connections=requests + streams + 1,
                    max_keepalive_connections=requests,
                ),
                # httpx would otherwise ask for gzip on behalf of clients that did not.
                headers={"accept-encoding": "identity", "user-agent": "forge-gateway"},
                follow_redirects=False,
                trust_env=False,
            )
            breaker = CircuitBreaker(
                name,
                failure_threshold=settings.breaker_failure_threshold,
                open_seconds=settings.breaker_open_seconds,
                half_open_max_calls=settings.breaker_half_open_max_calls,
                on_change=metrics.on_breaker_change,
            )
            metrics.breaker_state.labels(name).state(BreakerState.CLOSED.value)
            self.upstreams[name] = Upstream(
                name,
                spec,
                client,
                breaker,
                timeout_seconds,
                requests=asyncio.Semaphore(requests),
                streams=asyncio.Semaphore(streams),
            )

    async def aclose(self) -> None:
        await asyncio.gather(*(u.client.aclose() for u in self.upstreams.values()))

    def is_public(self, path: str) -> bool:
        return _under(path, self.settings.public_paths)

    def is_stream(self, request: Request, upstream: Upstream) -> bool:
        accept = request.headers.get("accept", "")
        return "text/event-stream" in accept or _under(
            request.url.path, upstream.spec.stream_paths
        )

    async def signing_key(self, token: str) -> jwt.PyJWK:
        kid = jwt.get_unverified_header(token).get("kid")
        if not isinstance(kid, str) or not kid:
            raise jwt.InvalidTokenError("the token has no kid")
        cache = self.jwks.jwk_set_cache
        cached = cache.get() if cache is not None else None
        if isinstance(cached, jwt.PyJWKSet):
            # Hot path: a cached key set answers without a thread hop.
            for key in cached.keys:
                if key.key_id == kid:
                    return key
        # PyJWKClient fetches with urllib (blocking): keep it off the event loop.
        return await asyncio.to_thread(self.jwks.get_signing_key, kid)

    async def authenticate(self, authorization: str | None) -> str:
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise GatewayError(
                401,
                "unauthorized",
                "a bearer token is required",
                headers={"WWW-Authenticate": "Bearer"},
            )
        try:
            claims = jwt.decode(
                token.strip(),
                await self.signing_key(token.strip()),
                algorithms=["RS256"],  # pinned: HS256 keyed with the public key fails
                audience=self.settings.jwt_audience,
                issuer=self.settings.jwt_issuer,
                leeway=self.settings.jwt_leeway_seconds,
                options={"require": ["exp", "iat", "aud", "iss", "sub"]},
            )
            if claims.get("token_use") == "service":
                # Service tokens are for service-to-service calls, not the public edge.
                raise jwt.InvalidTokenError("a service token")
        except (jwt.PyJWTError, OSError) as exc:
            log.info("token rejected: %s", exc)
            raise GatewayError(
                401,
                "invalid_token",
                "the token is invalid or expired",
                headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
            ) from exc
        return str(claims["sub"])

    def _upstream_headers(
        self, request: Request, subject: str | None
    ) -> list[tuple[str, str]]:
        listed = _connection_listed(request.headers.getlist("connection"))
        headers = [
            (name, value)
            for name, value in request.headers.items()
            if not _dropped_request_header(name, listed)
        ]
        headers.append(("x-request-id", request.state.request_id))
        # The edge is the trust boundary: replace, never extend, client-sent forwarding
        # headers. request.client is the real client only if uvicorn runs with
        # --no-proxy-headers (nothing in front) or --forwarded-allow-ips=<the LB>.
        if request.client is not None:
            headers.append(("x-forwarded-for", request.client.host))
        headers.append(("x-forwarded-proto", request.url.scheme))
        if host := request.headers.get("host"):
            headers.append(("x-forwarded-host", host))
        if subject is not None:
            headers.append((SUBJECT_HEADER, subject))
        return headers

    def _backoff(self, attempt: int) -> float:
        ceiling = min(
            self.settings.retry_backoff_max_seconds,
            self.settings.retry_backoff_seconds * 2**attempt,
        )
        # Full jitter: retries of many clients spread out instead of arriving at once.
        return random.uniform(0, ceiling)

    def _permit(self, upstream: Upstream) -> Permit:
        try:
            return upstream.breaker.acquire()
        except CircuitOpenError as exc:
            self.metrics.upstream_requests.labels(upstream.name, "circuit_open").inc()
            raise GatewayError(
                503,
                "circuit_open",
                f"service {upstream.name!r} is unavailable, retry later",
                headers={"Retry-After": str(max(1, math.ceil(exc.retry_after)))},
                service=upstream.name,
                breaker=exc.state.value,
                retry_after_seconds=round(exc.retry_after, 3),
            ) from exc

    def _overloaded(self, upstream: Upstream) -> GatewayError:
        # The gateway's own limit, not the service's health: the breaker is untouched.
        self.metrics.upstream_requests.labels(upstream.name, "overloaded").inc()
        return GatewayError(
            503,
            "overloaded",
            f"too many requests in flight to service {upstream.name!r}, retry shortly",
            headers={"Retry-After": "1"},
            service=upstream.name,
        )

    async def _slot(self, upstream: Upstream, streaming: bool) -> asyncio.Semaphore:
        slots = upstream.streams if streaming else upstream.requests
        try:
            async with asyncio.timeout(self.settings.queue_timeout_seconds):
                await slots.acquire()
        except TimeoutError:
            raise self._overloaded(upstream) from None
        return slots

    # --8<-- [start:forward]
    async def forward(
        self, request: Request, upstream: Upstream, subject: str | None
    ) -> Response:
        streaming = self.is_stream(request, upstream)
        raw_path: bytes = request.scope.get("raw_path") or request.url.path.encode()
        url = upstream.url_for(raw_path, request.scope["query_string"])
        headers = self._upstream_headers(request, subject)
        retries = upstream.spec.retry_attempts
        if retries is None:
            retries = self.settings.retry_attempts
        if streaming:
            retries = 0  # a stream may start a paid run: never a second one
        # One permit per client request: its retries are one outcome for the breaker.
        permit = self._permit(upstream)
        try:
            slot = await self._slot(upstream, streaming)
        except BaseException:
            permit.release()
            raise
        try:
            response = await self._send(request, upstream, url, headers, retries)
        except UpstreamFailure as exc:
            permit.failure()
            slot.release()
            raise exc.error from exc.__cause__
        except BaseException:
            # The client's fault or its departure: no outcome, the trial slot is freed.
            permit.release()
            slot.release()
            raise
        status = response.status_code
        if status >= 500:
            permit.failure()
            outcome = "server_error"
        else:
            # A 4xx is the caller's problem, not the service's. A trial decides at the
            # headers (a stream would hold the breaker half-open for its whole life);
            # other calls once the body is through, so that a service that cuts its
            # responses off still opens the breaker.
            if permit.trial:
                permit.success()
            outcome = "ok" if status < 400 else "client_error"
        self.metrics.upstream_requests.labels(upstream.name, outcome).inc()
        return UpstreamResponse(response, self._response_end(upstream, permit, slot))

    async def _send(
        self,
        request: Request,
        upstream: Upstream,
        url: httpx.URL,
        headers: list[tuple[str, str]],
        retries: int,
    ) -> httpx.Response:
        has_body = "transfer-encoding" in request.headers or request.headers.get(
            "content-length", "0"
        ) not in ("", "0")
        body = ClientBody(request.stream(), self.settings.client_body_timeout_seconds)
        count = self.metrics.upstream_requests
        for attempt in range(1 + retries):
            outbound = upstream.client.build_request(
                request.method, url, headers=headers, content=body if has_body else None
            )
            started = time.perf_counter()
            try:
                async with asyncio.timeout(upstream.timeout_seconds) as deadline:
                    body.deadline = deadline
                    response = await upstream.client.send(outbound, stream=True)
            except ClientBodyTimeout as exc:
                count.labels(upstream.name, "client_timeout").inc()
                log.warning("client body to %s stopped arriving: 408", upstream.name)
                raise GatewayError(
                    408,
                    "client_timeout",
                    "the request body stopped arriving; send it again",
                    headers={"Connection": "close"},
                ) from exc
            except ClientDisconnect:
                count.labels(upstream.name, "client_disconnected").inc()
                log.warning("client went away mid-upload to %s", upstream.name)
                raise
            except httpx.PoolTimeout:
                raise self._overloaded(upstream) from None
            except (httpx.TransportError, TimeoutError) as exc:
                timed_out = isinstance(exc, TimeoutError | httpx.TimeoutException)
                outcome = "timeout" if timed_out else "connection_error"
                count.labels(upstream.name, outcome).inc()
                retry = (
                    isinstance(exc, RETRYABLE_ERRORS)
                    and not body.started
                    and attempt < retries
                )
                log.warning(
                    "upstream %s %s attempt %d/%d: %s",
                    upstream.name,
                    outcome,
                    attempt + 1,
                    1 + retries,
                    type(exc).__name__,
                )
                if not retry:
                    error = GatewayError(
                        504 if timed_out else 502,
                        f"upstream_{outcome}",
                        f"service {upstream.name!r} did not answer",
                        service=upstream.name,
                    )
                    raise UpstreamFailure(error) from exc
            else:
                self.metrics.upstream_latency.labels(upstream.name).observe(
                    time.perf_counter() - started
                )
                return response
            finally:
                body.deadline = None
            await asyncio.sleep(self._backoff(attempt))
        raise AssertionError("unreachable: the last attempt returns or raises")
        # --8<-- [end:forward]

    def _response_end(
        self, upstream: Upstream, permit: Permit, slot: asyncio.Semaphore
    ) -> Callable[[httpx.TransportError | None], None]:
        def end(broken: httpx.TransportError | None) -> None:
            slot.release()
            if broken is None:
                permit.success()  # no-op if a 5xx or a trial decided already
                return
            permit.broke()
            self.metrics.upstream_requests.labels(upstream.name, "stream_broken").inc()
            log.warning(
                "upstream %s response broke off: %s",
                upstream.name,
                type(broken).__name__,
            )

        return end

    # --8<-- [start:readiness]
    async def readiness(self) -> tuple[bool, Readiness]:
        async def probe(upstream: Upstream) -> bool:
            try:
                async with asyncio.timeout(self.settings.health_timeout_seconds):
                    response = await upstream.client.get(upstream.spec.health_path)
            except (httpx.HTTPError, TimeoutError):
                return False
            return response.is_success

        names = list(self.upstreams)
        reachable = await asyncio.gather(*(probe(self.upstreams[n]) for n in names))
        services: dict[str, ServiceHealth] = {}
        for name, ok in zip(names, reachable, strict=True):
            upstream = self.upstreams[name]
            state = upstream.breaker.state
            up = ok and state is not BreakerState.OPEN
            services[name] = ServiceHealth(
                status="up" if up else "down",
                breaker=state,
                reachable=ok,
                required=upstream.spec.required,
            )
        ready = all(s.status == "up" for s in services.values() if s.required)
        return ready, Readiness(status="ok" if ready else "degraded", services=services)
        # --8<-- [end:readiness]


# ----------------------------------------------------------------------- app


# Dependencies are `async def`: a plain `def` would hop to the threadpool per request.
async def get_gateway(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    return gateway


GatewayDep = Annotated[Gateway, Depends(get_gateway)]


async def authenticated_subject(request: Request, gateway: GatewayDep) -> str | None:
    # "/users/auth/../admin" would pass as public here and may be resolved to
    # "/users/admin" behind the gateway: dot segments (also %2e%2e, ..\, ..;) are
    # refused.
    if has_dot_segment(request.url.path):
        raise GatewayError(400, "invalid_path", "dot segments are not allowed")
    if gateway.is_public(request.url.path):
        return None
    return await gateway.authenticate(request.headers.get("authorization"))


def create_app(settings: GatewaySettings | None = None) -> FastAPI:
    settings = settings or GatewaySettings()  # type: ignore[call-arg]  # read from env
    metrics = Metrics.create()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        gateway = Gateway(settings, metrics)
        app.state.gateway = gateway
        try:
            yield
        finally:
            await gateway.aclose()

    app = FastAPI(
        title="gateway",
        lifespan=lifespan,
        max_body_size=settings.max_body_bytes,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=PROXY_METHODS,
            allow_headers=["authorization", "content-type", "x-request-id"],
            expose_headers=["x-request-id"],
        )
    app.add_middleware(
        RequestIdMiddleware
    )  # added last: outermost, so every answer has it

    @app.exception_handler(GatewayError)
    async def gateway_error(request: Request, exc: GatewayError) -> JSONResponse:
        return error_response(
            request, exc.status, exc.code, exc.message, exc.headers, **exc.extra
        )

    @app.exception_handler(ClientDisconnect)
    async def client_gone(request: Request, exc: ClientDisconnect) -> Response:
        # Logged where it happened, in one line; nobody is left to read an answer.
        return Response(status_code=499)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error_response(
            request,
            exc.status_code,
            f"http_{exc.status_code}",
            str(exc.detail),
            exc.headers,
        )

    @app.get("/health")
    async def liveness() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/health/ready")
    async def readiness(gateway: GatewayDep) -> JSONResponse:
        ready, report = await gateway.readiness()
        return JSONResponse(
            report.model_dump(mode="json"), status_code=200 if ready else 503
        )

    @app.get("/metrics")
    async def prometheus(gateway: GatewayDep) -> Response:
        for upstream in gateway.upstreams.values():
            _ = (
                upstream.breaker.state
            )  # lets an elapsed open interval show as half_open
        return Response(
            generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST
        )

    async def proxy(
        request: Request,
        service: str,
        gateway: GatewayDep,
        subject: Annotated[str | None, Depends(authenticated_subject)],
    ) -> Response:
        upstream = gateway.upstreams.get(service)
        if upstream is None:
            raise GatewayError(
                404, "unknown_service", f"no service is routed at /{service}"
            )
        return await gateway.forward(request, upstream, subject)

    for path in ("/{service}", "/{service}/{rest:path}"):
        app.add_api_route(path, proxy, methods=PROXY_METHODS, include_in_schema=False)
    return app


# ----------------------------------------------------------------------- server


class ServerSettings(BaseSettings):
    """What GatewayHTTPProtocol reads: uvicorn makes protocols before any app."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    # Time a client has to send a complete request head, from the connection's start
    # or from the first byte of its next request on a kept-alive connection.
    header_timeout_seconds: float = Field(default=10.0, gt=0)


@functools.cache
def server_settings() -> ServerSettings:
    return ServerSettings()


class GatewayHTTPProtocol(H11Protocol):
    """uvicorn's h11 protocol with a time limit on every request head (slowloris).

    uvicorn times out idle kept-alive connections, not a head that arrives a byte at
    a time, nor a connection that never sends one; h11 bounds the head's size
    (``--h11-max-incomplete-event-size``, 16 KiB by default, 400 beyond). Select it
    with ``--http microservice_gateway:GatewayHTTPProtocol``.
    """

    _head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start_head_timer()

    def data_received(self, data: bytes) -> None:
        if self._head_timer is None and self.conn.their_state is h11.IDLE:
            self._start_head_timer()  # the next request on a kept-alive connection
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:
            self._stop_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_timer()
        super().connection_lost(exc)

    def _start_head_timer(self) -> None:
        timeout = server_settings().header_timeout_seconds
        self._head_timer = self.loop.call_later(timeout, self._head_timed_out)

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            # Info, not warning: under attack this is one line per connection.
            log.info(
                "closed a connection from %s: no request head in time", self.client
            )
            self.transport.close()


def __getattr__(name: str) -> Any:
    # `uvicorn microservice_gateway:app` builds the app on first access, so importing
    # this module (tests, tooling) needs no environment.
    if name == "app":
        application = create_app()
        globals()["app"] = application
        return application
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
