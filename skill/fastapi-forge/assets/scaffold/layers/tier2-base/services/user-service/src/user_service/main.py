"""`uvicorn user_service.main:app`; apply migrations first: `alembic upgrade head`."""

from fastapi import FastAPI

from forge_app_platform.app import Runtime, create_service_app
from forge_app_platform.outbox import run_relay

from .config import Settings, get_settings
from .keys import SigningKeys
from .routes import router, well_known


async def outbox_relay(runtime: Runtime) -> None:
    await run_relay(
        runtime.db.sessions, runtime.broker, runtime.stop, runtime.settings.outbox_poll_seconds
    )


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    # Read at start-up: a missing or unreadable key stops the service here, with its name.
    keys = SigningKeys(settings)
    app = create_service_app(settings, [router, well_known], [outbox_relay], keys=keys)
    app.state.keys = keys
    return app


def __getattr__(name: str) -> FastAPI:
    # Built on first access: importing the module (tests, tools) needs no environment.
    if name == "app":
        application = create_app()
        globals()["app"] = application
        return application
    raise AttributeError(name)
