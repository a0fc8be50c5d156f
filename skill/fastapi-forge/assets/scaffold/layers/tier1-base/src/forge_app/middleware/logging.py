"""Request id, access log, HTTP metrics and the last-resort error answer, as pure ASGI.

Pure ASGI (not BaseHTTPMiddleware) so streaming responses (SSE) pass through untouched and
each request costs one function call, not an extra task and memory stream. The access line
is one `json.dumps`, written to the log stream with the other lines of the same event-loop
turn: structlog's processor chain and the logging handler cost more than the rest of a
small request.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import time
from datetime import UTC, datetime

import structlog
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import error_response
from ..logging_config import AccessSink
from ..metrics import HTTP_TOTALS

REQUEST_ID_HEADER = "x-request-id"
REQUEST_ID_RAW = REQUEST_ID_HEADER.encode()
# Accept a caller's id only if it is short and harmless in logs and headers.
VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

ACCESS_LOGGER = "forge_app.access"
log = structlog.get_logger(ACCESS_LOGGER)
access_enabled = logging.getLogger(ACCESS_LOGGER).isEnabledFor


def write_access_line(fields: dict[str, object]) -> None:
    if not AccessSink.json:  # the console renderer, for development
        log.info("request", **fields)
        return
    # What structlog's chain adds: the bound context (request id...), level, logger, time.
    line = {"event": "request", **structlog.contextvars.get_contextvars(), **fields}
    line |= {
        "level": "info",
        "logger": ACCESS_LOGGER,
        "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
    }
    ACCESS_LINES.add(json.dumps(line, default=repr))


class AccessLines:
    """The access lines of one turn of the event loop, written to the stream in one go."""

    def __init__(self) -> None:
        self.pending: list[str] = []
        self.flush_loop: asyncio.AbstractEventLoop | None = None

    def add(self, line: str) -> None:
        self.pending.append(line)
        loop = asyncio.get_running_loop()
        if self.flush_loop is not loop:
            self.flush_loop = loop
            loop.call_soon(self.flush)

    def flush(self) -> None:
        self.flush_loop = None
        if not self.pending:
            return
        lines = "\n".join(self.pending) + "\n"
        self.pending.clear()
        try:
            AccessSink.stream.write(lines)
            AccessSink.stream.flush()
        except (OSError, ValueError):
            # A closed or broken stream: the logging handler reports it its own way.
            logging.getLogger(ACCESS_LOGGER).error("access lines lost:\n%s", lines)


ACCESS_LINES = AccessLines()


def route_template(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    # Unmatched paths share one label so scanners cannot blow up the metric cardinality.
    return path if isinstance(path, str) else "unmatched"


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        incoming = ""
        for name, value in scope["headers"]:  # raw: cheaper than a Headers object
            if name == REQUEST_ID_RAW:
                incoming = value.decode("latin-1")
                break
        request_id = incoming if VALID_REQUEST_ID.match(incoming) else os.urandom(16).hex()
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        if scope["type"] == "websocket":
            log.info("websocket_connect", path=scope["path"])
            try:
                await self.app(scope, receive, send)
            finally:
                log.info("websocket_closed", path=scope["path"])
            return

        started = time.perf_counter()
        status = 500
        response_started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status = message["status"]
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = request_id
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            log.exception("unhandled_error", path=scope["path"])
            if not response_started:
                status = 500
                response = error_response(500, "internal_error", "internal server error")
                await response(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            method = scope["method"]
            route = route_template(scope)
            HTTP_TOTALS.record(method, route, status, elapsed)
            if access_enabled(logging.INFO):
                write_access_line(
                    {
                        "method": method,
                        "path": scope["path"],
                        "route": route,
                        "status": status,
                        "duration_ms": round(elapsed * 1000, 2),
                    }
                )
