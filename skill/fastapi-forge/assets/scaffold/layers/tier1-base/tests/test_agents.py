"""Synchronous runs, SSE streams and the WebSocket, against the fake agent."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import re
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from forge_app.main import GC_THRESHOLDS
from forge_app.routes import agents as agent_routes

from .conftest import SettingsFactory
from .helpers import app_client, live_server, read_sse, uvicorn_process


async def test_run_returns_output_usage_and_tool_calls(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    response = await client.post(
        "/agents/run", json={"prompt": "hello brave world"}, headers=headers
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["output"] == "You said: hello brave world"
    assert body["model"] == "fake-model"
    assert body["usage"] == [
        {
            "model": "fake-model",
            "input_tokens": 3,
            "output_tokens": 5,
            "cache_read_tokens": 0,
            "cache_write_tokens": 0,
            "cost_usd": None,
        }
    ]
    assert body["tool_calls"][0]["name"] == "count_words"


async def test_run_validation_errors_are_structured(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    invalid = await client.post("/agents/run", json={"prompt": ""}, headers=headers)
    assert invalid.status_code == 422
    error = invalid.json()["error"]
    assert error["code"] == "validation_error"
    assert error["details"][0]["loc"] == ["body", "prompt"]


async def test_token_usage_is_exported_per_model(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    for _ in range(3):
        await client.post("/agents/run", json={"prompt": "count me"}, headers=headers)
    text = (await client.get("/metrics")).text
    tokens = re.search(r'agent_tokens_total\{kind="output",model="fake-model"\} ([0-9.]+)', text)
    assert tokens is not None
    assert float(tokens.group(1)) >= 3 * 4


async def test_run_uses_the_requested_model_if_allowed(
    make_settings: SettingsFactory, headers: dict[str, str]
) -> None:
    async with app_client(make_settings(agent_allowed_models=["other-model"])) as client:
        response = await client.post(
            "/agents/run", json={"prompt": "hi", "model": "other-model"}, headers=headers
        )
    assert response.json()["usage"][0]["model"] == "other-model"


async def test_only_the_configured_model_is_allowed_by_default(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    configured = await client.post(
        "/agents/run", json={"prompt": "hi", "model": "fake-model"}, headers=headers
    )
    assert configured.status_code == 200, configured.text
    other = await client.post(
        "/agents/run", json={"prompt": "hi", "model": "other-model"}, headers=headers
    )
    assert other.status_code == 422
    assert other.json()["error"]["code"] == "model_not_allowed"


async def test_run_rejects_unknown_fields(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    response = await client.post(
        "/agents/run", json={"prompt": "hi", "temperature": 2}, headers=headers
    )
    assert response.status_code == 422


async def test_run_times_out_with_504(
    make_settings: SettingsFactory, headers: dict[str, str]
) -> None:
    settings = make_settings(fake_agent_delay_seconds=0.2, agent_timeout_seconds=0.3)
    async with app_client(settings) as client:
        response = await client.post("/agents/run", json={"prompt": "a b c d e"}, headers=headers)
    assert response.status_code == 504
    assert response.json()["error"]["code"] == "agent_timeout"


async def test_agent_failure_is_502_without_internals(
    make_settings: SettingsFactory, headers: dict[str, str]
) -> None:
    async with app_client(make_settings(fake_agent_fail=True)) as client:
        response = await client.post("/agents/run", json={"prompt": "hi"}, headers=headers)
    assert response.status_code == 502
    error = response.json()["error"]
    assert error["code"] == "agent_error"
    assert "Traceback" not in error["message"]


async def test_tokens_of_a_failed_run_are_counted(
    make_settings: SettingsFactory, headers: dict[str, str]
) -> None:
    # A process of its own: its metrics hold this run's tokens and nothing else.
    settings = make_settings(fake_agent_fail=True)
    async with (
        uvicorn_process(settings, workers=1) as base,
        httpx.AsyncClient(base_url=base, headers=headers) as client,
    ):
        response = await client.post("/agents/run", json={"prompt": "one two three"})
        assert response.status_code == 502, response.text
        text = (await client.get("/metrics")).text
    tokens = re.search(r'agent_tokens_total\{kind="input",model="fake-model"\} ([0-9.]+)', text)
    assert tokens is not None, text
    assert float(tokens.group(1)) == 3


# --8<-- [start:sse]
async def test_sse_streams_chunks_then_done(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    async with client.stream(
        "GET", "/agents/run/stream", params={"prompt": "one two"}, headers=headers
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = await read_sse(response)
    kinds = [event.event for event in events]
    assert kinds[:2] == ["tool_call", "tool_result"]
    assert kinds[-2:] == ["usage", "done"]
    text = "".join(e.json()["text"] for e in events if e.event == "text")
    assert text == "You said: one two"
    ids = [int(e.id) for e in events if e.id is not None]
    assert ids == sorted(set(ids))
    # --8<-- [end:sse]


async def test_sse_sends_keepalive_pings_while_the_agent_is_silent(
    make_settings: SettingsFactory, headers: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A `: ping` comment after SSE_PING_SECONDS (15) without an event.
    monkeypatch.setattr(agent_routes, "SSE_PING_SECONDS", 0.1)
    settings = make_settings(fake_agent_delay_seconds=0.3)
    async with (
        live_server(settings) as address,
        httpx.AsyncClient() as client,
        client.stream(
            "GET",
            f"http://{address}/agents/run/stream",
            params={"prompt": "slow"},
            headers=headers,
        ) as response,
    ):
        events = await read_sse(response)
    assert any("ping" in event.comments for event in events)
    assert events[-1].event == "done"


async def test_sse_reports_a_timeout_as_an_error_event(
    make_settings: SettingsFactory, headers: dict[str, str]
) -> None:
    settings = make_settings(fake_agent_delay_seconds=0.2, agent_timeout_seconds=0.3)
    async with (
        app_client(settings) as client,
        client.stream(
            "GET", "/agents/run/stream", params={"prompt": "a b c d"}, headers=headers
        ) as response,
    ):
        events = await read_sse(response)
    assert events[-1].event == "error"
    assert "in time" in events[-1].json()["text"]


# --8<-- [start:disconnect]
async def test_sse_client_disconnect_stops_the_stream(
    make_settings: SettingsFactory, headers: dict[str, str]
) -> None:
    settings = make_settings(fake_agent_delay_seconds=0.05)
    prompt = " ".join(["word"] * 200)
    async with live_server(settings) as address, httpx.AsyncClient() as client:
        async with client.stream(
            "GET", f"http://{address}/agents/run/stream", params={"prompt": prompt}, headers=headers
        ) as response:
            async for line in response.aiter_lines():
                if line.startswith("event: text"):
                    break
        # The server notices, closes the agent stream and counts the run as disconnected.
        for _ in range(50):
            metrics = (await client.get(f"http://{address}/metrics")).text
            if 'agent_runs_total{mode="stream",outcome="disconnected"}' in metrics:
                break
            await asyncio.sleep(0.1)
        else:
            pytest.fail("the server did not record the disconnect")
            # --8<-- [end:disconnect]


async def test_an_open_stream_or_websocket_run_costs_at_most_three_tasks(
    make_settings: SettingsFactory, headers: dict[str, str]
) -> None:
    # The request's, the run's and its run slot's lease renewal: no task per heartbeat, no
    # producer/forwarder pair per SSE stream. At thousands of streams every task and what
    # it holds is memory and garbage-collector time (scripts/bench-app --streams).
    settings = make_settings(fake_agent_delay_seconds=0.2, agent_max_concurrent_runs_per_user=8)
    prompt = " ".join(["word"] * 50)
    async with (
        live_server(settings) as address,
        httpx.AsyncClient() as client,
        contextlib.AsyncExitStack() as open_streams,
    ):
        idle = len(asyncio.all_tasks())
        readers = []  # a dropped line iterator would close its stream
        for _ in range(4):
            response = await open_streams.enter_async_context(
                client.stream(
                    "GET",
                    f"http://{address}/agents/run/stream",
                    params={"prompt": prompt},
                    headers=headers,
                )
            )
            readers.append(lines := response.aiter_lines())
            while not (await anext(lines)).startswith("event: tool_call"):
                pass
            # ping_interval=None: the client's own keep-alive task is not the server's.
            ws = await connect(
                f"ws://{address}/agents/ws", additional_headers=headers, ping_interval=None
            )
            open_streams.push_async_callback(ws.close)
            assert (await receive(ws))["type"] == "ready"
            await ws.send(json.dumps({"type": "run", "prompt": prompt}))
            assert (await receive(ws))["type"] == "tool_call"
        assert len(asyncio.all_tasks()) - idle <= 3 * 8


async def test_start_up_objects_are_frozen_out_of_collections_while_serving(
    make_settings: SettingsFactory,
) -> None:
    thresholds = gc.get_threshold()
    async with app_client(make_settings()) as client:
        assert (await client.get("/health")).status_code == 200
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold() == GC_THRESHOLDS
    assert gc.get_freeze_count() == 0
    assert gc.get_threshold() == thresholds


# --- WebSocket over a real server ------------------------------------------------------------


async def receive(ws: ClientConnection) -> dict[str, Any]:
    async with asyncio.timeout(5):
        message: dict[str, Any] = json.loads(await ws.recv())
        return message


async def open_session(address: str, headers: dict[str, str]) -> ClientConnection:
    ws = await connect(f"ws://{address}/agents/ws", additional_headers=headers)
    assert (await receive(ws)) == {"type": "ready"}
    return ws


async def test_websocket_run_ping_and_cancel(
    make_settings: SettingsFactory, headers: dict[str, str]
) -> None:
    settings = make_settings(fake_agent_delay_seconds=0.05)
    async with live_server(settings) as address:
        ws = await open_session(address, headers)
        await ws.send(json.dumps({"type": "ping"}))
        assert (await receive(ws)) == {"type": "pong"}

        await ws.send(json.dumps({"type": "run", "prompt": "hi there"}))
        received: list[dict[str, Any]] = []
        while not received or received[-1]["type"] != "done":
            received.append(await receive(ws))
        text = "".join(m["text"] for m in received if m["type"] == "text")
        assert text == "You said: hi there"
        assert any(m["type"] == "usage" for m in received)

        await ws.send(json.dumps({"type": "run", "prompt": " ".join(["long"] * 500)}))
        assert (await receive(ws))["type"] == "tool_call"
        await ws.send(json.dumps({"type": "cancel"}))
        while (message := await receive(ws))["type"] != "cancelled":
            assert message["type"] in {"tool_result", "text"}
        await ws.close()


async def test_websocket_sends_heartbeat_pings(
    make_settings: SettingsFactory, headers: dict[str, str]
) -> None:
    settings = make_settings(ws_ping_interval_seconds=0.1)
    async with live_server(settings) as address:
        ws = await open_session(address, headers)
        assert (await receive(ws)) == {"type": "ping"}
        await ws.close()


async def test_websocket_closes_1003_on_an_invalid_message(
    make_settings: SettingsFactory, headers: dict[str, str]
) -> None:
    async with live_server(make_settings()) as address:
        ws = await open_session(address, headers)
        await ws.send("{not json")
        with pytest.raises(ConnectionClosed) as closed:
            await receive(ws)
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1003


# --- the per-process cap on concurrent agent runs ---------------------------------------------


async def test_runs_beyond_the_cap_wait_for_a_slot_held_until_the_stream_ends(
    make_settings: SettingsFactory, headers: dict[str, str]
) -> None:
    settings = make_settings(agent_max_concurrent_runs=1, fake_agent_delay_seconds=0.1)
    async with live_server(settings) as address, httpx.AsyncClient(timeout=30) as client:
        base = f"http://{address}"
        async with client.stream(
            "GET", f"{base}/agents/run/stream", params={"prompt": "a b c d e f"}, headers=headers
        ) as stream:
            lines = stream.aiter_lines()
            async for line in lines:
                if line.startswith("event: text"):
                    break
            # The stream holds the only slot: a second run waits instead of starting.
            waiting = asyncio.create_task(
                client.post(f"{base}/agents/run", json={"prompt": "next"}, headers=headers)
            )
            await asyncio.sleep(0.3)
            assert not waiting.done()
            async for line in lines:
                if line.startswith("event: done"):
                    break
        response = await asyncio.wait_for(waiting, 10)
        assert response.status_code == 200, response.text
        assert response.json()["output"] == "You said: next"
