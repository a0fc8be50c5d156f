"""The one-file templates with a runner whose cleanup awaits, as a real SDK's
`await client.interrupt()` does (their FakeRunner's cleanup awaits nothing, so it cannot
show a cleanup cut short). uvicorn factories: `single_api_app`, `agent_routes_app`."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from fastapi import FastAPI

# Long enough that a slot freed before the cleanup ended shows in the journal.
INTERRUPT_SECONDS = 1.0


class InterruptingRunner:
    """First a text chunk, then (unless the prompt is "quick") it waits for ever; when
    stopped it awaits INTERRUPT_SECONDS of "interrupt" before its cleanup is done.
    Each step is a line `<step> <time.time()>` in the journal file."""

    name = "interrupting"

    def __init__(self, journal: Path, chunk: Any) -> None:
        self.journal = journal
        self.chunk = chunk

    def note(self, step: str) -> None:
        with self.journal.open("a") as out:
            out.write(f"{step} {time.time()}\n")

    async def stream(self, request: Any) -> AsyncIterator[Any]:
        self.note("started")
        try:
            yield self.chunk("text", text="first")
            if request.prompt != "quick":
                await asyncio.sleep(3600)
        finally:
            if request.prompt != "quick":
                self.note("cleanup-started")
                await asyncio.sleep(INTERRUPT_SECONDS)  # await client.interrupt()
                self.note("cleanup-completed")


def journal() -> Path:
    return Path(os.environ["RUN_JOURNAL"])


def single_api_app() -> FastAPI:
    import single_api

    def build_runner(_: Any) -> InterruptingRunner:
        return InterruptingRunner(journal(), single_api.AgentChunk)

    single_api.build_runner = build_runner  # type: ignore[assignment]
    return single_api.create_app()


def agent_routes_app() -> FastAPI:
    import agent_routes

    app = FastAPI()

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    agent_routes.install_agent_routes(
        app,
        runner=InterruptingRunner(journal(), agent_routes.AgentChunk),
        verify_token=agent_routes.jwt_verifier(
            os.environ["JWT_SECRET"], audience="forge-app", issuer="forge-app"
        ),
    )
    return app
