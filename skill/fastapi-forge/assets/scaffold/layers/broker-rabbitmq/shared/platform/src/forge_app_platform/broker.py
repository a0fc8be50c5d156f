"""RabbitMQ through aio-pika: a durable topic exchange, one quorum queue per consuming
service and topic, publisher confirms.

Publishing is mandatory: an event no queue is bound to yet (no consumer ever started) is
returned as an error, so the outbox keeps it and the relay retries. A failed event is
requeued until it has been delivered CONSUMER_MAX_DELIVERIES times, then rejected to the
dead-letter exchange, which feeds `<group>.<topic>.dlq`; the queue's `x-delivery-limit`
does the same for deliveries that die with their consumer. Acknowledgements go out after
the batch: events of a consumer killed mid-batch come back, and the handlers' inbox skips
those already applied.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

import aio_pika
from aio_pika.abc import (
    AbstractIncomingMessage,
    AbstractRobustChannel,
    AbstractRobustConnection,
    AbstractRobustExchange,
)
from pydantic import ValidationError

from forge_app_common import Envelope

from .bus import EVENTS_CONSUMED, Handler, dead_letter_topic, deliver
from .settings import ServiceSettings
from .tracing import text_headers

log = logging.getLogger(__name__)
EXCHANGE = "forge_app.events"
DEAD_LETTER_EXCHANGE = "forge_app.events.dlx"
RETRY_PAUSE_SECONDS = 0.5


class RabbitMQBroker:
    def __init__(self, settings: ServiceSettings) -> None:
        self.settings = settings
        self._connection: AbstractRobustConnection | None = None
        self._channel: AbstractRobustChannel | None = None
        self._exchange: AbstractRobustExchange | None = None
        self.exchange_name = settings.broker_prefix + EXCHANGE
        self.dead_letter_exchange = settings.broker_prefix + DEAD_LETTER_EXCHANGE

    async def start(self) -> None:
        self._connection = await aio_pika.connect_robust(self.settings.broker_url)
        self._channel = await self._connection.channel(
            publisher_confirms=True, on_return_raises=True
        )
        self._exchange = await self._channel.declare_exchange(
            self.exchange_name, aio_pika.ExchangeType.TOPIC, durable=True
        )
        await self._channel.declare_exchange(
            self.dead_letter_exchange, aio_pika.ExchangeType.TOPIC, durable=True
        )

    async def close(self) -> None:
        if self._connection is not None:
            await self._connection.close()

    async def ping(self) -> bool:
        return self._connection is not None and not self._connection.is_closed

    async def publish(
        self, topic: str, envelope: Envelope, headers: Mapping[str, str] | None = None
    ) -> None:
        if self._exchange is None:
            raise RuntimeError("broker not started")
        # With publisher confirms this returns once RabbitMQ has taken the message.
        await self._exchange.publish(
            aio_pika.Message(
                envelope.model_dump_json().encode(),
                content_type="application/json",
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                message_id=str(envelope.event_id),
                type=envelope.type,
                headers=dict(headers or {}),
            ),
            routing_key=topic,
            mandatory=True,
        )

    async def consume(self, topic: str, group: str, handle: Handler, stop: asyncio.Event) -> None:
        if self._connection is None:
            raise RuntimeError("broker not started")
        channel = await self._connection.channel()
        await channel.set_qos(prefetch_count=self.settings.consumer_batch_size)
        queue_name = f"{self.settings.broker_prefix}{group}.{topic}"
        exchange = await channel.get_exchange(self.exchange_name)
        dead_letters = await channel.declare_queue(
            dead_letter_topic(queue_name),
            durable=True,
            arguments={"x-queue-type": "quorum"},
        )
        await dead_letters.bind(self.dead_letter_exchange, routing_key=queue_name)
        queue = await channel.declare_queue(
            queue_name,
            durable=True,
            arguments={
                "x-queue-type": "quorum",
                # Backstop for deliveries that never reach a handler (a crash loop).
                "x-delivery-limit": self.settings.consumer_max_deliveries,
                "x-dead-letter-exchange": self.dead_letter_exchange,
                "x-dead-letter-routing-key": queue_name,
            },
        )
        await queue.bind(exchange, routing_key=topic)
        inbox: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()
        tag = await queue.consume(inbox.put)
        try:
            while not stop.is_set():
                batch = await self._next_batch(inbox, stop)
                await self._handle_batch(topic, group, batch, handle)
        finally:
            await queue.cancel(tag)
            await channel.close()  # unacknowledged deliveries return to the queue

    async def _next_batch(
        self, inbox: asyncio.Queue[AbstractIncomingMessage], stop: asyncio.Event
    ) -> list[AbstractIncomingMessage]:
        try:
            first = await asyncio.wait_for(inbox.get(), 1.0)
        except TimeoutError:
            return []
        batch = [first]
        while len(batch) < self.settings.consumer_batch_size and not inbox.empty():
            batch.append(inbox.get_nowait())
        return batch

    async def _handle_batch(
        self,
        topic: str,
        group: str,
        batch: list[AbstractIncomingMessage],
        handle: Handler,
    ) -> None:
        done: list[AbstractIncomingMessage] = []
        for message in batch:
            try:
                envelope = Envelope.model_validate_json(message.body)
            except ValidationError:
                EVENTS_CONSUMED.labels(topic, group, "dead_lettered").inc()
                log.error("undecodable message %s dead-lettered", message.message_id)
                await message.reject(requeue=False)  # to the dead-letter exchange
                continue
            try:
                await deliver(handle, topic, group, envelope, text_headers(message.headers))
            except Exception:
                EVENTS_CONSUMED.labels(topic, group, "failed").inc()
                log.exception("event %s (%s) failed", envelope.event_id, envelope.type)
                if earlier_deliveries(message) + 1 >= self.settings.consumer_max_deliveries:
                    EVENTS_CONSUMED.labels(topic, group, "dead_lettered").inc()
                    await message.reject(requeue=False)  # to the dead-letter exchange
                else:
                    await asyncio.sleep(RETRY_PAUSE_SECONDS)
                    await message.nack(requeue=True)
                continue
            done.append(message)
        for message in done:
            await message.ack()


def earlier_deliveries(message: AbstractIncomingMessage) -> int:
    """Quorum queues count earlier deliveries in `x-delivery-count`. On a first delivery
    the header is whatever the publisher set, so any value that is not a count is 0."""
    value = message.headers.get("x-delivery-count")
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    try:
        return max(int(value), 0) if isinstance(value, int | str) else 0
    except ValueError:
        return 0


def create_broker(settings: ServiceSettings) -> RabbitMQBroker:
    return RabbitMQBroker(settings)
