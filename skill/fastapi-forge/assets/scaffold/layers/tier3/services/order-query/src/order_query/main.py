"""`uvicorn --factory order_query.main:create_app`: the query API over the read model (the
projector is its own process, `order_query.projector`). Migrate first: `alembic upgrade
head`."""

from fastapi import FastAPI

from forge_app_platform.app import create_service_app

from .config import Settings, get_settings
from .routes import router


def create_app(settings: Settings | None = None) -> FastAPI:
    return create_service_app(settings or get_settings(), [router])
