"""`uvicorn --factory order_command.main:create_app`: the command API (no background loops;
the relay is its own process, `order_command.relay`). Migrate first: `alembic upgrade head`."""

from fastapi import FastAPI

from forge_app_platform.app import create_service_app

from .config import Settings, get_settings
from .routes import router


def create_app(settings: Settings | None = None) -> FastAPI:
    return create_service_app(settings or get_settings(), [router])
