"""Authentication for every HTTP route except the public ones, as pure ASGI.

The chosen scheme (`security.py`) verifies the credentials; this middleware only finds
them, answers 401 without them and hands the Principal to the routes through
`scope["state"]`. WebSocket connections authenticate inside the handler (first message),
because browsers cannot send headers on a WebSocket handshake.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from ..errors import error_response
from ..principal import ANONYMOUS, AuthenticationError, Authenticator

PUBLIC_PATHS = frozenset(
    {"/health", "/health/ready", "/metrics", "/docs", "/docs/oauth2-redirect", "/openapi.json"}
)
PRINCIPAL_KEY = "principal"


class AuthMiddleware:
    def __init__(self, app: ASGIApp, authenticator: Authenticator) -> None:
        self.app = app
        self.authenticator = authenticator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in PUBLIC_PATHS:
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        if not self.authenticator.required:
            state[PRINCIPAL_KEY] = ANONYMOUS
            await self.app(scope, receive, send)
            return
        challenge = {"WWW-Authenticate": self.authenticator.scheme}
        credentials = self.authenticator.credentials(Headers(scope=scope))
        if not credentials:
            response = error_response(
                401, "missing_credentials", "authentication required", headers=challenge
            )
            await response(scope, receive, send)
            return
        try:
            state[PRINCIPAL_KEY] = await self.authenticator.authenticate(credentials)
        except AuthenticationError as exc:
            response = error_response(401, exc.code, "credentials are not valid", headers=challenge)
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)
