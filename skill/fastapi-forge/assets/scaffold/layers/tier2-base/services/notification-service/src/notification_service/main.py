"""`uvicorn notification_service.main:app`; apply migrations first: `alembic upgrade head`.

The consumer runs in the API process (one deployable); scale consumers by replicas, each
with its own CONSUMER_NAME (the pod name).
"""

from fastapi import FastAPI

from forge_app_common import TOPIC_AGENTS, TOPIC_USERS
from forge_app_platform.app import Runtime, create_service_app
from forge_app_platform.inbox import idempotent

from .config import Settings, get_settings
from .handlers import CONSUMER, on_agent_event, on_user_event
from .routes import router


async def consume_user_events(runtime: Runtime) -> None:
    handle = idempotent(runtime.db.sessions, TOPIC_USERS, CONSUMER, on_user_event)
    await runtime.broker.consume(TOPIC_USERS, CONSUMER, handle, runtime.stop)


async def consume_agent_events(runtime: Runtime) -> None:
    handle = idempotent(runtime.db.sessions, TOPIC_AGENTS, CONSUMER, on_agent_event)
    await runtime.broker.consume(TOPIC_AGENTS, CONSUMER, handle, runtime.stop)


def create_app(settings: Settings | None = None) -> FastAPI:
    return create_service_app(
        settings or get_settings(), [router], [consume_user_events, consume_agent_events]
    )


def __getattr__(name: str) -> FastAPI:
    # Built on first access: importing the module (tests, tools) needs no environment.
    if name == "app":
        application = create_app()
        globals()["app"] = application
        return application
    raise AttributeError(name)
