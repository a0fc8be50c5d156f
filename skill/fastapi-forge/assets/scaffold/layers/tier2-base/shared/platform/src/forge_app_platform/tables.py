"""Messaging tables each service's first migration creates (with its own tables)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Index, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from .db import Base


def _now() -> datetime:
    return datetime.now(UTC)


class OutboxEvent(Base):
    """Events written in the same transaction as the change they describe."""

    __tablename__ = "outbox"
    __table_args__ = (
        # The relay's scan: unpublished rows in order, and nothing else.
        Index("ix_outbox_unpublished", "created_at", postgresql_where="published_at IS NULL"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    topic: Mapped[str] = mapped_column(String(200))
    # Message headers: the trace context of the code that created the event.
    headers: Mapped[dict[str, str] | None] = mapped_column(JSON)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)
    published_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ProcessedEvent(Base):
    """Inbox: one row per (consumer, event) applied; a redelivery hits the primary key."""

    __tablename__ = "processed_events"

    consumer: Mapped[str] = mapped_column(String(100), primary_key=True)
    event_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    processed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)
