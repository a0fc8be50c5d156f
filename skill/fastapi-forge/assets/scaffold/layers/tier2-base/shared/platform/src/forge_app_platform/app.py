"""App factory shared by the services: lifespan (database, broker, background loops),
request ids, the error envelope, /health, /health/ready and /metrics."""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, Counter, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .auth import JwksKeys, KeySource, TokenVerifier
from .broker import create_broker
from .bus import Broker
from .db import Database
from .settings import ServiceSettings, VerifyingSettings

log = logging.getLogger(__name__)
REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
READY_TIMEOUT_SECONDS = 2.0
# A loop that crashed this many times in a row, each run shorter than LOOP_STABLE_SECONDS,
# is stuck (a poison event, a broken key): readiness says so until it runs that long.
LOOP_CRASHES_UNREADY = 3
LOOP_STABLE_SECONDS = 10.0
LOOP_CRASHES = Counter(
    "background_loop_crashes", "Crashes (then restarts) of a background loop.", ["loop"]
)


@dataclass
class LoopState:
    crashes_in_row: int = 0
    started_at: float = field(default_factory=time.monotonic)

    def stuck(self) -> bool:
        recent = time.monotonic() - self.started_at < LOOP_STABLE_SECONDS
        return self.crashes_in_row >= LOOP_CRASHES_UNREADY and recent


@dataclass
class Runtime:
    """Everything a service opens at start-up and closes at shutdown."""

    settings: ServiceSettings
    db: Database
    broker: Broker
    tokens: TokenVerifier
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    loops: dict[str, LoopState] = field(default_factory=dict)


Background = Callable[[Runtime], Coroutine[Any, Any, None]]
Loop = Callable[[], Awaitable[None]]


async def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


class RequestIdMiddleware:
    """Pure ASGI: keeps a well-formed X-Request-ID (the gateway sets one), else makes one."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = next(
            (v.decode("latin-1") for k, v in scope["headers"] if k == b"x-request-id"), ""
        )
        request_id = incoming if REQUEST_ID.match(incoming) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_id)


def error_response(
    request: Request,
    status: int,
    code: str,
    message: str,
    headers: dict[str, str] | None = None,
    details: Any = None,
) -> JSONResponse:
    body: dict[str, Any] = {
        "code": code,
        "message": message,
        "request_id": getattr(request.state, "request_id", None),
    }
    if details is not None:
        body["details"] = details
    return JSONResponse({"error": body}, status_code=status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error_response(
            request, exc.status_code, f"http_{exc.status_code}", str(exc.detail), exc.headers
        )

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        details = [{"loc": e["loc"], "msg": e["msg"]} for e in exc.errors()]
        return error_response(request, 422, "validation_error", "invalid request", None, details)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        # The detail goes to the log, never to the client.
        log.exception("unhandled error", exc_info=exc)
        return error_response(request, 500, "internal_error", "internal server error")


health = APIRouter(tags=["health"])


@health.get("/health")
async def liveness() -> dict[str, str]:
    return {"status": "ok"}


@health.get("/health/ready")
async def readiness(runtime: RuntimeDep) -> JSONResponse:
    """Only what this service owns: its database, its broker and its background loops,
    never other services."""

    async def database() -> bool:
        try:
            async with asyncio.timeout(READY_TIMEOUT_SECONDS):
                await runtime.db.ping()
        except Exception:
            return False
        return True

    async def broker() -> bool:
        try:
            async with asyncio.timeout(READY_TIMEOUT_SECONDS):
                return await runtime.broker.ping()
        except Exception:
            return False

    db_ok, broker_ok = await asyncio.gather(database(), broker())
    loops_ok = not any(state.stuck() for state in runtime.loops.values())
    checks = {
        "database": "ok" if db_ok else "down",
        "broker": "ok" if broker_ok else "down",
        "loops": "ok" if loops_ok else "down",
    }
    ready = db_ok and broker_ok and loops_ok
    return JSONResponse(
        {"status": "ok" if ready else "unavailable", "checks": checks},
        status_code=200 if ready else 503,
    )


@health.get("/metrics", include_in_schema=False)
async def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


async def supervise(name: str, loop: Loop, stop: asyncio.Event, state: LoopState) -> None:
    """Restarts a background loop that crashed (a bug or a lost connection) after a pause,
    counting the crashes in `state` and in `background_loop_crashes_total`."""
    while not stop.is_set():
        state.started_at = time.monotonic()
        try:
            await loop()
        except Exception:
            LOOP_CRASHES.labels(name).inc()
            stable = time.monotonic() - state.started_at >= LOOP_STABLE_SECONDS
            state.crashes_in_row = 1 if stable else state.crashes_in_row + 1
            log.exception("background loop %s crashed; restarting", name)
            with suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)
        else:
            return


@asynccontextmanager
async def background_loops(
    loops: Mapping[str, Loop],
    stop: asyncio.Event,
    states: dict[str, LoopState] | None = None,
) -> AsyncIterator[None]:
    """Runs `loops` (consumers, the outbox relay) supervised until the block ends; then
    sets `stop` and gives them 10 s to finish their batch. Unacknowledged events are
    redelivered anyway. `states`: filled with each loop's crash record, for readiness."""
    states = {} if states is None else states
    states.update({name: LoopState() for name in loops})
    tasks = [
        asyncio.create_task(supervise(name, loop, stop, states[name]), name=name)
        for name, loop in loops.items()
    ]
    try:
        yield
    finally:
        stop.set()
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=10)
            for task in pending:
                task.cancel()


def create_service_app(
    settings: ServiceSettings,
    routers: Sequence[APIRouter],
    background: Sequence[Background] = (),
    keys: KeySource | None = None,
) -> FastAPI:
    """`background`: long-running loops (consumers, the outbox relay), started after the
    database and broker are open and stopped before they close. `keys`: what verifies
    tokens; by default user-service's JWKS (JWKS_URL), user-service passes its own."""
    if keys is None:
        assert isinstance(settings, VerifyingSettings), "a service verifies with JWKS_URL"
        keys = JwksKeys(settings)
    verifier = TokenVerifier(settings, keys)
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = Database(settings)
        broker = create_broker(settings)
        await broker.start()
        runtime = Runtime(settings, db, broker, verifier)
        app.state.runtime = runtime
        loops = {loop.__name__: functools.partial(loop, runtime) for loop in background}
        try:
            async with background_loops(loops, runtime.stop, runtime.loops):
                yield
        finally:
            await broker.close()
            await db.close()

    app = FastAPI(title=settings.service_name, lifespan=lifespan)
    app.add_middleware(RequestIdMiddleware)
    install_error_handlers(app)
    app.include_router(health)
    for router in routers:
        app.include_router(router)
    return app
