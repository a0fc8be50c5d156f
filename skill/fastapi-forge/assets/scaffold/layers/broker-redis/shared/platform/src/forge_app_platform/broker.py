"""Redis Streams: one stream per topic, one consumer group per consuming service.

A delivery stays in the group's pending list until XACK. A consumer restarted under the
same name (CONSUMER_NAME, the pod name) first re-reads its own pending entries; entries
of a consumer that never comes back are taken over with XAUTOCLAIM once idle for
CONSUMER_CLAIM_IDLE_MS. Each claim counts as a delivery: past CONSUMER_MAX_DELIVERIES the
entry goes to `<topic>.dlq` with the last error and is acknowledged. Entries are read as
bytes: anyone who can XADD can write any bytes, and an entry that is not UTF-8 JSON goes to
the dead-letter stream as it came instead of failing the read of every batch it is in.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from forge_app_common import Envelope

from .bus import EVENTS_CONSUMED, Handler, dead_letter_topic, deliver
from .settings import ServiceSettings

log = logging.getLogger(__name__)
STREAM_MAXLEN = 1_000_000  # approximate trim: bounded memory, trimming never blocks Redis
# An entry's own fields; every other field is a message header (trace context).
BODY_FIELDS = ("event", "type")
Entry = tuple[bytes, dict[bytes, bytes] | None]


class RedisStreamsBroker:
    def __init__(self, settings: ServiceSettings) -> None:
        self.settings = settings
        self.redis: Redis = Redis.from_url(
            settings.broker_url, decode_responses=False, health_check_interval=30
        )

    async def start(self) -> None:
        """Connections are opened on first use; nothing to do."""

    async def close(self) -> None:
        await self.redis.aclose()

    async def ping(self) -> bool:
        return bool(await self.redis.ping())

    async def publish(
        self, topic: str, envelope: Envelope, headers: Mapping[str, str] | None = None
    ) -> None:
        extra = {k: v for k, v in (headers or {}).items() if k not in BODY_FIELDS}
        await self.redis.xadd(
            self._stream(topic),
            {**extra, "event": envelope.model_dump_json(), "type": envelope.type},
            maxlen=STREAM_MAXLEN,
            approximate=True,
        )

    # --8<-- [start:consume]
    async def consume(self, topic: str, group: str, handle: Handler, stop: asyncio.Event) -> None:
        await self._ensure_group(topic, group)
        # "0": this consumer's own pending entries (left by its previous life), then ">".
        own_cursor: str | None = "0"
        while not stop.is_set():
            try:
                if own_cursor is not None:
                    entries = await self._read(topic, group, own_cursor, block_ms=None)
                    own_cursor = entries[-1][0].decode() if entries else None
                else:
                    entries = await self._claim_idle(topic, group)
                    if not entries:
                        entries = await self._read(topic, group, ">", block_ms=1000)
                if entries:
                    await self._handle_batch(topic, group, entries, handle)
            except (RedisConnectionError, RedisTimeoutError) as exc:
                log.warning("redis unavailable (%s); retrying", type(exc).__name__)
                await asyncio.sleep(1.0)
                # --8<-- [end:consume]

    def _stream(self, topic: str) -> str:
        return self.settings.broker_prefix + topic

    async def _ensure_group(self, topic: str, group: str) -> None:
        try:
            # id="0": a new group also gets the events published before it existed.
            await self.redis.xgroup_create(self._stream(topic), group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def _read(self, topic: str, group: str, cursor: str, block_ms: int | None) -> list[Entry]:
        response: Any = await self.redis.xreadgroup(
            group,
            self.settings.consumer_name,
            {self._stream(topic): cursor},
            count=self.settings.consumer_batch_size,
            block=block_ms,
        )
        return [entry for _, entries in response or [] for entry in entries]

    async def _claim_idle(self, topic: str, group: str) -> list[Entry]:
        response: Any = await self.redis.xautoclaim(
            self._stream(topic),
            group,
            self.settings.consumer_name,
            min_idle_time=self.settings.consumer_claim_idle_ms,
            start_id="0-0",
            count=self.settings.consumer_batch_size,
        )
        return list(response[1])

    async def _delivery_counts(
        self, topic: str, group: str, entries: list[Entry]
    ) -> dict[bytes, int]:
        pending: Any = await self.redis.xpending_range(
            self._stream(topic),
            group,
            min=entries[0][0],
            max=entries[-1][0],
            # Failed entries of earlier batches may sit in the same id range.
            count=len(entries) + 1000,
            consumername=self.settings.consumer_name,
        )
        return {item["message_id"]: int(item["times_delivered"]) for item in pending}

    async def _handle_batch(
        self, topic: str, group: str, entries: list[Entry], handle: Handler
    ) -> None:
        deliveries = await self._delivery_counts(topic, group, entries)
        done: list[bytes] = []
        for entry_id, fields in entries:
            if not fields:  # trimmed away while pending: nothing left to handle
                done.append(entry_id)
                continue
            try:
                text = {k.decode(): v.decode() for k, v in fields.items()}
                envelope = Envelope.model_validate_json(text["event"])
            except (UnicodeDecodeError, KeyError, ValidationError) as exc:
                await self._dead_letter(topic, group, entry_id, fields, exc)
                done.append(entry_id)
                continue
            headers = {k: v for k, v in text.items() if k not in BODY_FIELDS}
            try:
                await deliver(handle, topic, group, envelope, headers)
            except Exception as exc:
                EVENTS_CONSUMED.labels(topic, group, "failed").inc()
                log.exception("event %s (%s) failed", envelope.event_id, envelope.type)
                if deliveries.get(entry_id, 1) >= self.settings.consumer_max_deliveries:
                    await self._dead_letter(topic, group, entry_id, fields, exc)
                    done.append(entry_id)
                continue  # stays pending: claimed again after CONSUMER_CLAIM_IDLE_MS
            done.append(entry_id)
        if done:
            # One XACK per batch. A crash before it redelivers the whole batch, which
            # the handlers' inbox turns into no-ops.
            await self.redis.xack(self._stream(topic), group, *done)

    async def _dead_letter(
        self,
        topic: str,
        group: str,
        entry_id: bytes,
        fields: dict[bytes, bytes],
        error: Exception,
    ) -> None:
        EVENTS_CONSUMED.labels(topic, group, "dead_lettered").inc()
        log.error("event entry %s of %s dead-lettered: %r", entry_id.decode(), topic, error)
        await self.redis.xadd(
            self._stream(dead_letter_topic(topic)),
            {
                **fields,
                b"source_id": entry_id,
                b"group": group.encode(),
                b"error": repr(error)[:1000].encode(),
            },
            maxlen=STREAM_MAXLEN,
            approximate=True,
        )


def create_broker(settings: ServiceSettings) -> RedisStreamsBroker:
    return RedisStreamsBroker(settings)
