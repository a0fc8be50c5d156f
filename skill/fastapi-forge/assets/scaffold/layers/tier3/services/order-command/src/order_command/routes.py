"""Commands. Each one changes the order, appends its event to the log and to the outbox in
one transaction, and answers with the new version; the read model catches up shortly after
(clients poll the query API until it shows that version)."""

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Header, HTTPException, Request, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy import select

from forge_app_common.orders import (
    Money,
    OrderCancelled,
    OrderConfirmed,
    OrderEvent,
    OrderPlaced,
)
from forge_app_platform.app import RuntimeDep, error_response
from forge_app_platform.auth import CurrentPrincipal

from .events import append
from .idempotency import REPLAYED_HEADER, claim, fingerprint
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


IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        min_length=1,
        max_length=255,
        description=(
            "A unique value per order the client means to place (a UUID). Retrying with the "
            "same key and body replays the first answer (header Idempotent-Replayed: true) "
            "instead of placing another order; the same key with another body is refused "
            "with 422 idempotency_key_reused. Keys are per caller and kept for "
            "IDEMPOTENCY_KEY_RETENTION_HOURS (24 by default)."
        ),
    ),
]


@router.post("", status_code=status.HTTP_201_CREATED, response_model=Accepted)
async def place_order(
    body: PlaceOrder,
    request: Request,
    principal: CurrentPrincipal,
    runtime: RuntimeDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> Accepted | JSONResponse:
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
    accepted = Accepted(order_id=order.id, version=1, status="placed")
    async with runtime.db.sessions() as session, session.begin():
        if idempotency_key is not None:
            request_fingerprint = fingerprint("POST /orders", body)
            earlier = await claim(
                session,
                principal.subject,
                idempotency_key,
                request_fingerprint,
                status.HTTP_201_CREATED,
                accepted.model_dump(mode="json"),
            )
            if earlier is not None and earlier.fingerprint != request_fingerprint:
                return error_response(
                    request,
                    status.HTTP_422_UNPROCESSABLE_CONTENT,
                    "idempotency_key_reused",
                    "this Idempotency-Key was used with another request body; "
                    "use a new key for a new order",
                )
            if earlier is not None:
                return JSONResponse(
                    earlier.response,
                    status_code=earlier.status_code,
                    headers={REPLAYED_HEADER: "true"},
                )
        session.add(order)
        # Same transaction as the state: no change without its event, nor the reverse.
        await append(session, event, runtime.settings.service_name, request.state.request_id)
    return accepted


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
