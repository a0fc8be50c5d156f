import asyncio
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select, text

from forge_app_common import Envelope
from forge_app_common.orders import (
    TOPIC_ORDERS,
    OrderCancelled,
    OrderConfirmed,
    OrderEvent,
    OrderPlaced,
)
from forge_app_platform.broker import create_broker
from forge_app_platform.db import Database

from order_query.config import Settings
from order_query.models import order_views
from order_query.projection import EventOutOfOrderError, apply_order_event
from order_query.projector import create_app as create_projector
from order_query.rebuild import rebuild

Auth = Callable[[str], dict[str, str]]


def history(customer: str, *, cancel: bool = False) -> list[Envelope]:
    """Placed, confirmed (and cancelled) events of one new order, a second apart."""
    order_id = uuid.uuid4()
    events: list[OrderEvent] = [
        OrderPlaced(order_id=order_id, version=1, customer_id=customer, total=Decimal("5.50")),
        OrderConfirmed(order_id=order_id, version=2),
    ]
    if cancel:
        events.append(OrderCancelled(order_id=order_id, version=3, reason="out of stock"))
    start = datetime.now(UTC)
    return [
        Envelope.wrap(event, producer="test").model_copy(
            update={"occurred_at": start + timedelta(seconds=i)}
        )
        for i, event in enumerate(events)
    ]


async def project(settings: Settings, envelopes: list[Envelope]) -> list[bool]:
    db = Database(settings)
    try:
        results = []
        for envelope in envelopes:
            async with db.sessions() as session, session.begin():
                results.append(await apply_order_event(session, order_views, envelope))
        return results
    finally:
        await db.close()


async def rows(settings: Settings) -> list[Any]:
    db = Database(settings)
    try:
        async with db.sessions() as session:
            result = await session.execute(select(order_views).order_by(order_views.c.order_id))
            return list(result.all())
    finally:
        await db.close()


async def test_events_apply_in_version_order_and_repeats_change_nothing(
    settings: Settings,
) -> None:
    placed, confirmed, cancelled = history("ann", cancel=True)
    with pytest.raises(EventOutOfOrderError, match="arrived before version 1"):
        await project(settings, [confirmed])
    assert await project(settings, [placed, confirmed, confirmed, placed]) == [
        True,
        True,
        False,
        False,
    ]
    assert await project(settings, [cancelled, confirmed]) == [True, False]
    order_id = placed.data["order_id"]
    row = next(r for r in await rows(settings) if str(r.order_id) == order_id)
    assert (row.status, row.version, row.cancel_reason) == ("cancelled", 3, "out of stock")
    assert row.updated_at == cancelled.occurred_at
    assert row.placed_at == placed.occurred_at


async def test_queries_show_a_customer_only_their_orders(
    client: httpx.AsyncClient, auth: Auth, settings: Settings
) -> None:
    mine, theirs = history("bea"), history("cid")
    await project(settings, mine + theirs)
    order_id = mine[0].data["order_id"]
    found = await client.get(f"/views/orders/{order_id}", headers=auth("bea"))
    assert found.status_code == 200, found.text
    assert found.json()["status"] == "confirmed"
    assert found.json()["total"] == "5.50"
    hidden = await client.get(f"/views/orders/{order_id}", headers=auth("cid"))
    assert hidden.status_code == 404
    listed = await client.get("/views/orders", headers=auth("bea"))
    assert [o["order_id"] for o in listed.json()] == [order_id]


async def test_the_projector_applies_published_events_once(
    client: httpx.AsyncClient, auth: Auth, settings: Settings
) -> None:
    events = history("dan", cancel=True)
    projector = create_projector(settings)
    broker = create_broker(settings)
    await broker.start()
    try:
        async with projector.router.lifespan_context(projector):
            # Twice over, and the last version first: the projector must sort it out.
            for envelope in [events[2], *events, *events]:
                await broker.publish(TOPIC_ORDERS, envelope)
            url = f"/views/orders/{events[0].data['order_id']}"
            async with asyncio.timeout(20):
                while (await client.get(url, headers=auth("dan"))).json().get("version") != 3:
                    await asyncio.sleep(0.05)
    finally:
        await broker.close()


def feed_app(log: list[Envelope]) -> FastAPI:
    """Stands in for order-command's relay: GET /events over a list."""
    feed = FastAPI()

    @feed.get("/events")
    async def events(after: int = 0, limit: int = 500) -> dict[str, Any]:
        page = log[after : after + limit]
        items = [
            {"position": after + i + 1, "event": e.model_dump(mode="json")}
            for i, e in enumerate(page)
        ]
        return {"events": items, "next_after": after + len(page)}

    return feed


async def test_a_rebuild_swaps_in_an_identical_table(settings: Settings) -> None:
    customers = {f"{name}-{uuid.uuid4().hex[:6]}" for name in ("eve", "fay", "gus")}
    log = [e for customer in sorted(customers) for e in history(customer, cancel=True)]
    await project(settings, log)
    before = await rows(settings)

    async def table_oid() -> int:
        db = Database(settings)
        try:
            async with db.sessions() as session:
                return int(await session.scalar(text("SELECT 'order_views'::regclass::oid")))
        finally:
            await db.close()

    old_oid = await table_oid()
    # Earlier tests' orders are missing from this log: the rebuilt table drops them.
    summary = await rebuild(
        settings, transport=httpx.ASGITransport(app=feed_app(log)), token="unchecked-by-the-fake"
    )
    assert summary["events"] == len(log)
    assert await table_oid() != old_oid
    expected = [r for r in before if r.customer_id in customers]
    assert await rows(settings) == expected
    assert len(expected) == 3
