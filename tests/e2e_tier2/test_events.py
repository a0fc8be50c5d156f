"""user.registered from user-service is applied exactly once by notification-service, even
when the consumer is SIGKILLed mid-batch and restarted; on Redis Streams and RabbitMQ."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import asyncpg
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from .conftest import Build
from .system import System, running_system, wait_for

pytestmark = pytest.mark.e2e
EVENTS = 60
BATCH = 10


def scalar(dsn: str, sql: str) -> int:
    async def query() -> int:
        conn = await asyncpg.connect(
            dsn.replace("postgresql+asyncpg://", "postgresql://")
        )
        try:
            return int(await conn.fetchval(sql))
        finally:
            await conn.close()

    return asyncio.run(query())


def consumed(url: str, outcome: str) -> float:
    for family in text_string_to_metric_families(httpx.get(f"{url}/metrics").text):
        for sample in family.samples:
            if (
                sample.name == "events_consumed_total"
                and sample.labels["outcome"] == outcome
            ):
                return sample.value
    return 0.0


def exactly_once_through_a_kill(system: System, *, aligned_batches: bool) -> None:
    users, notify = (
        system.services["user-service"],
        system.services["notification-service"],
    )
    users_db, notify_db = (
        system.databases["user-service"],
        system.databases["notification-service"],
    )
    # The consumer subscribes first (RabbitMQ refuses events no queue is bound to yet),
    # then goes down while the events are produced.
    notify.stop()
    client = httpx.Client(base_url=users.url, timeout=10)
    for i in range(EVENTS):
        response = client.post(
            "/users/auth/signup",
            json={
                "email": f"k{i}-{uuid.uuid4().hex[:6]}@example.com",
                "display_name": f"U{i}",
                "password": "long enough password",
            },
        )
        assert response.status_code == 201, response.text
    wait_for(
        lambda: (
            scalar(users_db, "SELECT count(*) FROM outbox WHERE published_at IS NULL")
            == 0
        ),
        "outbox drained",
    )
    assert scalar(users_db, "SELECT count(*) FROM outbox") == EVENTS

    count_sql = "SELECT count(*) FROM notifications"
    notify.start(NOTIFY_SEND_DELAY_SECONDS="0.05", CONSUMER_BATCH_SIZE=str(BATCH))

    def mid_batch() -> bool:
        done = scalar(notify_db, count_sql)
        # Some of the current batch committed, its acknowledgement not sent yet.
        return done >= BATCH and (not aligned_batches or 2 <= done % BATCH <= 6)

    wait_for(mid_batch, "a consumer mid-batch")
    notify.kill()
    at_kill = scalar(notify_db, count_sql)
    assert 0 < at_kill < EVENTS

    notify.start(CONSUMER_BATCH_SIZE=str(BATCH))
    wait_for(lambda: scalar(notify_db, count_sql) >= EVENTS, "every event applied", 60)
    time_to_settle = 1.0
    asyncio.run(asyncio.sleep(time_to_settle))  # late redeliveries would show up here
    applied = scalar(notify_db, count_sql)
    distinct = scalar(notify_db, "SELECT count(DISTINCT event_id) FROM notifications")
    inbox = scalar(notify_db, "SELECT count(*) FROM processed_events")
    duplicates = consumed(notify.url, "duplicate")
    print(
        f"\n[e2e-tier2] {EVENTS} sent, {at_kill} applied at SIGKILL, {applied} applied in "
        f"the end, {duplicates:.0f} redeliveries skipped by the inbox after restart"
    )
    assert applied == distinct == inbox == EVENTS
    if aligned_batches:
        # The killed batch's committed events came back and were recognised as repeats.
        assert duplicates >= 1


def test_redis_streams_exactly_once_through_sigkill(
    tier2: Build, pg_admin_url: str, redis_broker_url: str, tmp_path: Path
) -> None:
    with running_system(
        tier2.redis_project,
        tier2.venv,
        pg_admin_url,
        redis_broker_url,
        tmp_path / "logs",
        ("user-service", "notification-service"),
        with_gateway=False,
        CONSUMER_NAME="notify-0",
    ) as system:
        exactly_once_through_a_kill(system, aligned_batches=True)


def test_rabbitmq_exactly_once_through_sigkill(
    tier2: Build, pg_admin_url: str, rabbit_url: str, tmp_path: Path
) -> None:
    with running_system(
        tier2.rabbit_project,
        tier2.venv,
        pg_admin_url,
        rabbit_url,
        tmp_path / "logs",
        ("user-service", "notification-service"),
        with_gateway=False,
        shadow_sources=True,
    ) as system:
        exactly_once_through_a_kill(system, aligned_batches=False)
