import uuid
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import DBAPIError

from forge_app_common import Envelope
from forge_app_platform.db import Database
from forge_app_platform.tables import OutboxEvent

from order_command.config import Settings
from order_command.models import StoredEvent
from order_command.relay import create_app as create_relay

Auth = Callable[[str], dict[str, str]]


@pytest.fixture
async def relay(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    application = create_relay(settings)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://relay") as client:
            yield client


async def place(client: httpx.AsyncClient, headers: dict[str, str], total: str = "10.00") -> str:
    response = await client.post("/orders", json={"total": total}, headers=headers)
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["version"], body["status"]) == (1, "placed")
    return str(body["order_id"])


async def test_a_command_writes_state_log_and_outbox_together(
    client: httpx.AsyncClient, auth: Auth, settings: Settings
) -> None:
    order_id = await place(client, auth("alice"), "19.90")
    db = Database(settings)
    try:
        async with db.sessions() as session:
            logged = (
                await session.scalars(
                    select(StoredEvent).where(StoredEvent.aggregate_id == uuid.UUID(order_id))
                )
            ).all()
            outboxed = await session.get(OutboxEvent, logged[0].event_id)
    finally:
        await db.close()
    assert [(e.type, e.aggregate_version) for e in logged] == [("order.placed", 1)]
    assert outboxed is not None
    assert Envelope.model_validate(outboxed.payload) == Envelope.model_validate(logged[0].envelope)
    assert logged[0].envelope["data"]["total"] == "19.90"


async def test_transitions_advance_the_version_and_refuse_stale_ones(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    headers = auth("bob")
    order_id = await place(client, headers)
    stale = await client.post(
        f"/orders/{order_id}/confirm", json={"expected_version": 2}, headers=headers
    )
    assert stale.status_code == 409
    confirmed = await client.post(
        f"/orders/{order_id}/confirm", json={"expected_version": 1}, headers=headers
    )
    assert confirmed.json() == {"order_id": order_id, "version": 2, "status": "confirmed"}
    again = await client.post(f"/orders/{order_id}/confirm", json={}, headers=headers)
    assert again.status_code == 409
    cancelled = await client.post(
        f"/orders/{order_id}/cancel", json={"reason": "changed my mind"}, headers=headers
    )
    assert cancelled.json()["version"] == 3


async def test_other_customers_orders_do_not_exist_for_you(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    order_id = await place(client, auth("carol"))
    response = await client.post(f"/orders/{order_id}/confirm", json={}, headers=auth("dave"))
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "http_404"
    anonymous = await client.post("/orders", json={"total": "1.00"})
    assert anonymous.status_code == 401


async def test_the_feed_pages_through_the_log_in_order(
    client: httpx.AsyncClient, relay: httpx.AsyncClient, auth: Auth, service_auth: Auth
) -> None:
    placed = [await place(client, auth("erin")) for _ in range(3)]
    headers = service_auth("order-query")
    positions: list[int] = []
    seen: list[str] = []
    after = 0
    while True:
        page = await relay.get("/events", params={"after": after, "limit": 2}, headers=headers)
        assert page.status_code == 200, page.text
        body = page.json()
        if not body["events"]:
            assert body["next_after"] == after
            break
        positions += [e["position"] for e in body["events"]]
        seen += [e["event"]["data"]["order_id"] for e in body["events"]]
        after = body["next_after"]
    assert positions == sorted(positions)
    assert len(set(positions)) == len(positions)
    assert [order for order in seen if order in placed] == placed


async def test_the_event_log_refuses_edits(
    client: httpx.AsyncClient, auth: Auth, settings: Settings
) -> None:
    await place(client, auth("frank"))
    db = Database(settings)
    try:
        async with db.sessions() as session:
            assert await session.scalar(select(func.count()).select_from(StoredEvent))
        async with db.sessions() as session:
            with pytest.raises(DBAPIError, match="append-only"):
                async with session.begin():
                    await session.execute(StoredEvent.__table__.delete())
    finally:
        await db.close()


async def test_the_feed_is_for_reader_services_only(
    client: httpx.AsyncClient, relay: httpx.AsyncClient, auth: Auth, service_auth: Auth
) -> None:
    # A user's token, even one whose subject names the reader service, is no service token.
    for subject in (str(uuid.uuid4()), "order-query"):
        assert (await relay.get("/events", headers=auth(subject))).status_code == 401, subject
    # A service that is not a feed reader.
    response = await relay.get("/events", headers=service_auth("notification-service"))
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "http_403"
    assert (await relay.get("/events")).status_code == 401
    assert (await relay.get("/events", headers=service_auth("order-query"))).status_code == 200
    # And a service token is no user's: the order API refuses it.
    order = {"total": "1.00"}
    refused = await client.post("/orders", json=order, headers=service_auth("order-query"))
    assert refused.status_code == 401
