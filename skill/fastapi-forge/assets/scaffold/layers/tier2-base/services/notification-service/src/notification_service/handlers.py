"""Event handlers: each runs inside the inbox transaction (see forge_app_platform.inbox)."""

import asyncio
import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from forge_app_common import AgentRunFinished, Envelope, UserRegistered, parse_event

from .config import get_settings
from .models import Notification

CONSUMER = "notification-service"
RUN_MESSAGES = {
    "completed": "Your agent run {job} finished.",
    "failed": "Your agent run {job} failed.",
    "cancelled": "Your agent run {job} was cancelled.",
}


async def send(
    session: AsyncSession, envelope: Envelope, user_id: uuid.UUID, kind: str, message: str
) -> None:
    # A real sender calls the e-mail API here with idempotency key = envelope.event_id.
    if delay := get_settings().notify_send_delay_seconds:
        await asyncio.sleep(delay)
    session.add(
        Notification(
            id=uuid.uuid4(),
            user_id=user_id,
            kind=kind,
            message=message,
            event_id=envelope.event_id,
        )
    )


async def on_user_event(session: AsyncSession, envelope: Envelope) -> None:
    event = parse_event(envelope)  # an unknown type/version raises: retried, then dead-lettered
    if isinstance(event, UserRegistered):
        await send(session, envelope, event.user_id, "welcome", f"Welcome, {event.display_name}!")


async def on_agent_event(session: AsyncSession, envelope: Envelope) -> None:
    event = parse_event(envelope)
    if isinstance(event, AgentRunFinished):
        message = RUN_MESSAGES[event.status].format(job=event.job_id)
        await send(session, envelope, event.user_id, f"agent_run_{event.status}", message)
