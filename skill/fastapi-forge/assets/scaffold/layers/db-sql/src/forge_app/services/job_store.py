"""Jobs in PostgreSQL (table `agent_jobs`); each transition is one conditional UPDATE,
in a transaction the `job_changed` hooks (hooks.py) write into."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from redis.asyncio import Redis
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ..hooks import JobChanged, load_hooks
from ..models.database import AgentJob
from ..models.schemas import JobStatus
from .jobs import JobRecord, utcnow

if TYPE_CHECKING:
    from ..config import Settings
    from ..db.session import Database


def to_record(row: AgentJob) -> JobRecord:
    return JobRecord.model_validate(row, from_attributes=True)


def parse_id(job_id: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(job_id)
    except ValueError:
        return None


class SqlJobStore:
    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], on_change: Sequence[JobChanged] = ()
    ) -> None:
        self.sessions = sessions
        self.on_change = on_change

    async def create(self, *, owner: str, prompt: str, model: str | None) -> JobRecord:
        row = AgentJob(
            job_id=uuid.uuid4(),
            owner=owner,
            prompt=prompt,
            model=model,
            status=JobStatus.QUEUED.value,
            progress=0.0,
            usage=[],
            cancel_requested=False,
            created_at=utcnow(),
        )
        async with self.sessions.begin() as session:
            session.add(row)
        return to_record(row)

    async def get(self, job_id: str) -> JobRecord | None:
        key = parse_id(job_id)
        if key is None:
            return None
        async with self.sessions() as session:
            row = await session.scalar(select(AgentJob).where(AgentJob.job_id == key))
            return to_record(row) if row is not None else None

    async def update(
        self, job_id: str, *, when: Collection[JobStatus], **changes: Any
    ) -> JobRecord | None:
        key = parse_id(job_id)
        if key is None:
            return None
        values = {k: v.value if isinstance(v, JobStatus) else v for k, v in changes.items()}
        statement = (
            update(AgentJob)
            .where(AgentJob.job_id == key, AgentJob.status.in_([s.value for s in when]))
            .values(**values)
            .returning(AgentJob)
        )
        async with self.sessions.begin() as session:
            row = await session.scalar(statement)
            if row is None:
                return None
            record = to_record(row)
            for hook in self.on_change:
                await hook(session, record)
            return record

    async def fail_stale(self, *, leased_before: datetime, error: str) -> int:
        # Jobs started before their lease was recorded fall back to their start time.
        lease = func.coalesce(AgentJob.heartbeat_at, AgentJob.started_at)
        statement = (
            update(AgentJob)
            .where(AgentJob.status == JobStatus.RUNNING.value, lease < leased_before)
            .values(status=JobStatus.FAILED.value, error=error, finished_at=utcnow())
            .returning(AgentJob)
        )
        async with self.sessions.begin() as session:
            rows = (await session.scalars(statement)).all()
            for row in rows:
                record = to_record(row)
                for hook in self.on_change:
                    await hook(session, record)
            return len(rows)


def build_job_store(settings: Settings, *, redis: Redis, database: Database | None) -> SqlJobStore:
    assert database is not None, "PostgreSQL projects always open the database"
    return SqlJobStore(database.sessions, load_hooks().job_changed)
