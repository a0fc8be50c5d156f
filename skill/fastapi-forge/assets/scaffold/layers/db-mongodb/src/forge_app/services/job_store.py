"""Jobs in MongoDB (collection `agent_jobs`, `_id` = job id); each transition is one
`find_one_and_update` filtered on the current status, so it is atomic."""

from __future__ import annotations

import uuid
from collections.abc import Collection
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pymongo import ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from redis.asyncio import Redis

from ..models.schemas import JobStatus
from .jobs import JobRecord, utcnow

if TYPE_CHECKING:
    from ..config import Settings
    from ..db.session import Database


def to_record(document: dict[str, Any]) -> JobRecord:
    return JobRecord.model_validate({**document, "job_id": document["_id"]})


def to_document(changes: dict[str, Any]) -> dict[str, Any]:
    return {k: v.value if isinstance(v, JobStatus) else v for k, v in changes.items()}


class MongoJobStore:
    def __init__(self, collection: AsyncCollection[dict[str, Any]]) -> None:
        self.collection = collection

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
        document = job.model_dump(mode="python", exclude={"job_id"})
        document["_id"] = str(job.job_id)
        await self.collection.insert_one(to_document(document))
        return job

    async def get(self, job_id: str) -> JobRecord | None:
        document = await self.collection.find_one({"_id": job_id})
        return to_record(document) if document is not None else None

    async def update(
        self, job_id: str, *, when: Collection[JobStatus], **changes: Any
    ) -> JobRecord | None:
        document = await self.collection.find_one_and_update(
            {"_id": job_id, "status": {"$in": [status.value for status in when]}},
            {"$set": to_document(changes)},
            return_document=ReturnDocument.AFTER,
        )
        return to_record(document) if document is not None else None

    async def fail_stale(self, *, leased_before: datetime, error: str) -> int:
        result = await self.collection.update_many(
            {"status": JobStatus.RUNNING.value, "heartbeat_at": {"$lt": leased_before}},
            {"$set": {"status": JobStatus.FAILED.value, "error": error, "finished_at": utcnow()}},
        )
        return result.modified_count


def build_job_store(
    settings: Settings, *, redis: Redis, database: Database | None
) -> MongoJobStore:
    assert database is not None, "MongoDB projects always open the database"
    return MongoJobStore(database.db["agent_jobs"])
