"""Test helpers: an in-process client with lifespan, a real uvicorn server, SSE parsing."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import uvicorn
from asgi_lifespan import LifespanManager
from pydantic import SecretStr
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from forge_app.config import Settings
from forge_app.main import create_app


class ArgumentsOnly(BaseSettings):
    """Mixin for settings classes in tests: values come from the constructor's arguments and
    the defaults only, never from the developer's `.env` or shell, so `cp .env.example .env`
    (or an exported AGENT_MODEL) changes no test's outcome."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


class TestSettings(ArgumentsOnly, Settings):
    __test__ = False  # not a test class, despite the name


# --8<-- [start:app-client]
@asynccontextmanager
async def app_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The app in-process with its lifespan run, as the ASGI server would."""
    app = create_app(settings)
    async with (
        LifespanManager(app) as manager,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=manager.app), base_url="http://testserver"
        ) as client,
    ):
        yield client
        # --8<-- [end:app-client]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@asynccontextmanager
async def live_server(settings: Settings) -> AsyncIterator[str]:
    """A real uvicorn server on a free loopback port, in this event loop."""
    port = free_port()
    config = uvicorn.Config(
        create_app(settings), host="127.0.0.1", port=port, log_config=None, lifespan="on"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(10):
            while not server.started:
                if task.done():
                    task.result()
                await asyncio.sleep(0.02)
        yield f"127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


def settings_env(settings: Settings) -> dict[str, str]:
    """The settings as environment variables, for a server in another process."""
    env: dict[str, str] = {}
    for name, value in settings:
        if value is None:
            continue
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        env[name.upper()] = value if isinstance(value, str) else json.dumps(value)
    return env


@asynccontextmanager
async def uvicorn_process(
    settings: Settings, *, workers: int, extra_env: dict[str, str] | None = None
) -> AsyncIterator[str]:
    """`uvicorn --workers N` as a separate process, as in production."""
    port = free_port()
    env = {**os.environ, **settings_env(settings), **(extra_env or {})}
    process = subprocess.Popen(  # noqa: ASYNC220, S603 - a long-lived child; fixed argv
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "forge_app.main:create_app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
            # uvicorn restarts a worker that misses a 5 s health check; on a loaded test
            # machine start-up alone can take longer.
            "--timeout-worker-healthcheck",
            "60",
        ],
        env=env,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        async with httpx.AsyncClient(base_url=base) as client:
            while True:
                if process.poll() is not None:
                    raise RuntimeError(f"uvicorn exited with {process.returncode}")
                try:
                    if (await client.get("/health")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError("uvicorn did not become healthy")
                await asyncio.sleep(0.1)
        yield base
    finally:
        process.terminate()
        await asyncio.to_thread(process.wait, 20)


@dataclass
class SseEvent:
    event: str = "message"
    data: str = ""
    id: str | None = None
    comments: list[str] = field(default_factory=list)

    def json(self) -> Any:
        return json.loads(self.data)


async def read_sse(response: httpx.Response) -> list[SseEvent]:
    """Parse a text/event-stream body into events; comment-only blocks are kept."""
    events: list[SseEvent] = []
    current = SseEvent()
    seen = False
    async for line in response.aiter_lines():
        if line == "":
            if seen:
                events.append(current)
            current, seen = SseEvent(), False
            continue
        seen = True
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "":
            current.comments.append(value)
        elif name == "event":
            current.event = value
        elif name == "data":
            current.data = f"{current.data}\n{value}" if current.data else value
        elif name == "id":
            current.id = value
    return events
