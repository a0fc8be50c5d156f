"""agent-service on the system's event bus. Tier 2 mounts this module into the Tier 1
project; `hooks.py` finds it (a standalone project has none).

- A job that reaches a final state publishes `agent.run.finished` through the outbox, in
  the transaction that records that state (API process or worker, whichever finishes it).
- `user.deleted` cancels the user's queued and running jobs, once per event (inbox).
- The API process runs the outbox relay and the consumer; the worker only writes rows.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

# isort: split
# The shared packages are renamed with the system; a block of their own sorts the same
# under any name.
from forge_app_common import (
    TOPIC_AGENTS,
    TOPIC_USERS,
    AgentRunFinished,
    Envelope,
    UserDeleted,
    parse_event,
)
from forge_app_platform.app import background_loops
from forge_app_platform.broker import create_broker
from forge_app_platform.inbox import idempotent
from forge_app_platform.outbox import add_event, run_relay
from forge_app_platform.tables import OutboxEvent

from .hooks import Hooks
from .models.database import AgentJob
from .models.schemas import JobStatus
from .resources import Resources
from .services.job_store import to_record
from .services.jobs import JobQueue, JobRecord, utcnow
from .system_settings import BusSettings

log = structlog.get_logger(__name__)
PRODUCER = CONSUMER = "agent-service"


async def publish_finished(session: AsyncSession, job: JobRecord) -> None:
    """`job_changed` hook: one event per job, written with its final state."""
    if not job.status.terminal:
        return
    try:
        user_id = uuid.UUID(job.owner)
    except ValueError:  # not a user of the system (a service token): nobody to notify
        log.info("run_finished_not_published", job_id=str(job.job_id))
        return
    event = AgentRunFinished(
        job_id=job.job_id, user_id=user_id, status=job.status.value, error=job.error
    )
    add_event(session, TOPIC_AGENTS, Envelope.wrap(event, producer=PRODUCER))


async def cancel_jobs_of_deleted_user(session: AsyncSession, envelope: Envelope) -> None:
    """Inbox handler: queued jobs end here (their `agent.run.finished` in this same
    transaction); running ones are marked, and stopped by `stop_running_jobs`."""
    event = parse_event(envelope)
    if not isinstance(event, UserDeleted):
        return
    owner = str(event.user_id)
    dropped = await session.scalars(
        update(AgentJob)
        .where(AgentJob.owner == owner, AgentJob.status == JobStatus.QUEUED.value)
        .values(status=JobStatus.CANCELLED.value, cancel_requested=True, finished_at=utcnow())
        .returning(AgentJob)
    )
    for row in dropped.all():
        await publish_finished(session, to_record(row))
    await session.execute(
        update(AgentJob)
        .where(AgentJob.owner == owner, AgentJob.status == JobStatus.RUNNING.value)
        .values(cancel_requested=True)
    )


async def stop_running_jobs(
    sessions: async_sessionmaker[AsyncSession], queue: JobQueue, envelope: Envelope
) -> None:
    """Interrupts the deleted user's running jobs; the worker records them as cancelled
    (and publishes their `agent.run.finished`). Runs after every delivery, repeats too:
    a crash between the inbox commit and this signal must not leave a job running."""
    event = parse_event(envelope)
    if not isinstance(event, UserDeleted):
        return
    async with sessions() as session:
        running = await session.scalars(
            select(AgentJob.job_id).where(
                AgentJob.owner == str(event.user_id),
                AgentJob.status.in_([JobStatus.QUEUED.value, JobStatus.RUNNING.value]),
                AgentJob.cancel_requested.is_(True),
            )
        )
        job_ids = [str(job_id) for job_id in running]
    for job_id in job_ids:
        await queue.cancel(job_id, wait_seconds=0)


@asynccontextmanager
async def on_the_bus(resources: Resources) -> AsyncIterator[None]:
    """`api_lifespan` hook: the outbox relay and the `user.deleted` consumer."""
    assert resources.database is not None, "agent-service always has its database"
    settings = BusSettings()
    sessions = resources.database.sessions
    broker = create_broker(settings)
    await broker.start()
    stop = asyncio.Event()
    apply_once = idempotent(sessions, TOPIC_USERS, CONSUMER, cancel_jobs_of_deleted_user)

    async def handle(envelope: Envelope) -> None:
        await apply_once(envelope)
        await stop_running_jobs(sessions, resources.queue, envelope)

    loops = {
        "outbox_relay": lambda: run_relay(sessions, broker, stop, settings.outbox_poll_seconds),
        "consume_user_events": lambda: broker.consume(TOPIC_USERS, CONSUMER, handle, stop),
    }
    try:
        async with background_loops(loops, stop):
            yield
    finally:
        await broker.close()


HOOKS = Hooks(
    job_changed=[publish_finished],
    api_lifespan=[on_the_bus],
    metadata=[OutboxEvent.metadata],
)
