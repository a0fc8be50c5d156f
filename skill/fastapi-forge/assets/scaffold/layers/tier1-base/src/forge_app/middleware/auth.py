"""Authentication for every HTTP route and WebSocket except the public ones, as pure ASGI.

The chosen scheme (`security.py`) verifies the credentials; this middleware only finds
them, answers 401 without them and hands the Principal to the routes through
`scope["state"]`. It runs before any body is read and treats HTTP, SSE and WebSocket the
same way: a WebSocket is authenticated at the handshake and refused before it is
accepted (HTTP 401 with the error body). Browsers, which cannot set headers on
`EventSource` or `WebSocket`, send `?ticket=` instead (see `tickets.py`): accepted on GET
requests and WebSocket handshakes only, and only when no header credentials came.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import structlog
from redis.exceptions import RedisError
from starlette.datastructures import Headers, QueryParams
from starlette.types import ASGIApp, Receive, Scope, Send

from ..errors import error_response
from ..principal import ANONYMOUS, AuthenticationError, Authenticator, Principal
from ..tickets import redeem_ticket

if TYPE_CHECKING:
    from ..resources import Resources

PUBLIC_PATHS = frozenset(
    {"/health", "/health/ready", "/metrics", "/docs", "/docs/oauth2-redirect", "/openapi.json"}
)
PRINCIPAL_KEY = "principal"

log = structlog.get_logger(__name__)


class AuthMiddleware:
    def __init__(self, app: ASGIApp, authenticator: Authenticator) -> None:
        self.app = app
        self.authenticator = authenticator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or scope["path"] in PUBLIC_PATHS:
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        if not self.authenticator.required:
            state[PRINCIPAL_KEY] = ANONYMOUS
            await self.app(scope, receive, send)
            return
        challenge = {"WWW-Authenticate": self.authenticator.scheme}
        credentials = self.authenticator.credentials(Headers(scope=scope))
        try:
            if credentials:
                principal = await self.authenticator.authenticate(credentials)
            else:
                principal = await self.from_ticket(scope)
        except AuthenticationError as exc:
            message = (
                "authentication required"
                if exc.code == "missing_credentials"
                else "credentials are not valid"
            )
            response = error_response(401, exc.code, message, headers=challenge)
        except RedisError:
            log.error("ticket_store_unavailable")
            response = error_response(
                503, "service_unavailable", "a backing service is unavailable; retry later"
            )
        else:
            state[PRINCIPAL_KEY] = principal
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket" and "websocket.http.response" not in scope.get(
            "extensions", {}
        ):
            # A server without ASGI denial responses: close before accepting (HTTP 403).
            await send({"type": "websocket.close", "code": 1008})
            return
        # On a WebSocket this is the handshake's answer (ASGI denial response): the
        # connection is never accepted.
        await response(scope, receive, send)

    async def from_ticket(self, scope: Scope) -> Principal:
        ticket = QueryParams(scope["query_string"]).get("ticket")
        if ticket is None or (scope["type"] == "http" and scope["method"] != "GET"):
            raise AuthenticationError("missing_credentials")
        resources: Resources = scope["state"]["resources"]
        prefix = resources.settings.redis_key_prefix
        principal = await redeem_ticket(resources.redis, prefix, ticket)
        if principal is None:
            raise AuthenticationError("invalid_ticket")
        return principal
