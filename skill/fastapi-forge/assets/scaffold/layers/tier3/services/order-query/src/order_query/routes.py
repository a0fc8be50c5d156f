"""Queries read the read model only, never the command side's tables. It lags the commands
by the projection delay: a client that needs its own write waits for the version the
command answered with."""

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query, status
from pydantic import BaseModel, ConfigDict
from sqlalchemy import select

from forge_app_platform.app import RuntimeDep
from forge_app_platform.auth import CurrentPrincipal

from .models import order_views

router = APIRouter(prefix="/views/orders", tags=["order views"])


class OrderView(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    order_id: uuid.UUID
    customer_id: str
    status: Literal["placed", "confirmed", "cancelled"]
    total: Decimal
    version: int
    cancel_reason: str | None
    placed_at: datetime
    updated_at: datetime


@router.get("/{order_id}")
async def get_order(
    order_id: uuid.UUID, principal: CurrentPrincipal, runtime: RuntimeDep
) -> OrderView:
    async with runtime.db.sessions() as session:
        row = (
            await session.execute(select(order_views).where(order_views.c.order_id == order_id))
        ).first()
    # Not projected yet, or another customer's: both are 404 (clients retry the first).
    if row is None or row.customer_id != principal.subject:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "order not found")
    return OrderView.model_validate(row)


@router.get("")
async def list_orders(
    principal: CurrentPrincipal,
    runtime: RuntimeDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> list[OrderView]:
    async with runtime.db.sessions() as session:
        rows = (
            await session.execute(
                select(order_views)
                .where(order_views.c.customer_id == principal.subject)
                .order_by(order_views.c.placed_at.desc(), order_views.c.order_id)
                .limit(limit)
            )
        ).all()
    return [OrderView.model_validate(row) for row in rows]
