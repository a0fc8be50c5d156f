"""Idempotent consumers: the event id is recorded in the same transaction as the effect."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from forge_app_common import Envelope

from .bus import EVENTS_CONSUMED, Handler
from .tables import ProcessedEvent

Apply = Callable[[AsyncSession, Envelope], Awaitable[None]]


# --8<-- [start:handle-once]
async def handle_once(
    sessions: async_sessionmaker[AsyncSession], consumer: str, envelope: Envelope, apply: Apply
) -> bool:
    """Applies the event unless this consumer already did; False for a repeat."""
    async with sessions() as session, session.begin():
        first_time = (
            await session.execute(
                insert(ProcessedEvent)
                .values(consumer=consumer, event_id=envelope.event_id)
                .on_conflict_do_nothing()
                .returning(ProcessedEvent.event_id)
            )
        ).scalar_one_or_none()
        if first_time is None:
            return False
        await apply(session, envelope)  # same transaction: both commit or neither
        return True
        # --8<-- [end:handle-once]


def idempotent(
    sessions: async_sessionmaker[AsyncSession], topic: str, consumer: str, apply: Apply
) -> Handler:
    """A broker handler that applies each event once and counts repeats."""

    async def handle(envelope: Envelope) -> None:
        applied = await handle_once(sessions, consumer, envelope, apply)
        EVENTS_CONSUMED.labels(topic, consumer, "applied" if applied else "duplicate").inc()

    return handle
