"""Fixed-window rate limiting in Redis, shared by every worker process, as pure ASGI.

One Lua script increments the window's counter and sets its expiry atomically, so the
limit holds across uvicorn workers and replicas. It runs after authentication and counts
per caller (the principal's subject: one budget per user or API key, whichever address
they come from); callers without credentials (`--auth none`) are counted per client
address (put uvicorn behind the proxy with `--proxy-headers --forwarded-allow-ips`).
A WebSocket handshake counts as a request, and each run over the socket as another.

When Redis does not answer within REDIS_TIMEOUT_SECONDS the request passes unchecked
(fail open: logged and counted in `rate_limit_unchecked_total`; /health/ready reports
Redis down). A limit on spending, unlike this one, must fail closed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import structlog
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import error_response
from ..metrics import RATE_LIMIT_UNCHECKED
from ..principal import ANONYMOUS, Principal
from .auth import PRINCIPAL_KEY

if TYPE_CHECKING:
    from ..resources import Resources

EXEMPT_PATHS = frozenset({"/health", "/health/ready", "/metrics"})

# Returns {count in this window, seconds until the window resets}.
WINDOW_SCRIPT = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then
  redis.call('EXPIRE', KEYS[1], ARGV[1])
end
local ttl = redis.call('TTL', KEYS[1])
if ttl < 0 then
  redis.call('EXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {count, ttl}
"""

log = structlog.get_logger(__name__)


def rate_key(scope: Scope) -> str:
    principal = scope.get("state", {}).get(PRINCIPAL_KEY)
    if isinstance(principal, Principal) and principal is not ANONYMOUS:
        return f"user:{principal.subject}"
    client = scope.get("client")
    return f"ip:{client[0] if client else 'unknown'}"


@dataclass(frozen=True, slots=True)
class RateDecision:
    allowed: bool
    limit: int
    remaining: int
    retry_after: int


class RateLimiter:
    def __init__(self) -> None:
        # Registered once: redis-py then sends EVALSHA, not the script text, per request.
        self._window: AsyncScript | None = None

    async def hit(self, resources: Resources, scope: Scope) -> RateDecision | None:
        """Counts one request (or WebSocket run) of the caller; None when Redis did not
        answer and the request passes unchecked."""
        settings = resources.settings
        limit = settings.rate_limit_requests
        key = f"{settings.redis_key_prefix}ratelimit:{rate_key(scope)}"
        try:
            if self._window is None or self._window.registered_client is not resources.redis:
                self._window = resources.redis.register_script(WINDOW_SCRIPT)
            count, ttl = await self._window(keys=[key], args=[settings.rate_limit_window_seconds])
        except RedisError:
            log.warning("rate_limit_unchecked", reason="redis_unavailable")
            RATE_LIMIT_UNCHECKED.inc()
            return None
        return RateDecision(
            allowed=int(count) <= limit,
            limit=limit,
            remaining=max(0, limit - int(count)),
            retry_after=max(1, int(ttl)),
        )


# One per process, shared by the middleware and the WebSocket route (a run over a socket
# costs what a request does).
RATE_LIMITER = RateLimiter()


class RateLimitMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or scope["path"] in EXEMPT_PATHS:
            await self.app(scope, receive, send)
            return
        decision = await RATE_LIMITER.hit(scope["state"]["resources"], scope)
        if decision is None:
            await self.app(scope, receive, send)
            return
        limit = str(decision.limit)
        if not decision.allowed:
            # On a WebSocket this answers the handshake, as authentication does.
            response = error_response(
                429,
                "rate_limited",
                "too many requests; retry later",
                headers={
                    "Retry-After": str(decision.retry_after),
                    "X-RateLimit-Limit": limit,
                    "X-RateLimit-Remaining": "0",
                },
            )
            await response(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append((b"x-ratelimit-limit", limit.encode()))
                headers.append((b"x-ratelimit-remaining", str(decision.remaining).encode()))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)
