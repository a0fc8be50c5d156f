"""SQLAlchemy models. Change them, then `alembic revision --autogenerate -m "..."`."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, CheckConstraint, DateTime, Float, String, Text, Uuid
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from .schemas import JobStatus


class Base(DeclarativeBase):
    pass


STATUSES = ", ".join(f"'{status.value}'" for status in JobStatus)


class AgentJob(Base):
    __tablename__ = "agent_jobs"
    __table_args__ = (CheckConstraint(f"status IN ({STATUSES})", name="agent_jobs_status"),)

    job_id: Mapped[uuid.UUID] = mapped_column("id", Uuid, primary_key=True, default=uuid.uuid4)
    owner: Mapped[str] = mapped_column(String(255), index=True)
    prompt: Mapped[str] = mapped_column(Text)
    model: Mapped[str | None] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), index=True)
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    result: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(String(500))
    # One entry per model: {"model", "input_tokens", "output_tokens", ...}.
    usage: Mapped[list[dict[str, Any]]] = mapped_column(
        JSON().with_variant(JSONB(), "postgresql"), default=list
    )
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The running job's lease, renewed by its worker; the reaper fails it once expired.
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
