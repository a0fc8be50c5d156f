"""Fixed-window rate limiting in Redis, shared by every worker process, as pure ASGI.

One Lua script increments the window's counter and sets its expiry atomically, so the
limit holds across uvicorn workers and replicas. It runs after authentication and counts
per caller (the principal's subject: one budget per user or API key, whichever address
they come from); callers without credentials (`--auth none`) are counted per client
address (put uvicorn behind the proxy with `--proxy-headers --forwarded-allow-ips`).

When Redis does not answer within REDIS_TIMEOUT_SECONDS the request passes unchecked
(fail open: logged and counted in `rate_limit_unchecked_total`; /health/ready reports
Redis down). A limit on spending, unlike this one, must fail closed.
"""

from __future__ import annotations

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


class RateLimitMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        # Registered once: redis-py then sends EVALSHA, not the script text, per request.
        self._window: AsyncScript | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in EXEMPT_PATHS:
            await self.app(scope, receive, send)
            return
        resources: Resources = scope["state"]["resources"]
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
            await self.app(scope, receive, send)
            return
        remaining = max(0, limit - int(count))
        if int(count) > limit:
            response = error_response(
                429,
                "rate_limited",
                "too many requests; retry later",
                headers={
                    "Retry-After": str(max(1, int(ttl))),
                    "X-RateLimit-Limit": str(limit),
                    "X-RateLimit-Remaining": "0",
                },
            )
            await response(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append((b"x-ratelimit-limit", str(limit).encode()))
                headers.append((b"x-ratelimit-remaining", str(remaining).encode()))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)
