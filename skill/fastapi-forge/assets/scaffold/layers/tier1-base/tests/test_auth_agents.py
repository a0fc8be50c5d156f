"""Authentication on the agent routes: job ownership, the WebSocket handshake and the
single-use tickets browsers use for SSE and WebSocket."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from forge_app.config import Settings

from .conftest import Credentials, SettingsFactory
from .helpers import app_client, live_server

RUN = {"prompt": "hello"}


@pytest.mark.uses_database
async def test_jobs_are_private_to_their_owner(
    client: httpx.AsyncClient, credentials: Credentials
) -> None:
    submitted = await client.post(
        "/agents/run/async", json=RUN, headers=credentials.headers("alice")
    )
    job_id = submitted.json()["job_id"]
    other = credentials.headers("mallory")
    assert (await client.get(f"/agents/jobs/{job_id}", headers=other)).status_code == 404
    assert (await client.delete(f"/agents/jobs/{job_id}", headers=other)).status_code == 404
    mine = await client.get(f"/agents/jobs/{job_id}", headers=credentials.headers("alice"))
    assert mine.status_code == 200


async def refused_handshake(url: str, headers: dict[str, str] | None = None) -> InvalidStatus:
    with pytest.raises(InvalidStatus) as refused:
        async with connect(url, additional_headers=headers or {}):
            pass
    return refused.value


async def test_websocket_without_credentials_is_refused_at_the_handshake(
    settings: Settings,
) -> None:
    async with live_server(settings) as address:
        refused = await refused_handshake(f"ws://{address}/agents/ws")
    assert refused.response.status_code == 401
    assert json.loads(refused.response.body or b"{}")["error"]["code"] == "missing_credentials"


async def test_websocket_with_bad_credentials_is_refused_at_the_handshake(
    settings: Settings, credentials: Credentials
) -> None:
    bad = {name: "not-valid-credentials" for name in credentials.headers("alice")}
    async with live_server(settings) as address:
        refused = await refused_handshake(f"ws://{address}/agents/ws", bad)
    assert refused.response.status_code == 401


async def ticket(client: httpx.AsyncClient, headers: dict[str, str]) -> str:
    response = await client.post("/auth/tickets", headers=headers)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["expires_in"] == 30
    value: str = body["ticket"]
    return value


async def test_a_ticket_opens_one_websocket_as_its_owner(
    settings: Settings, credentials: Credentials
) -> None:
    async with (
        live_server(settings) as address,
        httpx.AsyncClient(base_url=f"http://{address}") as client,
    ):
        value = await ticket(client, credentials.headers("alice"))
        url = f"ws://{address}/agents/ws?ticket={value}"
        async with connect(url) as ws:
            assert json.loads(await ws.recv()) == {"type": "ready"}
            await ws.send(json.dumps({"type": "run", "prompt": "hi"}))
            while (message := json.loads(await ws.recv()))["type"] != "done":
                assert message["type"] != "error", message
        # Single use: the same ticket again is refused.
        refused = await refused_handshake(url)
    assert refused.response.status_code == 401
    assert json.loads(refused.response.body or b"{}")["error"]["code"] == "invalid_ticket"


# --8<-- [start:ticket-sse]
async def test_a_ticket_opens_one_sse_stream_and_nothing_else(
    client: httpx.AsyncClient, credentials: Credentials
) -> None:
    alice = credentials.headers("alice")
    value = await ticket(client, alice)
    params = {"prompt": "hi", "ticket": value}
    async with client.stream("GET", "/agents/run/stream", params=params) as response:
        assert response.status_code == 200
        body = (await response.aread()).decode()
    assert "event: done" in body
    again = await client.get("/agents/run/stream", params=params)
    assert again.status_code == 401
    assert again.json()["error"]["code"] == "invalid_ticket"
    # Only GET and WebSocket take tickets: a POST with one is unauthenticated.
    post = await client.post(
        "/agents/run", params={"ticket": await ticket(client, alice)}, json=RUN
    )
    assert post.status_code == 401
    assert post.json()["error"]["code"] == "missing_credentials"
    # --8<-- [end:ticket-sse]


async def test_a_ticket_is_bound_to_its_owner(
    client: httpx.AsyncClient, credentials: Credentials
) -> None:
    value = await ticket(client, credentials.headers("mallory"))
    response = await client.get("/me", params={"ticket": value})
    assert response.status_code == 200
    assert response.json()["subject"] == "mallory"


async def test_a_ticket_expires(make_settings: SettingsFactory, credentials: Credentials) -> None:
    async with app_client(make_settings(ticket_ttl_seconds=1)) as client:
        response = await client.post("/auth/tickets", headers=credentials.headers("alice"))
        value = response.json()["ticket"]
        await asyncio.sleep(1.5)
        late = await client.get("/me", params={"ticket": value})
    assert late.status_code == 401
    assert late.json()["error"]["code"] == "invalid_ticket"


async def test_a_ticket_needs_credentials(client: httpx.AsyncClient) -> None:
    response = await client.post("/auth/tickets")
    assert response.status_code == 401
