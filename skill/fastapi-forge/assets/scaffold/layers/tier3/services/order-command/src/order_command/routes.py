"""Commands. Each one changes the order, appends its event to the log and to the outbox in
one transaction, and answers with the new version; the read model catches up shortly after
(clients poll the query API until it shows that version)."""

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Request, status
from pydantic import BaseModel, Field
from sqlalchemy import select

from forge_app_common.orders import (
    Money,
    OrderCancelled,
    OrderConfirmed,
    OrderEvent,
    OrderPlaced,
)
from forge_app_platform.app import RuntimeDep
from forge_app_platform.auth import CurrentPrincipal

from .events import append
from .models import Order

router = APIRouter(prefix="/orders", tags=["orders"])
Status = Literal["placed", "confirmed", "cancelled"]


class PlaceOrder(BaseModel):
    total: Money


class ExpectVersion(BaseModel):
    # Optimistic concurrency: the version the client last saw; if the order has moved on
    # since, the command is refused with 409 instead of applied to a state nobody saw.
    expected_version: Annotated[int | None, Field(ge=1)] = None


class CancelOrder(ExpectVersion):
    reason: str = Field(min_length=1, max_length=500)


class Accepted(BaseModel):
    order_id: uuid.UUID
    version: int
    status: Status


@router.post("", status_code=status.HTTP_201_CREATED)
async def place_order(
    body: PlaceOrder, request: Request, principal: CurrentPrincipal, runtime: RuntimeDep
) -> Accepted:
    now = datetime.now(UTC)
    order = Order(
        id=uuid.uuid4(),
        customer_id=principal.subject,
        status="placed",
        total=body.total,
        version=1,
        created_at=now,
        updated_at=now,
    )
    event = OrderPlaced(
        order_id=order.id, version=1, customer_id=order.customer_id, total=order.total
    )
    async with runtime.db.sessions() as session, session.begin():
        session.add(order)
        # Same transaction as the state: no change without its event, nor the reverse.
        await append(session, event, runtime.settings.service_name, request.state.request_id)
    return Accepted(order_id=order.id, version=1, status="placed")


async def transition(
    runtime: RuntimeDep,
    request: Request,
    customer_id: str,
    order_id: uuid.UUID,
    expected_version: int | None,
    allowed_from: set[str],
    to: Status,
    make_event: Callable[[int], OrderEvent],
) -> Accepted:
    async with runtime.db.sessions() as session, session.begin():
        order = await session.scalar(select(Order).where(Order.id == order_id).with_for_update())
        # Another customer's order is reported as missing, not as forbidden.
        if order is None or order.customer_id != customer_id:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "order not found")
        if expected_version is not None and expected_version != order.version:
            raise HTTPException(
                status.HTTP_409_CONFLICT,
                f"order is at version {order.version}, not {expected_version}",
            )
        if order.status not in allowed_from:
            raise HTTPException(status.HTTP_409_CONFLICT, f"order is {order.status}")
        order.version += 1
        order.status = to
        order.updated_at = datetime.now(UTC)
        await append(
            session,
            make_event(order.version),
            runtime.settings.service_name,
            request.state.request_id,
        )
    return Accepted(order_id=order_id, version=order.version, status=to)


@router.post("/{order_id}/confirm")
async def confirm_order(
    order_id: uuid.UUID,
    body: ExpectVersion,
    request: Request,
    principal: CurrentPrincipal,
    runtime: RuntimeDep,
) -> Accepted:
    return await transition(
        runtime,
        request,
        principal.subject,
        order_id,
        body.expected_version,
        {"placed"},
        "confirmed",
        lambda version: OrderConfirmed(order_id=order_id, version=version),
    )


@router.post("/{order_id}/cancel")
async def cancel_order(
    order_id: uuid.UUID,
    body: CancelOrder,
    request: Request,
    principal: CurrentPrincipal,
    runtime: RuntimeDep,
) -> Accepted:
    return await transition(
        runtime,
        request,
        principal.subject,
        order_id,
        body.expected_version,
        {"placed", "confirmed"},
        "cancelled",
        lambda version: OrderCancelled(order_id=order_id, version=version, reason=body.reason),
    )
