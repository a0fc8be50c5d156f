"""Order events (Tier 3): facts in the past tense, each carrying the aggregate version.

`version` is the order's version after the event (1 for `order.placed`). Projections apply
an event only on top of the version before it, so a replay, a redelivery or an event that
overtook its predecessor can never roll a read model back or skip a step.
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Annotated, ClassVar

from pydantic import Field

from .events import Envelope, EventPayload, UnknownEventError

TOPIC_ORDERS = "orders.events"

Money = Annotated[Decimal, Field(gt=0, max_digits=12, decimal_places=2)]


class OrderEvent(EventPayload):
    order_id: uuid.UUID
    version: int = Field(ge=1)


class OrderPlaced(OrderEvent):
    event_type: ClassVar[str] = "order.placed"

    customer_id: str
    total: Money


class OrderConfirmed(OrderEvent):
    event_type: ClassVar[str] = "order.confirmed"


class OrderCancelled(OrderEvent):
    event_type: ClassVar[str] = "order.cancelled"

    reason: str


ORDER_EVENTS: dict[tuple[str, int], type[OrderEvent]] = {
    (model.event_type, model.schema_version): model
    for model in (OrderPlaced, OrderConfirmed, OrderCancelled)
}


def parse_order_event(envelope: Envelope) -> OrderEvent:
    model = ORDER_EVENTS.get((envelope.type, envelope.schema_version))
    if model is None:
        raise UnknownEventError(f"{envelope.type} v{envelope.schema_version}")
    return model.model_validate(envelope.data)
