"""`Idempotency-Key` on POST /agents/run/async (draft-ietf-httpapi-idempotency-key-header):
a retried submit gets the first job again instead of paying for a second run.

As Tier 3's POST /orders does: keys are per caller, the request is fingerprinted from its
validated body, and the same key with another body is refused (422
idempotency_key_reused). The claim lives in Redis, which every project has whatever its
job store: `SET NX` decides which of concurrent duplicates submits; the others wait for
its job id and replay that job, so none is answered "in progress" unless the first
request takes longer than CLAIM_WAIT_SECONDS."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from typing import TYPE_CHECKING

from redis.asyncio import Redis

from ..errors import AppError

if TYPE_CHECKING:
    from ..models.schemas import RunRequest

REPLAYED_HEADER = "Idempotent-Replayed"
# A claim whose request died before it stored its job frees the key after this long.
CLAIM_SECONDS = 60
CLAIM_WAIT_SECONDS = 10.0


def fingerprint(body: RunRequest) -> str:
    """Of the validated body: a retry that only reformats its JSON is the same request."""
    return hashlib.sha256(f"POST /agents/run/async\n{body.model_dump_json()}".encode()).hexdigest()


class IdempotencyKeys:
    def __init__(self, redis: Redis, *, prefix: str, ttl_seconds: int) -> None:
        self.redis = redis
        self.prefix = prefix
        self.ttl_seconds = ttl_seconds

    def name(self, owner: str, key: str) -> str:
        digest = hashlib.sha256(f"{owner}\n{key}".encode()).hexdigest()
        return f"{self.prefix}idempotency:{digest}"

    async def claim(self, owner: str, key: str, request_fingerprint: str) -> str | None:
        """None: the key is this request's (submit, then `bind`). Otherwise the job id of
        the earlier request with this key and body."""
        name = self.name(owner, key)
        pending = json.dumps({"fingerprint": request_fingerprint, "job_id": ""})
        deadline = time.monotonic() + CLAIM_WAIT_SECONDS
        while True:
            if await self.redis.set(name, pending, nx=True, ex=CLAIM_SECONDS):
                return None
            raw = await self.redis.get(name)
            if raw is None:
                continue  # released or expired in between: try to claim it again
            earlier = json.loads(raw)
            if earlier["fingerprint"] != request_fingerprint:
                raise AppError(
                    422,
                    "idempotency_key_reused",
                    "this Idempotency-Key was used with another request body; "
                    "use a new key for a new job",
                )
            if earlier["job_id"]:
                job_id: str = earlier["job_id"]
                return job_id
            if time.monotonic() > deadline:
                raise AppError(
                    409,
                    "idempotency_key_in_use",
                    "a request with this Idempotency-Key is still being processed; retry",
                    headers={"Retry-After": "1"},
                )
            await asyncio.sleep(0.05)

    async def bind(self, owner: str, key: str, request_fingerprint: str, job_id: str) -> None:
        value = json.dumps({"fingerprint": request_fingerprint, "job_id": job_id})
        await self.redis.set(self.name(owner, key), value, ex=self.ttl_seconds)

    async def release(self, owner: str, key: str) -> None:
        await self.redis.delete(self.name(owner, key))
