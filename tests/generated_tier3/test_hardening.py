"""Tier 3 under attack, black-box against the real processes: a client retrying one
`POST /orders` 200 times at once with one Idempotency-Key gets one order; a user's valid
token cannot read the relay's event log."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest

from .system import TOKENS, Db, Orders

pytestmark = pytest.mark.e2e


async def post_concurrently(
    url: str, headers: dict[str, str], count: int
) -> list[httpx.Response]:
    # As many connections as the command API's database pool (10 + 10 overflow): more
    # only queue in the server, where a loaded machine turns them into connect timeouts.
    limits = httpx.Limits(max_connections=20)
    async with httpx.AsyncClient(
        base_url=url, headers=headers, timeout=30, limits=limits
    ) as client:
        return await asyncio.gather(
            *(client.post("/orders", json={"total": "19.99"}) for _ in range(count))
        )


def test_concurrent_retries_with_one_key_place_one_order(orders: Orders) -> None:
    headers = {
        **TOKENS.bearer("retrier"),
        "idempotency-key": str(uuid.uuid4()),
    }
    responses = asyncio.run(
        post_concurrently(orders.processes["command"].url, headers, 200)
    )
    command_db = Db(orders.databases["command"])
    try:
        placed = command_db.value(
            "SELECT count(*) FROM orders WHERE customer_id = 'retrier'"
        )
    finally:
        command_db.close()
    statuses = sorted({r.status_code for r in responses})
    assert statuses == [201], statuses
    assert len({r.json()["order_id"] for r in responses}) == 1
    assert placed == 1, f"{placed} orders for 200 posts with one Idempotency-Key"


def test_a_user_token_cannot_read_the_event_log(orders: Orders) -> None:
    with orders.client("command", str(uuid.uuid4())) as user:
        assert user.post("/orders", json={"total": "1.00"}).status_code == 201
    # A user's token is no service token (before: 403; now refused as a token, 401), even
    # one whose subject names the reader service.
    for subject in (str(uuid.uuid4()), "order-query", "order-query:rebuild"):
        with orders.client("relay", subject) as user:
            refused = user.get("/events")
        assert refused.status_code == 401, refused.text
        assert refused.json()["error"]["code"] == "http_401"
    # The rebuild's client-credentials token from user-service.
    service = {"authorization": f"Bearer {orders.service_token()}"}
    with orders.client("relay") as rebuild:
        assert len(rebuild.get("/events", headers=service).json()["events"]) == 1
