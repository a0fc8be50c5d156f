"""The cap on one caller's agent runs at once (AGENT_MAX_CONCURRENT_RUNS_PER_USER), shared
by every worker process and replica through Redis, whatever the transport: POST
/agents/run and an SSE stream hold a slot for as long as their response lasts, a
WebSocket one per run (not while idle). Jobs (POST /agents/run/async) are not counted:
they wait in the queue for one of WORKER_CONCURRENCY slots and hold no connection.

A caller's slots are a sorted set of run ids scored by lease expiry (Redis time), so a
slot whose process was killed before it could release frees itself after
AGENT_RUN_LEASE_SECONDS; a live run renews its lease every third of that. As the rate
limiter, it fails open when Redis does not answer (the per-process cap still holds).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import anyio
import structlog
from pydantic import Field
from pydantic_settings import BaseSettings
from redis.exceptions import RedisError

from ..errors import AppError
from ..metrics import RATE_LIMIT_UNCHECKED

if TYPE_CHECKING:
    from ..resources import Resources

log = structlog.get_logger(__name__)


class RunSlotSettings(BaseSettings):
    # One caller's runs at once, in all processes (POST /agents/run, SSE streams, WebSocket
    # runs; not jobs): more get 429 too_many_concurrent_runs. A slot its process could not
    # release (killed) frees itself after AGENT_RUN_LEASE_SECONDS.
    agent_max_concurrent_runs_per_user: int = Field(default=3, ge=1)
    agent_run_lease_seconds: float = Field(default=30.0, ge=1)


# No run announces its end: a client may try again after this long.
RETRY_AFTER_SECONDS = 5

# KEYS[1] the caller's set; ARGV[1] cap, ARGV[2] lease (ms), ARGV[3] run id. 1: taken.
ACQUIRE_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""
# KEYS[1] the caller's set; ARGV[1] lease (ms), ARGV[2] run id. 0: the slot had expired.
RENEW_SCRIPT = """
if not redis.call('ZSCORE', KEYS[1], ARGV[2]) then return 0 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[1]), ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1
"""


def too_many_runs(limit: int) -> AppError:
    return AppError(
        429,
        "too_many_concurrent_runs",
        f"at most {limit} agent runs at once per caller; retry when one has ended",
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


@contextlib.asynccontextmanager
async def run_slot(resources: Resources, caller: str) -> AsyncIterator[None]:
    """One of `caller`'s run slots for the block (`caller`: the rate limiter's key);
    AppError 429 too_many_concurrent_runs when all are taken. Released however the block
    ends, cancellation included."""
    settings, redis = resources.settings, resources.redis
    key = f"{settings.redis_key_prefix}runs:{caller}"
    run_id = secrets.token_hex(8)
    lease_ms = int(settings.agent_run_lease_seconds * 1000)
    limit = settings.agent_max_concurrent_runs_per_user
    try:
        taken = await redis.register_script(ACQUIRE_SCRIPT)(
            keys=[key], args=[limit, lease_ms, run_id]
        )
    except RedisError:
        log.warning("run_slot_unchecked", reason="redis_unavailable")
        RATE_LIMIT_UNCHECKED.inc()
        yield
        return
    if not int(taken):
        raise too_many_runs(limit)

    renew_script = redis.register_script(RENEW_SCRIPT)

    released = False

    async def renew() -> None:
        # Stops at `released` too, not only when cancelled: a cancellation that lands in
        # the Redis call may come out as a RedisError, which the loop must not outlive.
        while not released:
            await asyncio.sleep(settings.agent_run_lease_seconds / 3)
            if released:
                return
            with contextlib.suppress(RedisError):
                await renew_script(keys=[key], args=[lease_ms, run_id])

    renewer = asyncio.create_task(renew())
    try:
        yield
    finally:
        released = True
        renewer.cancel()
        # A client that left cancels this block again and again: the release must
        # still reach Redis (bounded by REDIS_TIMEOUT_SECONDS), or the slot stays taken
        # until its lease expires. The renewer is waited for a bounded time as well.
        with anyio.CancelScope(shield=True):
            await asyncio.wait([renewer], timeout=settings.redis_timeout_seconds)
            try:
                await redis.zrem(key, run_id)
            except RedisError:
                log.warning("run_slot_not_released", reason="redis_unavailable")
