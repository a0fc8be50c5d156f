"""Transactional outbox: the event row commits with the change, a relay publishes it.

Publishing straight after a commit loses the event when the process dies in between; the
relay publishes every committed row at least once (and consumers drop the repeats).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from forge_app_common import Envelope

from .bus import EVENTS_PUBLISHED, Broker
from .tables import OutboxEvent
from .tracing import producer_span

log = logging.getLogger(__name__)


def add_event(session: AsyncSession, topic: str, envelope: Envelope) -> None:
    """Call inside the business transaction; its commit makes change and event atomic."""
    with producer_span(topic, envelope) as headers:
        session.add(
            OutboxEvent(
                id=envelope.event_id,
                topic=topic,
                headers=headers,
                payload=envelope.model_dump(mode="json"),
            )
        )


# --8<-- [start:relay]
async def relay_once(
    sessions: async_sessionmaker[AsyncSession], broker: Broker, limit: int = 100
) -> int:
    async with sessions() as session, session.begin():
        rows = (
            await session.scalars(
                select(OutboxEvent)
                .where(OutboxEvent.published_at.is_(None))
                .order_by(OutboxEvent.created_at)
                .limit(limit)
                # Several relays (replicas) never publish the same rows at once.
                .with_for_update(skip_locked=True)
            )
        ).all()
        for row in rows:
            await broker.publish(row.topic, Envelope.model_validate(row.payload), row.headers)
            EVENTS_PUBLISHED.labels(row.topic).inc()
            row.published_at = datetime.now(UTC)
        return len(rows)
        # --8<-- [end:relay]


async def run_relay(
    sessions: async_sessionmaker[AsyncSession],
    broker: Broker,
    stop: asyncio.Event,
    poll_seconds: float,
) -> None:
    while not stop.is_set():
        try:
            published = await relay_once(sessions, broker)
        except Exception:
            # Database or broker away: the rows stay unpublished and are retried.
            log.exception("outbox relay failed; retrying")
            published = 0
        if published == 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), poll_seconds)
