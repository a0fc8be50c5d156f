import asyncio
import uuid

import httpx
from fastapi import FastAPI

from forge_app_common import (
    TOPIC_USERS,
    Envelope,
    UnknownEventError,
    UserRegistered,
    parse_event,
)
from forge_app_platform.broker import create_broker

from user_service.config import Settings


def new_user() -> dict[str, str]:
    return {
        "email": f"u-{uuid.uuid4().hex[:8]}@Example.com",
        "display_name": "Ada",
        "password": "correct horse battery",
    }


async def test_ready_checks_database_and_broker(client: httpx.AsyncClient) -> None:
    response = await client.get("/health/ready")
    assert response.status_code == 200
    assert response.json()["checks"] == {"database": "ok", "broker": "ok", "loops": "ok"}


async def test_sign_up_publishes_user_registered_through_the_outbox(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    broker = create_broker(settings)
    await broker.start()
    received: list[Envelope] = []
    stop = asyncio.Event()

    async def collect(envelope: Envelope) -> None:
        received.append(envelope)

    group = f"test-{uuid.uuid4().hex[:8]}"
    consumer = asyncio.create_task(broker.consume(TOPIC_USERS, group, collect, stop))
    await asyncio.sleep(0.5)  # the consumer's queue/group exists before the event
    try:
        response = await client.post("/users/auth/signup", json=new_user())
        assert response.status_code == 201
        user_id = uuid.UUID(response.json()["id"])
        async with asyncio.timeout(10):
            while not any(_registered(e, user_id) for e in received):
                await asyncio.sleep(0.05)
    finally:
        stop.set()
        await consumer
        await broker.close()


def _registered(envelope: Envelope, user_id: uuid.UUID) -> bool:
    # Other events on the topic (another version, another producer) are not this test's.
    try:
        event = parse_event(envelope)
    except UnknownEventError:
        return False
    return isinstance(event, UserRegistered) and event.user_id == user_id


async def test_duplicate_email_is_a_structured_409(client: httpx.AsyncClient) -> None:
    user = new_user()
    assert (await client.post("/users/auth/signup", json=user)).status_code == 201
    user["email"] = user["email"].upper()
    response = await client.post("/users/auth/signup", json=user)
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "http_409"
    assert response.json()["error"]["request_id"] == response.headers["x-request-id"]


async def test_token_then_me(client: httpx.AsyncClient, app: FastAPI) -> None:
    user = new_user()
    created = (await client.post("/users/auth/signup", json=user)).json()
    wrong = {"email": user["email"], "password": "not the password"}
    assert (await client.post("/users/auth/token", json=wrong)).status_code == 401
    login = {"email": user["email"], "password": user["password"]}
    token = (await client.post("/users/auth/token", json=login)).json()["access_token"]
    me = await client.get("/users/me", headers={"authorization": f"Bearer {token}"})
    assert me.status_code == 200
    assert me.json()["id"] == created["id"]
    assert me.json()["email"] == user["email"].lower()
    assert (await client.get("/users/me", headers={"authorization": "Bearer x"})).status_code == 401


async def test_a_token_that_names_no_user_is_a_401(client: httpx.AsyncClient, app: FastAPI) -> None:
    # Validly signed, but its subject is not a user id (a service's token, or a forged one).
    for subject in ("order-query:rebuild", "not-a-uuid", "0" * 500):
        token, _ = app.state.runtime.tokens.issue(subject)
        response = await client.get("/users/me", headers={"authorization": f"Bearer {token}"})
        assert response.status_code == 401, subject
        error = response.json()["error"]
        assert (error["code"], error["request_id"]) == (
            "http_401",
            response.headers["x-request-id"],
        )
        assert response.headers["www-authenticate"].startswith("Bearer")
