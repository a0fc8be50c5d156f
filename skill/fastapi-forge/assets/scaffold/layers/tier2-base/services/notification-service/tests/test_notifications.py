import asyncio
import uuid
from collections.abc import Callable

import httpx
from prometheus_client import REGISTRY

from forge_app_common import TOPIC_USERS, Envelope, UserRegistered
from forge_app_platform.broker import create_broker

from notification_service.config import Settings


async def publish_when_subscribed(settings: Settings, *envelopes: Envelope) -> None:
    """The service's consumer subscribes at start-up; brokers that refuse unroutable
    events (RabbitMQ) accept them once it has."""
    broker = create_broker(settings)
    await broker.start()
    try:
        async with asyncio.timeout(15):
            while True:
                try:
                    for envelope in envelopes:
                        await broker.publish(TOPIC_USERS, envelope)
                    return
                except Exception:
                    await asyncio.sleep(0.2)
    finally:
        await broker.close()


def consumed(outcome: str) -> float:
    value = REGISTRY.get_sample_value(
        "events_consumed_total",
        {"topic": TOPIC_USERS, "consumer": "notification-service", "outcome": outcome},
    )
    return value or 0.0


async def test_an_event_delivered_twice_is_applied_once(
    client: httpx.AsyncClient, settings: Settings, auth: Callable[[str], dict[str, str]]
) -> None:
    user_id = uuid.uuid4()
    envelope = Envelope.wrap(
        UserRegistered(user_id=user_id, email="n@example.com", display_name="Nia"),
        producer="test",
    )
    duplicates_before = consumed("duplicate")
    # Twice: what a relay that crashed between publishing and marking the row causes.
    await publish_when_subscribed(settings, envelope, envelope)
    headers = auth(str(user_id))
    async with asyncio.timeout(15):
        while consumed("duplicate") < duplicates_before + 1:
            await asyncio.sleep(0.05)
    notes = (await client.get("/notify/notifications", headers=headers)).json()
    assert [(n["kind"], n["event_id"]) for n in notes] == [("welcome", str(envelope.event_id))]


async def test_an_unknown_event_version_is_dead_lettered(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    before = consumed("dead_lettered")
    await publish_when_subscribed(
        settings, Envelope(type="user.registered", schema_version=99, producer="test", data={})
    )
    # Retried CONSUMER_MAX_DELIVERIES times (3 in the tests), then dead-lettered.
    async with asyncio.timeout(15):
        while consumed("dead_lettered") < before + 1:
            await asyncio.sleep(0.05)
