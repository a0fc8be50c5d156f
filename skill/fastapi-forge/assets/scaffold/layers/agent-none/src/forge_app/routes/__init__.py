"""The routers `create_app` mounts, in order. Add your own here."""

from __future__ import annotations

from fastapi import FastAPI

from ..config import Settings
from . import health, identity, tickets


def include_routes(app: FastAPI, settings: Settings) -> None:
    app.include_router(health.router)
    app.include_router(identity.router)
    app.include_router(tickets.router)
