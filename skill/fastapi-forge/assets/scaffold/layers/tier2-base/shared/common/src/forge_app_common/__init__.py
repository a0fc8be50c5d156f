"""Contracts between the forge-app services: event envelopes and API schemas."""

from .events import (
    TOPIC_AGENTS,
    TOPIC_USERS,
    AgentRunFinished,
    Envelope,
    UnknownEventError,
    UserDeleted,
    UserRegistered,
    parse_event,
)
from .schemas import ErrorBody, ErrorResponse, NotificationOut, TokenOut, UserOut

__all__ = [
    "TOPIC_AGENTS",
    "TOPIC_USERS",
    "AgentRunFinished",
    "Envelope",
    "ErrorBody",
    "ErrorResponse",
    "NotificationOut",
    "TokenOut",
    "UnknownEventError",
    "UserDeleted",
    "UserOut",
    "UserRegistered",
    "parse_event",
]
