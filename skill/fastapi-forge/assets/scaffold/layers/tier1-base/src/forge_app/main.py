"""The application factory. Run it with

uvicorn --factory forge_app.main:create_app --host 0.0.0.0 --port 8000 --workers 2 \
    --loop uvloop --http httptools --no-access-log

or `fastapi run --workers 2`, which starts `forge_app.asgi:app` ([tool.fastapi] in
pyproject.toml).
"""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from typing import Any

import structlog
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from .config import Settings, get_settings
from .errors import install_error_handlers
from .hooks import load_hooks
from .logging_config import configure_logging
from .metrics import mark_process_dead
from .middleware.auth import AuthMiddleware
from .middleware.body_limit import BodyLimitMiddleware
from .middleware.logging import RequestContextMiddleware
from .middleware.rate_limit import RateLimitMiddleware
from .resources import open_resources
from .routes import include_routes
from .security import build_authenticator

log = structlog.get_logger(__name__)


# The collector's thresholds while serving (Python's default: 700, 10, 10). Each open stream
# keeps ~135 objects alive, and a full collection walks them all: at 5,000 streams one took
# 1.9 s (scripts/bench-app --streams). A young collection after 10,000 new objects instead
# of 700 lets per-event objects die first, and a full one waits for 100 middle ones.
GC_THRESHOLDS = (10_000, 10, 100)


@contextmanager
def collected_for_serving() -> Iterator[None]:
    """While serving: what start-up loaded (modules, app, settings) lives as long as the
    process, so it is frozen out of the garbage collector's walks; undone on the way out
    (tests start many apps in one process). No collection first: start-up garbage, if
    any, waits for the shutdown, and a test's app starts without a full collection."""
    thresholds = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()


# --8<-- [start:create-app]
def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings.log_level, json=settings.log_json)
    authenticator = build_authenticator(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[dict[str, Any]]:
        async with open_resources(settings, authenticator) as resources, AsyncExitStack() as hooks:
            for hook in load_hooks().api_lifespan:
                await hooks.enter_async_context(hook(resources))
            log.info("startup", app=settings.app_name, environment=settings.environment)
            with collected_for_serving():
                # Lifespan state: copied into every request's `request.state`.
                yield {"resources": resources}
        mark_process_dead()
        log.info("shutdown")

    app = FastAPI(
        title=settings.app_name,
        lifespan=lifespan,
        docs_url="/docs" if settings.docs_enabled else None,
        redoc_url=None,
        openapi_url="/openapi.json" if settings.docs_enabled else None,
    )
    install_error_handlers(app)
    # --8<-- [start:middleware-order]
    # add_middleware wraps: the last added runs first. Order on the way in:
    # request id/logging -> body size -> CORS -> auth -> rate limit (per caller) -> routes.
    app.add_middleware(RateLimitMiddleware)
    app.add_middleware(AuthMiddleware, authenticator=authenticator)
    # --8<-- [start:cors]
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_credentials=settings.cors_allow_credentials,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "X-API-Key", "X-Request-ID"],
            expose_headers=["X-Request-ID", "Retry-After", "Location"],
        )
        # --8<-- [end:cors]
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_request_body_bytes)
    app.add_middleware(RequestContextMiddleware)
    # --8<-- [end:middleware-order]
    include_routes(app, settings)
    return app
    # --8<-- [end:create-app]
