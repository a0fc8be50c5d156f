"""`uvicorn --factory order_command.relay:create_app`: the outbox relay of the order
database as its own deployable (scaled apart from the API; replicas share the work through
SKIP LOCKED), plus the event log feed that read models are rebuilt from.

Not routed by the gateway: only other services (order-query's rebuild) read the feed, with
a service token (user-service's client-credentials grant, audience order-command) of a
service listed in EVENT_FEED_READERS; a user's token gets 401.
"""

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta
from typing import Annotated, cast

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, status
from prometheus_client import Gauge
from pydantic import BaseModel
from sqlalchemy import delete, func, select

from forge_app_common import Envelope
from forge_app_platform.app import (
    Runtime,
    RuntimeDep,
    create_service_app,
)
from forge_app_platform.auth import CallingService, Principal
from forge_app_platform.outbox import run_relay
from forge_app_platform.tables import OutboxEvent

from .config import Settings, get_settings
from .models import IdempotencyKey, StoredEvent

OUTBOX_LAG = Gauge(
    "outbox_oldest_unpublished_age_seconds",
    "Age of the oldest committed event the relay has not published yet (0: none).",
)
OUTBOX_UNPUBLISHED = Gauge("outbox_unpublished_events", "Committed events not published yet.")


async def feed_reader(principal: CallingService, runtime: RuntimeDep) -> Principal:
    # The log holds every customer's orders: only listed services read it.
    if principal.service not in cast(Settings, runtime.settings).event_feed_readers:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, "the event log is readable by reader services only"
        )
    return principal


feed = APIRouter(prefix="/events", tags=["event log"], dependencies=[Depends(feed_reader)])


class LoggedEvent(BaseModel):
    position: int
    event: Envelope


class EventPage(BaseModel):
    events: list[LoggedEvent]
    # Pass as `after` for the next page; equal to `after` when the log has nothing newer.
    next_after: int


@feed.get("")
async def read_log(
    runtime: RuntimeDep,
    after: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1)] = 500,
) -> EventPage:
    settings = cast(Settings, runtime.settings)
    async with runtime.db.sessions() as session:
        rows = (
            await session.scalars(
                select(StoredEvent)
                .where(StoredEvent.position > after)
                .order_by(StoredEvent.position)
                .limit(min(limit, settings.event_feed_max_page))
            )
        ).all()
    events = [
        LoggedEvent(position=row.position, event=Envelope.model_validate(row.envelope))
        for row in rows
    ]
    return EventPage(events=events, next_after=rows[-1].position if rows else after)


async def outbox_relay(runtime: Runtime) -> None:
    await run_relay(
        runtime.db.sessions, runtime.broker, runtime.stop, runtime.settings.outbox_poll_seconds
    )


async def watch_outbox(runtime: Runtime) -> None:
    """Exports the relay's lag; deletes published rows and idempotency keys past their
    retention."""
    settings = cast(Settings, runtime.settings)
    while not runtime.stop.is_set():
        async with runtime.db.sessions() as session, session.begin():
            oldest, waiting = (
                await session.execute(
                    select(func.min(OutboxEvent.created_at), func.count()).where(
                        OutboxEvent.published_at.is_(None)
                    )
                )
            ).one()
            cutoff = datetime.now(UTC) - timedelta(hours=settings.outbox_retention_hours)
            await session.execute(delete(OutboxEvent).where(OutboxEvent.published_at < cutoff))
            keys_cutoff = datetime.now(UTC) - timedelta(
                hours=settings.idempotency_key_retention_hours
            )
            await session.execute(
                delete(IdempotencyKey).where(IdempotencyKey.created_at < keys_cutoff)
            )
        age = (datetime.now(UTC) - oldest).total_seconds() if oldest is not None else 0.0
        OUTBOX_LAG.set(max(age, 0.0))
        OUTBOX_UNPUBLISHED.set(waiting)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(runtime.stop.wait(), settings.outbox_watch_seconds)


def create_app(settings: Settings | None = None) -> FastAPI:
    return create_service_app(settings or get_settings(), [feed], [outbox_relay, watch_outbox])
