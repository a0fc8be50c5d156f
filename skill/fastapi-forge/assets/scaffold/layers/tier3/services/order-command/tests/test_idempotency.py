"""`Idempotency-Key` on `POST /orders`: a client that retries (a timeout, a dropped
connection, a double click) gets the first answer again, never a second order."""

import asyncio
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import func, select

from forge_app_platform.db import Database

from order_command.config import Settings
from order_command.models import IdempotencyKey, Order
from order_command.relay import create_app as create_relay

Auth = Callable[[str], dict[str, str]]


async def orders_of(settings: Settings, customer: str) -> int:
    db = Database(settings)
    try:
        async with db.sessions() as session:
            count = await session.scalar(
                select(func.count()).select_from(Order).where(Order.customer_id == customer)
            )
    finally:
        await db.close()
    return count or 0


async def test_a_repeated_key_replays_the_first_answer(
    client: httpx.AsyncClient, auth: Auth, settings: Settings
) -> None:
    customer, key = f"idem-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    headers = auth(customer) | {"idempotency-key": key}
    first = await client.post("/orders", json={"total": "12.00"}, headers=headers)
    again = await client.post("/orders", json={"total": "12.00"}, headers=headers)
    assert first.status_code == again.status_code == 201, (first.text, again.text)
    assert again.json() == first.json()
    assert "idempotent-replayed" not in first.headers
    assert again.headers["idempotent-replayed"] == "true"
    assert await orders_of(settings, customer) == 1
    # The key belongs to the principal: another customer's same key is another order.
    other = f"idem-{uuid.uuid4().hex[:8]}"
    theirs = await client.post(
        "/orders", json={"total": "12.00"}, headers=auth(other) | {"idempotency-key": key}
    )
    assert theirs.status_code == 201
    assert theirs.json()["order_id"] != first.json()["order_id"]
    assert await orders_of(settings, other) == 1


async def test_a_key_reused_with_another_body_is_refused(
    client: httpx.AsyncClient, auth: Auth, settings: Settings
) -> None:
    customer = f"idem-{uuid.uuid4().hex[:8]}"
    headers = auth(customer) | {"idempotency-key": "order-form-7"}
    assert (await client.post("/orders", json={"total": "5.00"}, headers=headers)).is_success
    reused = await client.post("/orders", json={"total": "6.00"}, headers=headers)
    assert reused.status_code == 422, reused.text
    error = reused.json()["error"]
    assert error["code"] == "idempotency_key_reused"
    assert error["request_id"] == reused.headers["x-request-id"]
    assert await orders_of(settings, customer) == 1


async def test_a_malformed_key_is_a_validation_error(client: httpx.AsyncClient, auth: Auth) -> None:
    for bad in ("", "k" * 256):
        response = await client.post(
            "/orders", json={"total": "1.00"}, headers=auth("mallory") | {"idempotency-key": bad}
        )
        assert response.status_code == 422, bad
        assert response.json()["error"]["code"] == "validation_error"


async def test_concurrent_duplicates_make_exactly_one_order(
    client: httpx.AsyncClient, auth: Auth, settings: Settings
) -> None:
    customer = f"idem-{uuid.uuid4().hex[:8]}"
    headers = auth(customer) | {"idempotency-key": uuid.uuid4().hex}
    # As many in flight as the pool has connections (the database sees no more from one
    # process anyway): more would only make this one event loop, which also runs the
    # client, open connections mid-burst and time out on a loaded machine.
    in_flight = asyncio.Semaphore(settings.db_pool_size)

    async def post() -> httpx.Response:
        async with in_flight:
            return await client.post("/orders", json={"total": "9.99"}, headers=headers)

    responses = await asyncio.gather(*(post() for _ in range(200)))
    assert {r.status_code for r in responses} == {201}
    assert len({r.json()["order_id"] for r in responses}) == 1
    assert sum("idempotent-replayed" not in r.headers for r in responses) == 1
    assert await orders_of(settings, customer) == 1


async def test_expired_keys_are_deleted_by_the_relay(
    client: httpx.AsyncClient, auth: Auth, settings: Settings
) -> None:
    customer, key = f"idem-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    headers = auth(customer) | {"idempotency-key": key}
    assert (await client.post("/orders", json={"total": "3.00"}, headers=headers)).is_success
    db = Database(settings)
    try:
        async with db.sessions() as session, session.begin():
            row = await session.get(IdempotencyKey, (customer, key))
            assert row is not None
            row.created_at = datetime.now(UTC) - timedelta(
                hours=settings.idempotency_key_retention_hours + 1
            )
        relay = create_relay(settings)
        async with relay.router.lifespan_context(relay), asyncio.timeout(10):
            while True:
                async with db.sessions() as session:
                    if await session.get(IdempotencyKey, (customer, key)) is None:
                        break
                await asyncio.sleep(0.05)
    finally:
        await db.close()
    # Past retention the key is new again.
    later = await client.post("/orders", json={"total": "3.00"}, headers=headers)
    assert later.status_code == 201
    assert "idempotent-replayed" not in later.headers
    assert await orders_of(settings, customer) == 2
