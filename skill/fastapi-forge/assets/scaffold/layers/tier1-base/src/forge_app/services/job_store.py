"""Jobs in Redis hashes (`<prefix>job:<id>`), with the conditional update as a Lua script
so a status check and its change are one atomic step."""

from __future__ import annotations

import json
import uuid
from collections.abc import Collection
from datetime import datetime
from typing import TYPE_CHECKING, Any

from redis.asyncio import Redis

from ..models.schemas import JobStatus
from .jobs import JobRecord, utcnow

if TYPE_CHECKING:
    from ..config import Settings
    from ..db.session import Database

# KEYS[1] job key; ARGV[1] JSON list of allowed statuses; ARGV[2] JSON object of changes;
# ARGV[3] TTL in seconds (0: none); ARGV[4] if not empty: only when the lease (heartbeat_at,
# an ISO timestamp in UTC, which sorts as text) is older. Returns the updated hash, or nil.
UPDATE_SCRIPT = """
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return nil end
local allowed = false
for _, s in ipairs(cjson.decode(ARGV[1])) do
  if s == status then allowed = true end
end
if not allowed then return nil end
if ARGV[4] ~= '' then
  local lease = redis.call('HGET', KEYS[1], 'heartbeat_at')
  if not lease or lease == '' or lease >= ARGV[4] then return nil end
end
for field, value in pairs(cjson.decode(ARGV[2])) do
  redis.call('HSET', KEYS[1], field, value)
end
if tonumber(ARGV[3]) > 0 then redis.call('EXPIRE', KEYS[1], ARGV[3]) end
return redis.call('HGETALL', KEYS[1])
"""

JSON_FIELDS = {"usage", "cancel_requested", "progress"}


def encode(changes: dict[str, Any]) -> dict[str, str]:
    encoded: dict[str, str] = {}
    for key, value in changes.items():
        if isinstance(value, datetime):
            encoded[key] = value.isoformat()
        elif isinstance(value, JobStatus):
            encoded[key] = value.value
        elif key in JSON_FIELDS:
            encoded[key] = json.dumps(value)
        elif value is None:
            encoded[key] = ""
        else:
            encoded[key] = str(value)
    return encoded


def decode(raw: dict[str, str]) -> JobRecord:
    data: dict[str, Any] = {}
    for key, value in raw.items():
        if key in JSON_FIELDS:
            data[key] = json.loads(value)
        else:
            data[key] = value or None
    return JobRecord.model_validate(data)


class RedisJobStore:
    def __init__(self, redis: Redis, *, prefix: str, ttl_seconds: int) -> None:
        self.redis = redis
        self.prefix = prefix
        self.ttl_seconds = ttl_seconds
        self.update_script = redis.register_script(UPDATE_SCRIPT)

    def key(self, job_id: str) -> str:
        return f"{self.prefix}job:{job_id}"

    async def create(self, *, owner: str, prompt: str, model: str | None) -> JobRecord:
        job = JobRecord(
            job_id=uuid.uuid4(),
            status=JobStatus.QUEUED,
            progress=0.0,
            created_at=utcnow(),
            owner=owner,
            prompt=prompt,
            model=model,
        )
        key = self.key(str(job.job_id))
        fields = encode(job.model_dump(exclude_none=True))
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping=fields)
            if self.ttl_seconds:
                pipe.expire(key, self.ttl_seconds)
            await pipe.execute()
        return job

    async def get(self, job_id: str) -> JobRecord | None:
        raw = await self.redis.hgetall(self.key(job_id))
        return decode(raw) if raw else None

    async def update(
        self, job_id: str, *, when: Collection[JobStatus], **changes: Any
    ) -> JobRecord | None:
        return await self._update(self.key(job_id), when, changes, leased_before="")

    async def _update(
        self, key: str, when: Collection[JobStatus], changes: dict[str, Any], leased_before: str
    ) -> JobRecord | None:
        result = await self.update_script(
            keys=[key],
            args=[
                json.dumps([status.value for status in when]),
                json.dumps(encode(changes)),
                self.ttl_seconds,
                leased_before,
            ],
        )
        if not result:
            return None
        pairs = iter(result)
        return decode(dict(zip(pairs, pairs, strict=True)))

    async def fail_stale(self, *, leased_before: datetime, error: str) -> int:
        # No index of running jobs: a SCAN over this app's job keys, each checked and
        # changed atomically by the script (a lease renewed meanwhile is left alone).
        changes = {"status": JobStatus.FAILED, "error": error, "finished_at": utcnow()}
        count = 0
        async for key in self.redis.scan_iter(match=f"{self.prefix}job:*", count=500):
            failed = await self._update(
                key, {JobStatus.RUNNING}, changes, leased_before=leased_before.isoformat()
            )
            count += failed is not None
        return count


def build_job_store(
    settings: Settings, *, redis: Redis, database: Database | None
) -> RedisJobStore:
    return RedisJobStore(
        redis, prefix=settings.redis_key_prefix, ttl_seconds=settings.job_ttl_seconds
    )
