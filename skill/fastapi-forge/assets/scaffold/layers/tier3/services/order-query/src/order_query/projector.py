"""`uvicorn --factory order_query.projector:create_app`: consumes order events and keeps
the read model current. Its own deployable, with /health/ready and /metrics; scale it by
replicas, each with its own CONSUMER_NAME (the pod name).

Every event goes through the inbox (`processed_events`, in the same transaction as the
change), so a batch redelivered after a crash is skipped; the version check in the
projection also covers events the inbox has not seen, such as after a rebuild.
"""

from datetime import UTC, datetime

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession

from forge_app_common import Envelope
from forge_app_common.orders import TOPIC_ORDERS
from forge_app_platform.app import Runtime, create_service_app
from forge_app_platform.inbox import idempotent

from .config import Settings, get_settings
from .models import VIEWS_TABLE, order_views
from .projection import PROJECTION_DELAY, apply_order_event

CONSUMER = "order-projector"


async def project(session: AsyncSession, envelope: Envelope) -> None:
    if await apply_order_event(session, order_views, envelope):
        delay = (datetime.now(UTC) - envelope.occurred_at).total_seconds()
        PROJECTION_DELAY.labels(VIEWS_TABLE).observe(max(delay, 0.0))


async def consume_order_events(runtime: Runtime) -> None:
    handle = idempotent(runtime.db.sessions, TOPIC_ORDERS, CONSUMER, project)
    await runtime.broker.consume(TOPIC_ORDERS, CONSUMER, handle, runtime.stop)


def create_app(settings: Settings | None = None) -> FastAPI:
    return create_service_app(settings or get_settings(), [], [consume_order_events])
