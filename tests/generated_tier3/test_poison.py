"""Poison on the bus, against the real projector: an entry of arbitrary bytes, a header a
publisher set to nonsense, a consumer that cannot consume at all. None of them may stall
the events behind them, and a consumer that is stuck must show."""

from __future__ import annotations

import json
import uuid
from urllib.parse import urlsplit

import httpx
import pytest
import redis
from forge_testing import run, wait_for

from .system import NAME, TOPIC, Orders

pytestmark = pytest.mark.e2e
LOOP = "consume_order_events"


def place_and_wait_projected(orders: Orders, timeout: float = 30.0) -> str:
    with orders.client("command") as commands:
        placed = commands.post("/orders", json={"total": "5.00"})
        assert placed.status_code == 201, placed.text
    order_id = str(placed.json()["order_id"])
    with orders.client("query") as queries:
        wait_for(
            lambda: queries.get(f"/views/orders/{order_id}").status_code == 200,
            "order placed after the poison projected",
            timeout,
        )
    return order_id


def test_a_redis_entry_of_any_bytes_is_dead_lettered_and_later_events_apply(
    orders: Orders,
) -> None:
    client = redis.Redis.from_url(orders.env["BROKER_URL"])
    try:
        # What `printf '\xff' | redis-cli -x XADD orders.events '*' event` writes.
        poison = client.xadd(TOPIC, {b"event": b"\xff", b"\xfe": b"\xfd"}).decode()
        place_and_wait_projected(orders)
        dead = client.xrange(f"{TOPIC}.dlq")
        assert [fields[b"source_id"].decode() for _, fields in dead] == [poison]
        assert dead[0][1][b"event"] == b"\xff"  # the bytes kept as they came
    finally:
        client.close()
    assert (
        orders.metric(
            "projector", "events_consumed_total", topic=TOPIC, outcome="dead_lettered"
        )
        == 1
    )
    assert "crashed" not in orders.processes["projector"].process.log_text()  # type: ignore[union-attr]


def test_a_consumer_that_cannot_consume_shows_in_readiness_and_metrics(
    orders: Orders,
) -> None:
    projector = orders.processes["projector"].url
    assert httpx.get(f"{projector}/health/ready").status_code == 200
    client = redis.Redis.from_url(orders.env["BROKER_URL"])
    try:
        # The stream replaced by a string: every read fails (WRONGTYPE), the loop
        # crashes and restarts for as long as the key stays.
        client.delete(TOPIC)
        client.set(TOPIC, "not a stream")

        def unready() -> bool:
            response = httpx.get(f"{projector}/health/ready")
            return response.status_code == 503

        wait_for(unready, "503 from the stuck projector's /health/ready", 20)
        body = httpx.get(f"{projector}/health/ready").json()
        assert body["checks"]["loops"] == "down", body
        assert (
            orders.metric("projector", "background_loop_crashes_total", loop=LOOP) >= 3
        )
        client.delete(TOPIC)  # the loop recreates stream and group on its next start
    finally:
        client.close()
    wait_for(
        lambda: httpx.get(f"{projector}/health/ready").status_code == 200,
        "the projector ready again once it consumes",
        30,
    )
    place_and_wait_projected(orders)


PUBLISH_WITH_HEADER = """
import asyncio, json, sys, aio_pika

async def main() -> None:
    connection = await aio_pika.connect(sys.argv[1])
    async with connection:
        channel = await connection.channel()
        exchange = await channel.get_exchange(sys.argv[4])
        await exchange.publish(
            aio_pika.Message(sys.argv[3].encode(), headers={"x-delivery-count": "abc"}),
            routing_key=sys.argv[2],
        )

asyncio.run(main())
"""


@pytest.mark.parametrize("broker", ["rabbitmq"], indirect=True)
def test_a_publisher_set_delivery_count_header_of_any_value_is_handled(
    orders: Orders,
) -> None:
    # A well-formed envelope of a type the projector does not know: its handler fails
    # on every delivery, which is where the header is read.
    envelope = {
        "event_id": str(uuid.uuid4()),
        "type": "order.unknown",
        "schema_version": 1,
        "occurred_at": "2026-01-01T00:00:00Z",
        "producer": "mallory",
        "data": {},
    }
    run(
        [
            str(orders.venv.python),
            "-c",
            PUBLISH_WITH_HEADER,
            orders.env["BROKER_URL"],
            TOPIC,
            json.dumps(envelope),
            f"{NAME}.events",
        ],
        cwd=orders.project,
        env=orders.env,
        timeout=60,
    )
    wait_for(
        lambda: (
            orders.metric(
                "projector",
                "events_consumed_total",
                topic=TOPIC,
                outcome="dead_lettered",
            )
            == 1
        ),
        "the event dead-lettered after its deliveries",
        60,
    )
    failed = orders.metric(
        "projector", "events_consumed_total", topic=TOPIC, outcome="failed"
    )
    log = orders.processes["projector"].process.log_text()  # type: ignore[union-attr]
    assert "crashed" not in log, log
    assert failed == 5, f"{failed} failed deliveries, expected CONSUMER_MAX_DELIVERIES"
    vhost = urlsplit(orders.env["BROKER_URL"]).path.lstrip("/")

    def dead_letter_queue_holds_it() -> bool:
        queues = run(
            ["rabbitmqctl", "-q", "list_queues", "-p", vhost, "name", "messages"],
            cwd=orders.project,
        ).stdout
        return "order-projector.orders.events.dlq\t1" in queues

    # The metric counts the dead letter before the reject reaches RabbitMQ, and a quorum
    # queue's message count in list_queues trails by a few seconds: wait, do not sample.
    wait_for(
        dead_letter_queue_holds_it, "the dead-letter queue holding the message", 30
    )
    place_and_wait_projected(orders)
