"""Fixed-window rate limiting in Redis, shared by every worker process, as pure ASGI.

One Lua script increments the window's counter and sets its expiry atomically, so the
limit holds across uvicorn workers and replicas. The requests that reach the limiter in
the same turn of the event loop share one call of the script (one Redis round trip):
each caller's counter goes up by its number of requests there, and each request gets its
own position in the window, so the limit stays exact. It runs after authentication and counts
per caller (the principal's subject: one budget per user or API key, whichever address
they come from); callers without credentials (`--auth none`) are counted per client
address (put uvicorn behind the proxy with `--proxy-headers --forwarded-allow-ips`).
A WebSocket handshake counts as a request, and each run over the socket as another.

When Redis does not answer within REDIS_TIMEOUT_SECONDS the request passes unchecked
(fail open: logged and counted in `rate_limit_unchecked_total`; /health/ready reports
Redis down). A limit on spending, unlike this one, must fail closed.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
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

# KEYS: the counters; ARGV: the window in seconds, then each counter's increment. Returns
# {count, seconds until the window resets} per counter, flattened.
WINDOW_SCRIPT = """
local out = {}
for i, key in ipairs(KEYS) do
  local count = redis.call('INCRBY', key, ARGV[i + 1])
  local ttl = redis.call('TTL', key)
  if ttl < 0 then
    redis.call('EXPIRE', key, ARGV[1])
    ttl = tonumber(ARGV[1])
  end
  out[2 * i - 1] = count
  out[2 * i] = ttl
end
return out
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


@dataclass(slots=True)
class Batch:
    """The hits of one turn of the event loop: key -> the futures of its requests, in order."""

    resources: Resources
    waiting: dict[str, list[asyncio.Future[tuple[int, int]]]] = field(default_factory=dict)
    sender: asyncio.Task[None] = field(init=False)


class RateLimiter:
    def __init__(self) -> None:
        # Registered once: redis-py then sends EVALSHA, not the script text, per call.
        self._window: AsyncScript | None = None
        self._batches: dict[int, Batch] = {}
        self._sending: set[asyncio.Task[None]] = set()

    async def hit(self, resources: Resources, scope: Scope) -> RateDecision | None:
        """Counts one request (or WebSocket run) of the caller; None when Redis did not
        answer and the request passes unchecked."""
        settings = resources.settings
        limit = settings.rate_limit_requests
        key = f"{settings.redis_key_prefix}ratelimit:{rate_key(scope)}"
        future: asyncio.Future[tuple[int, int]] = asyncio.get_running_loop().create_future()
        self._batch(resources).waiting.setdefault(key, []).append(future)
        try:
            count, ttl = await future
        except RedisError:
            log.warning("rate_limit_unchecked", reason="redis_unavailable")
            RATE_LIMIT_UNCHECKED.inc()
            return None
        return RateDecision(
            allowed=count <= limit,
            limit=limit,
            remaining=max(0, limit - count),
            retry_after=max(1, ttl),
        )

    def _batch(self, resources: Resources) -> Batch:
        batch = self._batches.get(id(resources))
        if batch is not None and batch.resources is resources and not batch.sender.done():
            return batch
        batch = self._batches[id(resources)] = Batch(resources)
        # The task runs on the loop's next turn, once this turn's requests have joined.
        batch.sender = asyncio.get_running_loop().create_task(self._send(batch))
        self._sending.add(batch.sender)
        batch.sender.add_done_callback(self._sending.discard)
        return batch

    async def _send(self, batch: Batch) -> None:
        if self._batches.get(id(batch.resources)) is batch:
            del self._batches[id(batch.resources)]
        redis = batch.resources.redis
        keys = list(batch.waiting)
        try:
            if self._window is None or self._window.registered_client is not redis:
                self._window = redis.register_script(WINDOW_SCRIPT)
            window = batch.resources.settings.rate_limit_window_seconds
            increments = [len(batch.waiting[key]) for key in keys]
            out = await self._window(keys=keys, args=[window, *increments])
        except BaseException as exc:
            # Every waiting request learns it (RedisError: they pass unchecked), also
            # when this task is cancelled: none may wait forever.
            error = exc if isinstance(exc, Exception) else RedisError("rate limit cancelled")
            for futures in batch.waiting.values():
                for future in futures:
                    if not future.done():
                        future.set_exception(error)
            if error is not exc:
                raise
            return
        for i, key in enumerate(keys):
            futures = batch.waiting[key]
            total, ttl = int(out[2 * i]), int(out[2 * i + 1])
            # The counter rose by len(futures): the requests hold the last positions.
            for position, future in enumerate(futures, start=total - len(futures) + 1):
                if not future.done():
                    future.set_result((position, ttl))


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
