"""Each SDK runner inside a generated app: scaffolded with `--agent <sdk>`, installed with its
SDK, started under uvicorn with AGENT_RUNNER=sdk and AGENT_BASE_URL at a fake model server,
and driven through /agents/run, /agents/run/stream and /agents/ws."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fakes.anthropic import FakeAnthropic
from fakes.http import FakeHTTPServer, Hangups
from fakes.openai import FakeOpenAI
from fakes.script import FINAL_TEXT, TOOL_ARGUMENTS, TOOL_NAME, TOOL_OUTPUT, Script
from forge_testing import Server, start_uvicorn
from forge_testing.scaffolding import scaffold
from httpx_sse import connect_sse
from sdk_venvs import SDKS, ensure_sdk_venv
from websockets.asyncio.client import connect as ws_connect

PROMPT = "How many words are in 'agents stream tokens'? Use the tool."
# Long enough for a run against a loopback fake (the Claude Code CLI starts in about a
# second), short enough that the timeout test does not wait long.
AGENT_TIMEOUT_SECONDS = 10

# sdk -> (fake provider, AGENT_MODEL, base URL path the SDK's client expects)
PROVIDERS: dict[str, tuple[type[FakeHTTPServer], str, str]] = {
    "anthropic": (FakeAnthropic, "claude-sonnet-5", ""),
    "claude-agent-sdk": (FakeAnthropic, "claude-sonnet-5", ""),
    "openai-agents": (FakeOpenAI, "gpt-5.6-luna", "/v1"),
    "langgraph": (FakeAnthropic, "claude-sonnet-5", ""),
    "crewai": (FakeOpenAI, "openai/gpt-5.6-luna", "/v1"),
}


# What a generated app needs beyond the provider's settings to play the fakes' script.
EXTRA_ENV: dict[str, dict[str, str]] = {
    # The Messages API runner gives the model no tool unless AGENT_TOOLS names it.
    "anthropic": {"AGENT_TOOLS": '["count_words"]'},
}


class App:
    def __init__(self, server: Server, fake: Any) -> None:
        self.server = server
        self.fake = fake

    def new_script(self, stall: Any = None) -> Script:
        self.fake.script = Script(stall=stall)
        self.fake.hangups = Hangups()
        return self.fake.script


@pytest.fixture(scope="module", params=SDKS)
def app(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, redis_url: str
) -> Iterator[App]:
    sdk: str = request.param
    venv = ensure_sdk_venv(sdk)
    python = venv.python
    root = tmp_path_factory.mktemp(f"app-{sdk}")
    name = f"forge-{sdk}-app"
    app_root = scaffold(
        root / name,
        name=name,
        agent=sdk,
        db="none",
        auth="none",
        queue="none",
        deploy="compose",
    )
    # Into the SDK's venv, so the app runs with exactly the SDK the checks use.
    venv.install(app_root, cwd=root)

    fake_class, model, path = PROVIDERS[sdk]
    fake = fake_class().start()
    home = root / "home"  # the Claude Code CLI keeps its config under $HOME
    home.mkdir()
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "REDIS_URL": redis_url,
        "AGENT_RUNNER": "sdk",
        "AGENT_MODEL": model,
        "AGENT_API_KEY": "sk-test-not-a-real-key",
        "AGENT_BASE_URL": fake.url + path,
        "AGENT_TIMEOUT_SECONDS": str(AGENT_TIMEOUT_SECONDS),
        "AGENT_MAX_TURNS": "4",
        "LOG_JSON": "false",
        **EXTRA_ENV.get(sdk, {}),
    }
    server = start_uvicorn(
        f"{name.replace('-', '_')}.main:create_app",
        factory=True,
        python=python,
        cwd=root,
        env=env,
        log_dir=root / "logs",
        name=f"app-{sdk}",
    )
    yield App(server, fake)
    server.stop()
    fake.stop()


def assert_usage(usage: list[dict[str, Any]], script: Script) -> None:
    reported = {
        u["model"]: (
            u["input_tokens"],
            u["output_tokens"],
            u["cache_read_tokens"],
            u["cache_write_tokens"],
        )
        for u in usage
    }
    expected = {
        model: (t.input_tokens, t.output_tokens, t.cache_read_tokens, t.cache_write_tokens)
        for model, t in script.reported().items()
    }
    assert reported == expected


def assert_tool_calls(tool_calls: list[dict[str, Any]], script: Script) -> None:
    (asked,) = [turn for turn in script.played if turn.kind == "tool_call"]
    assert tool_calls == [{"id": asked.call_id, "name": TOOL_NAME, "arguments": TOOL_ARGUMENTS}]


def test_run_answers_with_tool_calls_and_usage(app: App) -> None:
    script = app.new_script()
    response = httpx.post(f"{app.server.url}/agents/run", json={"prompt": PROMPT}, timeout=60)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["output"] == FINAL_TEXT
    assert_tool_calls(body["tool_calls"], script)
    assert_usage(body["usage"], script)


def test_stream_sends_tool_events_text_and_usage(app: App) -> None:
    script = app.new_script()
    events: list[tuple[str, dict[str, Any]]] = []
    with (
        httpx.Client(timeout=60) as client,
        connect_sse(
            client, "GET", f"{app.server.url}/agents/run/stream", params={"prompt": PROMPT}
        ) as source,
    ):
        for sse in source.iter_sse():
            events.append((sse.event, json.loads(sse.data)))
            if sse.event in ("done", "error"):
                break
    kinds = [kind for kind, _ in events]
    assert kinds[-1] == "done", events
    assert kinds.index("tool_call") < kinds.index("tool_result") < kinds.index("text")
    texts = [e["text"] for kind, e in events if kind == "text"]
    assert "".join(texts) == FINAL_TEXT
    assert len(texts) > 1
    assert_tool_calls([e["data"] for kind, e in events if kind == "tool_call"], script)
    assert [e["data"]["output"] for kind, e in events if kind == "tool_result"] == [TOOL_OUTPUT]
    assert_usage([e["usage"] for kind, e in events if kind == "usage"], script)


async def ws_messages(ws: Any) -> Any:
    async for raw in ws:
        message = json.loads(raw)
        if message["type"] != "ping":
            yield message


async def test_websocket_runs_and_streams(app: App) -> None:
    script = app.new_script()
    async with asyncio.timeout(60), ws_connect(f"{app.server.ws_url}/agents/ws") as ws:
        messages = ws_messages(ws)
        assert (await anext(messages))["type"] == "ready"
        await ws.send(json.dumps({"type": "run", "prompt": PROMPT}))
        received = []
        async for message in messages:
            received.append(message)
            if message["type"] in ("done", "error"):
                break
    kinds = [m["type"] for m in received]
    assert kinds[-1] == "done", received
    assert "".join(m["text"] for m in received if m["type"] == "text") == FINAL_TEXT
    assert_tool_calls([m["data"] for m in received if m["type"] == "tool_call"], script)
    assert_usage([m["usage"] for m in received if m["type"] == "usage"], script)


async def test_websocket_cancel_mid_stream_closes_the_model_call(app: App) -> None:
    app.new_script(stall="after_first_text")
    async with asyncio.timeout(60), ws_connect(f"{app.server.ws_url}/agents/ws") as ws:
        messages = ws_messages(ws)
        assert (await anext(messages))["type"] == "ready"
        await ws.send(json.dumps({"type": "run", "prompt": PROMPT}))
        async for message in messages:
            if message["type"] == "text":
                break
            assert message["type"] in ("tool_call", "tool_result"), message
        await ws.send(json.dumps({"type": "cancel"}))
        assert (await anext(messages))["type"] == "cancelled"
    assert await asyncio.to_thread(app.fake.hangups.wait, 10), "the model call was left open"


def test_sse_disconnect_closes_the_model_call_and_cleans_up(app: App) -> None:
    """A client that leaves an SSE stream mid-answer: the model call is closed (the fake
    sees the hang-up) and the runner's cleanup runs to its end, which a cancel scope that
    keeps cancelling every await in it would cut short."""
    app.new_script(stall="after_first_text")
    log = app.server.process
    text_before = log.log_text()
    closed_before = text_before.count("agent_run_closed")
    with (
        httpx.Client(timeout=60) as client,
        connect_sse(
            client, "GET", f"{app.server.url}/agents/run/stream", params={"prompt": PROMPT}
        ) as source,
    ):
        kinds = []
        for sse in source.iter_sse():
            kinds.append(sse.event)
            if sse.event == "text":
                break
    assert kinds[-1] == "text", f"the stream ended before any text: {kinds}"
    assert app.fake.hangups.wait(10), "the model call was left open"
    deadline = time.monotonic() + 15
    while log.log_text().count("agent_run_closed") == closed_before:
        assert time.monotonic() < deadline, log.log_text(40)
        time.sleep(0.1)
    (line,) = [x for x in log.log_text().splitlines() if "agent_run_closed" in x][closed_before:]
    assert "cleanup=completed" in line, line
    # A client leaving is the stream's normal end, not an error of the app.
    time.sleep(0.5)
    after = log.log_text()[len(text_before) :]
    assert "Traceback" not in after, after


def test_run_times_out_and_closes_the_model_call(app: App) -> None:
    app.new_script(stall="at_start")
    response = httpx.post(f"{app.server.url}/agents/run", json={"prompt": PROMPT}, timeout=60)
    assert response.status_code == 504, response.text
    assert app.fake.hangups.wait(10), "the model call was left open"
