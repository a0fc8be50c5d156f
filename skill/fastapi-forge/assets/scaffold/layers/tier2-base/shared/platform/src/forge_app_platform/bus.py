"""What every broker adapter offers; `broker.py` (chosen by the scaffold) implements it.

Delivery is at least once on every broker: an event is acknowledged only after its handler
returned, so a consumer that dies mid-batch gets the unacknowledged events again. Handlers
make that safe by recording the event id with the effect (`inbox.handle_once`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Protocol

from prometheus_client import Counter

from forge_app_common import Envelope

from .tracing import consumer_span

Handler = Callable[[Envelope], Awaitable[None]]

EVENTS_CONSUMED = Counter(
    "events_consumed",
    "Event deliveries by outcome: applied, duplicate (already applied, skipped), failed "
    "(will be retried), dead_lettered.",
    ["topic", "consumer", "outcome"],
)
EVENTS_PUBLISHED = Counter("events_published", "Events handed to the broker.", ["topic"])


def dead_letter_topic(topic: str) -> str:
    return f"{topic}.dlq"


async def deliver(
    handle: Handler, topic: str, group: str, envelope: Envelope, headers: Mapping[str, str]
) -> None:
    """Every adapter hands each event to its handler through here: in a consumer span
    that continues the trace in the message's headers."""
    with consumer_span(topic, group, envelope, headers):
        await handle(envelope)


class Broker(Protocol):
    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def ping(self) -> bool:
        """True when the broker answers; used by /health/ready."""
        ...

    async def publish(
        self, topic: str, envelope: Envelope, headers: Mapping[str, str] | None = None
    ) -> None:
        """Returns once the broker has accepted the event (durably where it can).
        `headers` (trace context) travel as the broker's message headers."""
        ...

    async def consume(self, topic: str, group: str, handle: Handler, stop: asyncio.Event) -> None:
        """Runs until `stop` is set: batches of events to `handle`, acknowledged after it
        returns; an event whose handler failed `max_deliveries` times goes to
        `dead_letter_topic(topic)` with the error."""
        ...
