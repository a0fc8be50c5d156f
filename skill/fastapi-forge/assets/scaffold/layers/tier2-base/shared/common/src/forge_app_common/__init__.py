"""Contracts between the forge-app services: event envelopes and API schemas."""

from .events import (
    TOPIC_USERS,
    Envelope,
    UnknownEventError,
    UserRegistered,
    parse_event,
)
from .schemas import ErrorBody, ErrorResponse, NotificationOut, TokenOut, UserOut

__all__ = [
    "TOPIC_USERS",
    "Envelope",
    "ErrorBody",
    "ErrorResponse",
    "NotificationOut",
    "TokenOut",
    "UnknownEventError",
    "UserOut",
    "UserRegistered",
    "parse_event",
]
