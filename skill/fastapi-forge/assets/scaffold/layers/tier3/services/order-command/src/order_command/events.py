"""Recording an event: the event log and the outbox, inside the command's transaction."""

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from forge_app_common import Envelope
from forge_app_common.orders import TOPIC_ORDERS, OrderEvent
from forge_app_platform.outbox import add_event

from .models import StoredEvent

# Held from the append to the commit: log positions are assigned and committed in the same
# order. Without it a later position can commit first, and a reader paging by position
# (the rebuild) would skip the earlier one for good. It serializes only the end of each
# command's transaction; a log that must take more writes is partitioned (or is Kafka).
EVENT_LOG_LOCK = 0x0F0E


async def append(
    session: AsyncSession, event: OrderEvent, producer: str, correlation_id: str | None
) -> Envelope:
    envelope = Envelope.wrap(event, producer=producer, correlation_id=correlation_id)
    await session.execute(select(func.pg_advisory_xact_lock(EVENT_LOG_LOCK)))
    session.add(
        StoredEvent(
            event_id=envelope.event_id,
            aggregate_id=event.order_id,
            aggregate_version=event.version,
            type=envelope.type,
            envelope=envelope.model_dump(mode="json"),
            occurred_at=envelope.occurred_at,
        )
    )
    add_event(session, TOPIC_ORDERS, envelope)
    return envelope
