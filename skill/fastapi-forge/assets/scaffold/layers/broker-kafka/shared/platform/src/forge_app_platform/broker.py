"""Kafka through aiokafka (BROKER_URL=kafka://host:9092[,host2:9092]): one topic per
producing domain, one consumer group per consuming service, offsets committed by hand
after each batch.

Kafka has no per-message acknowledgement: a failing event is retried here, in place, up
to CONSUMER_MAX_DELIVERIES times with backoff, then written to `<topic>.dlq` so the
partition moves on. A consumer killed mid-batch resumes from the last committed offset;
the handlers' inbox skips the events it had already applied.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from urllib.parse import urlsplit

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaError
from pydantic import ValidationError

from forge_app_common import Envelope

from .bus import EVENTS_CONSUMED, Handler, dead_letter_topic, deliver
from .settings import ServiceSettings
from .tracing import text_headers

log = logging.getLogger(__name__)


def bootstrap_servers(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme != "kafka" or not parts.netloc:
        raise ValueError(f"BROKER_URL {url!r}: expected kafka://host:port[,host:port]")
    return parts.netloc


class KafkaBroker:
    def __init__(self, settings: ServiceSettings) -> None:
        self.settings = settings
        self.servers = bootstrap_servers(settings.broker_url)
        # acks=all + idempotence: an accepted event survives a broker failover, and the
        # producer's own retries do not write it twice.
        self.producer = AIOKafkaProducer(
            bootstrap_servers=self.servers, acks="all", enable_idempotence=True
        )

    async def start(self) -> None:
        await self.producer.start()

    async def close(self) -> None:
        await self.producer.stop()

    async def ping(self) -> bool:
        await self.producer.client.fetch_all_metadata()
        return True

    async def publish(
        self, topic: str, envelope: Envelope, headers: Mapping[str, str] | None = None
    ) -> None:
        # Keyed by event id: a partition per key keeps one event's copies in order.
        await self.producer.send_and_wait(
            self.settings.broker_prefix + topic,
            envelope.model_dump_json().encode(),
            key=str(envelope.event_id).encode(),
            headers=[(k, v.encode()) for k, v in (headers or {}).items()],
        )

    async def consume(self, topic: str, group: str, handle: Handler, stop: asyncio.Event) -> None:
        consumer = AIOKafkaConsumer(
            self.settings.broker_prefix + topic,
            bootstrap_servers=self.servers,
            group_id=self.settings.broker_prefix + group,
            client_id=self.settings.consumer_name,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        await consumer.start()
        try:
            while not stop.is_set():
                batches = await consumer.getmany(
                    timeout_ms=1000, max_records=self.settings.consumer_batch_size
                )
                for records in batches.values():
                    for record in records:
                        headers = text_headers(dict(record.headers or ()))
                        await self._handle_record(
                            topic, group, record.value or b"", headers, handle
                        )
                if batches:
                    await consumer.commit()
        except KafkaError:
            log.exception("kafka consumer for %s failed", topic)
            raise
        finally:
            await consumer.stop()

    async def _handle_record(
        self, topic: str, group: str, value: bytes, headers: dict[str, str], handle: Handler
    ) -> None:
        try:
            envelope = Envelope.model_validate_json(value)
        except ValidationError as exc:
            await self._dead_letter(topic, group, value, exc)
            return
        for attempt in range(1, self.settings.consumer_max_deliveries + 1):
            try:
                await deliver(handle, topic, group, envelope, headers)
                return
            except Exception as exc:
                EVENTS_CONSUMED.labels(topic, group, "failed").inc()
                log.exception("event %s failed (attempt %d)", envelope.event_id, attempt)
                if attempt == self.settings.consumer_max_deliveries:
                    await self._dead_letter(topic, group, value, exc)
                    return
                await asyncio.sleep(min(0.2 * 2**attempt, 5.0))

    async def _dead_letter(self, topic: str, group: str, value: bytes, error: Exception) -> None:
        EVENTS_CONSUMED.labels(topic, group, "dead_lettered").inc()
        await self.producer.send_and_wait(
            self.settings.broker_prefix + dead_letter_topic(topic),
            value,
            headers=[("group", group.encode()), ("error", repr(error)[:1000].encode())],
        )


def create_broker(settings: ServiceSettings) -> KafkaBroker:
    return KafkaBroker(settings)
