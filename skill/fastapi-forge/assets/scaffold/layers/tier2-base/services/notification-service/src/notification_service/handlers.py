"""Event handlers: each runs inside the inbox transaction (see forge_app_platform.inbox)."""

import asyncio
import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from forge_app_common import Envelope, UserRegistered, parse_event

from .config import get_settings
from .models import Notification

CONSUMER = "notification-service"


async def on_user_event(session: AsyncSession, envelope: Envelope) -> None:
    event = parse_event(envelope)  # an unknown type/version raises: retried, then dead-lettered
    if not isinstance(event, UserRegistered):
        return
    # A real sender calls the e-mail API here with idempotency key = envelope.event_id.
    if delay := get_settings().notify_send_delay_seconds:
        await asyncio.sleep(delay)
    session.add(
        Notification(
            id=uuid.uuid4(),
            user_id=event.user_id,
            kind="welcome",
            message=f"Welcome, {event.display_name}!",
            event_id=envelope.event_id,
        )
    )
