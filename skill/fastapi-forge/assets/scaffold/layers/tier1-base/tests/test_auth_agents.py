"""Authentication on the agent routes: job ownership and the WebSocket handshake."""

from __future__ import annotations

import json

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from forge_app.config import Settings

from .conftest import Credentials
from .helpers import live_server

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


async def test_websocket_rejects_a_bad_token(settings: Settings) -> None:
    async with live_server(settings) as address:
        ws = await connect(f"ws://{address}/agents/ws")
        await ws.send(json.dumps({"type": "auth", "token": "not-valid-credentials"}))
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1008


async def test_websocket_requires_auth_first(settings: Settings) -> None:
    async with live_server(settings) as address:
        ws = await connect(f"ws://{address}/agents/ws")
        await ws.send(json.dumps({"type": "run", "prompt": "sneaky"}))
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1008
