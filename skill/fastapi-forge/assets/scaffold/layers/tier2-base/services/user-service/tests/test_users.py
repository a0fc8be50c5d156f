import asyncio
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from fastapi import FastAPI
from pydantic import ValidationError

from forge_app_common import (
    TOPIC_USERS,
    Envelope,
    UnknownEventError,
    UserRegistered,
    parse_event,
)
from forge_app_platform.broker import create_broker

from user_service.config import ServiceClient, Settings
from user_service.keys import KeyFileError, main, secret_hash
from user_service.main import create_app


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


async def test_a_token_that_names_no_user_is_a_401(
    client: httpx.AsyncClient, auth: Callable[[str], dict[str, str]]
) -> None:
    # Validly signed, but its subject is not a user id.
    for subject in ("order-query:rebuild", "not-a-uuid", "0" * 500):
        response = await client.get("/users/me", headers=auth(subject))
        assert response.status_code == 401, subject
        error = response.json()["error"]
        assert (error["code"], error["request_id"]) == (
            "http_401",
            response.headers["x-request-id"],
        )
        assert response.headers["www-authenticate"].startswith("Bearer")


async def test_tokens_carry_the_kid_of_the_published_key(client: httpx.AsyncClient) -> None:
    published = await client.get("/.well-known/jwks.json")
    assert published.status_code == 200
    assert "public" in published.headers["cache-control"]
    (key,) = published.json()["keys"]
    assert (key["kty"], key["alg"], key["use"]) == ("RSA", "RS256", "sig")
    assert "d" not in key  # the public half only
    user = new_user()
    await client.post("/users/auth/signup", json=user)
    login = {"email": user["email"], "password": user["password"]}
    token = (await client.post("/users/auth/token", json=login)).json()["access_token"]
    header = jwt.get_unverified_header(token)
    assert (header["alg"], header["kid"]) == ("RS256", key["kid"])
    assert jwt.decode(token, options={"verify_signature": False})["iss"] == "forge-api"


def test_no_private_key_no_start(settings: Settings, tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match=r"JWT_PRIVATE_KEY_FILE.*user_service\.keys create"):
        Settings(jwt_private_key_file="")
    missing = settings.model_copy(update={"jwt_private_key_file": tmp_path / "none.pem"})
    with pytest.raises(KeyFileError, match=r"JWT_PRIVATE_KEY_FILE=.*user_service\.keys create"):
        create_app(missing)


async def test_previous_key_still_verifies_during_a_rotation(
    settings: Settings, tmp_path: Path, auth: Callable[[str], dict[str, str]]
) -> None:
    user_id = str(uuid.uuid4())
    old_token = auth(user_id)  # signed with the key about to be rotated out
    old_public = tmp_path / "previous.pem"
    new_key = tmp_path / "new.pem"
    assert main(["create", str(new_key)]) == 0
    old_public.write_bytes(
        serialization.load_pem_private_key(settings.jwt_private_key_file.read_bytes(), None)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    rotated = settings.model_copy(
        update={"jwt_private_key_file": new_key, "jwt_previous_public_key_file": old_public}
    )
    app = create_app(rotated)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            kids = [k["kid"] for k in (await client.get("/.well-known/jwks.json")).json()["keys"]]
            assert kids[1] == jwt.get_unverified_header(old_token["authorization"][7:])["kid"]
            # Verified (a 404: the user does not exist), not refused as a bad token.
            assert (await client.get("/users/me", headers=old_token)).status_code == 404
    # Once the previous key is no longer published, its tokens are refused.
    app = create_app(settings.model_copy(update={"jwt_private_key_file": new_key}))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            assert (await client.get("/users/me", headers=old_token)).status_code == 401


async def test_client_credentials_grant(settings: Settings) -> None:
    secret = "s3cret-of-order-query-" + "x" * 20
    client_entry = ServiceClient(secret_sha256=secret_hash(secret), audiences=["order-command"])
    app = create_app(settings.model_copy(update={"service_clients": {"order-query": client_entry}}))
    form = {
        "grant_type": "client_credentials",
        "client_id": "order-query",
        "client_secret": secret,
        "audience": "order-command",
    }
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            issued = await client.post("/oauth/token", data=form)
            assert issued.status_code == 200, issued.text
            claims = jwt.decode(issued.json()["access_token"], options={"verify_signature": False})
            assert (claims["sub"], claims["aud"], claims["token_use"]) == (
                "order-query",
                "order-command",
                "service",
            )
            # A service token is no user's token, even at the service that issued it.
            service_header = {"authorization": f"Bearer {issued.json()['access_token']}"}
            assert (await client.get("/users/count", headers=service_header)).status_code == 401
            for wrong in (
                {"client_secret": "wrong"},
                {"client_id": "notification-service"},
            ):
                refused = await client.post("/oauth/token", data=form | wrong)
                assert refused.status_code == 401, wrong
            other = await client.post("/oauth/token", data=form | {"audience": "user-service"})
            assert other.status_code == 400
