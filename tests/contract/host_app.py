"""A small existing app with agent_routes.py mounted, as the template's docstring says."""

from __future__ import annotations

import os

from agent_routes import FakeRunner, install_agent_routes, jwt_verifier
from fastapi import FastAPI


def create_app() -> FastAPI:
    app = FastAPI(title="host")

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    install_agent_routes(
        app,
        runner=FakeRunner(
            delay_seconds=float(os.environ.get("FAKE_AGENT_DELAY_SECONDS", "0"))
        ),
        verify_token=jwt_verifier(
            os.environ["JWT_SECRET"],
            audience=os.environ["JWT_AUDIENCE"],
            issuer=os.environ["JWT_ISSUER"],
        ),
    )
    return app
