"""The order projection, shared by the live projector and the rebuild.

Each event carries the order's version after it. An event is applied only on top of the
version before it: an older or equal version is a repeat (a redelivery, or a rebuild that
already covered it) and changes nothing; a newer one means its predecessor has not arrived
yet, so it is refused and retried by the broker instead of skipping a step.
"""

from datetime import datetime
from typing import Any

from prometheus_client import Histogram
from sqlalchemy import CursorResult, Table, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from forge_app_common import Envelope
from forge_app_common.orders import (
    OrderCancelled,
    OrderConfirmed,
    OrderPlaced,
    parse_order_event,
)

PROJECTION_DELAY = Histogram(
    "projection_delay_seconds",
    "From an event's occurrence to its application to the read model (the read side's lag).",
    ["projection"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)


class EventOutOfOrderError(RuntimeError):
    """The event's predecessor is not applied yet; the broker delivers it again later."""


async def apply_order_event(
    db: AsyncSession | AsyncConnection, views: Table, envelope: Envelope
) -> bool:
    """True if the event changed the read model, False for a repeat."""
    event = parse_order_event(envelope)
    occurred: datetime = envelope.occurred_at
    if isinstance(event, OrderPlaced):
        inserted: CursorResult[Any] = await db.execute(  # type: ignore[assignment]
            insert(views)
            .values(
                order_id=event.order_id,
                customer_id=event.customer_id,
                status="placed",
                total=event.total,
                version=event.version,
                cancel_reason=None,
                placed_at=occurred,
                updated_at=occurred,
            )
            .on_conflict_do_nothing(index_elements=[views.c.order_id])
        )
        return inserted.rowcount == 1
    changes: dict[str, Any] = {"version": event.version, "updated_at": occurred}
    if isinstance(event, OrderConfirmed):
        changes["status"] = "confirmed"
    elif isinstance(event, OrderCancelled):
        changes |= {"status": "cancelled", "cancel_reason": event.reason}
    updated: CursorResult[Any] = await db.execute(  # type: ignore[assignment]
        update(views)
        .where(views.c.order_id == event.order_id, views.c.version == event.version - 1)
        .values(**changes)
    )
    if updated.rowcount == 1:
        return True
    stored = await db.scalar(select(views.c.version).where(views.c.order_id == event.order_id))
    if stored is not None and stored >= event.version:
        return False
    raise EventOutOfOrderError(
        f"{envelope.type} v{event.version} of order {event.order_id} arrived before "
        f"version {event.version - 1} (the read model has {stored})"
    )
