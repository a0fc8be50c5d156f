"""Event envelope and event payloads.

Rules that keep producers and consumers deployable on their own:
- every event carries `type` and `schema_version`; a breaking change is a new version,
  published side by side until every consumer has moved;
- payloads ignore unknown fields, so producers may add optional fields at any time;
- `event_id` is the idempotency key: consumers record it with the effect.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

# One topic (Redis stream, RabbitMQ routing key, Kafka topic) per producing domain.
TOPIC_USERS = "users.events"
TOPIC_AGENTS = "agents.events"


class EventPayload(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    event_type: ClassVar[str]
    schema_version: ClassVar[int] = 1


class UserRegistered(EventPayload):
    event_type: ClassVar[str] = "user.registered"

    user_id: uuid.UUID
    email: str
    display_name: str


class UserDeleted(EventPayload):
    """The account is gone: services drop or stop what they hold for it."""

    event_type: ClassVar[str] = "user.deleted"

    user_id: uuid.UUID


class AgentRunFinished(EventPayload):
    """An agent job reached a final state (published once per job, with that state)."""

    event_type: ClassVar[str] = "agent.run.finished"

    job_id: uuid.UUID
    user_id: uuid.UUID
    status: Literal["completed", "failed", "cancelled"]
    error: str | None = None


class Envelope(BaseModel):
    """What travels on the bus: metadata plus the payload as plain JSON."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    event_id: uuid.UUID = Field(default_factory=uuid.uuid4)
    type: str
    schema_version: int
    occurred_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    producer: str
    # Ties the event to the request that caused it (X-Request-ID), for tracing.
    correlation_id: str | None = None
    data: dict[str, Any]

    @classmethod
    def wrap(
        cls, payload: EventPayload, *, producer: str, correlation_id: str | None = None
    ) -> Envelope:
        return cls(
            type=payload.event_type,
            schema_version=payload.schema_version,
            producer=producer,
            correlation_id=correlation_id,
            data=payload.model_dump(mode="json"),
        )


class UnknownEventError(ValueError):
    """A type or version this consumer does not know; dead-letter it, never guess."""


KNOWN_EVENTS: dict[tuple[str, int], type[EventPayload]] = {
    (model.event_type, model.schema_version): model
    for model in (UserRegistered, UserDeleted, AgentRunFinished)
}


def parse_event(envelope: Envelope) -> EventPayload:
    model = KNOWN_EVENTS.get((envelope.type, envelope.schema_version))
    if model is None:
        raise UnknownEventError(f"{envelope.type} v{envelope.schema_version}")
    return model.model_validate(envelope.data)
