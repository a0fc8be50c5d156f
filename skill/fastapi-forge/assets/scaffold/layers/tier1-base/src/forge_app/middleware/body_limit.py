"""A cap on the size of request bodies (MAX_REQUEST_BODY_BYTES), as pure ASGI.

Without it FastAPI reads a body of any size into memory before validating it. A declared
Content-Length over the cap is refused before a byte of the body is read; a chunked body
is counted as it arrives and refused once it passes the cap. Either way the answer is the
error envelope (413 `payload_too_large`) with the request id.
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import error_response

MESSAGE = "the request body is too large"


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # The raw headers (ASGI names are lowercase): a Headers object and its KeyError
        # when the header is absent (every GET) cost more than the rest of this middleware.
        declared = b""
        for name, value in scope["headers"]:
            if name == b"content-length":
                declared = value
                break
        if declared.isdigit() and int(declared) > self.max_bytes:
            await error_response(413, "payload_too_large", MESSAGE)(scope, receive, send)
            return
        received = 0

        async def receive_within_limit() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # FastAPI re-raises an HTTPException from reading the body (anything
                    # else becomes a 400), and the error handler renders the envelope.
                    raise HTTPException(413, MESSAGE)
            return message

        await self.app(scope, receive_within_limit, send)
