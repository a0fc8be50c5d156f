"""`job_changed` hooks (hooks.py) run inside the transition's transaction: they see the
change, their writes commit with it, and a hook that fails undoes the transition."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from forge_app.db.session import Database, DatabaseSettings
from forge_app.models.schemas import JobStatus
from forge_app.services.job_store import SqlJobStore
from forge_app.services.jobs import JobRecord

pytestmark = pytest.mark.uses_database


async def test_hooks_share_the_transition_transaction(database_settings: dict[str, Any]) -> None:
    database = Database(DatabaseSettings(**database_settings))
    seen: list[str] = []

    async def record(session: AsyncSession, job: JobRecord) -> None:
        stored = await session.scalar(
            text("SELECT status FROM agent_jobs WHERE id = :id"), {"id": job.job_id}
        )
        seen.append(f"{job.status.value}/{stored}")

    async def refuse(session: AsyncSession, job: JobRecord) -> None:
        raise RuntimeError("hook failed")

    try:
        store = SqlJobStore(database.sessions, [record])
        job = await store.create(owner="hooks", prompt="p", model=None)
        started = await store.update(str(job.job_id), when={JobStatus.QUEUED}, status="running")
        assert started is not None
        assert seen == ["running/running"]

        failing = SqlJobStore(database.sessions, [record, refuse])
        with pytest.raises(RuntimeError, match="hook failed"):
            await failing.update(str(job.job_id), when={JobStatus.RUNNING}, status="failed")
        current = await store.get(str(job.job_id))
        assert current is not None
        assert current.status is JobStatus.RUNNING
        # A refused transition calls no hook at all.
        assert await store.update(str(job.job_id), when={JobStatus.QUEUED}, progress=0.5) is None
        assert seen == ["running/running", "failed/failed"]
    finally:
        await database.close()
