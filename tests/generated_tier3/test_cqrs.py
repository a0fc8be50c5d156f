"""Tier 3 through failures, on Redis Streams and on RabbitMQ: commands reach the query API
once projected; a relay killed between publishing and marking, and a projector killed
mid-batch, lose no event and apply none twice; a rebuilt read model equals the live one
row by row."""

from __future__ import annotations

import threading
import time
import uuid

import httpx
import pytest
from forge_testing import wait_for
from forge_testing.tokens import RsaKey, bearer

from .conftest import BROKERS
from .system import KEY, TOKENS, Db, Orders

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.parametrize("broker", BROKERS, indirect=True),
]
BATCH = 10
VIEW_COLUMNS = "order_id, customer_id, status, total, version, cancel_reason, placed_at, updated_at"


def place(orders: Orders, count: int, customer: str = "customer-1") -> list[str]:
    with orders.client("command", customer) as client:
        ids = []
        for i in range(count):
            response = client.post("/orders", json={"total": f"{10 + i}.25"})
            assert response.status_code == 201, response.text
            ids.append(response.json()["order_id"])
        return ids


def act(
    orders: Orders, ids: list[str], action: str, customer: str = "customer-1"
) -> None:
    body = {"reason": "no longer needed"} if action == "cancel" else {}
    with orders.client("command", customer) as client:
        for order_id in ids:
            response = client.post(f"/orders/{order_id}/{action}", json=body)
            assert response.status_code == 200, response.text


def write_model(db: Db) -> list[tuple[object, ...]]:
    return db.rows(
        "SELECT id, customer_id, status, total, version FROM orders ORDER BY id"
    )


def read_model(db: Db) -> list[tuple[object, ...]]:
    return db.rows(
        "SELECT order_id, customer_id, status, total, version FROM order_views ORDER BY order_id"
    )


def test_a_command_is_visible_through_the_query_api_once_projected(
    orders: Orders,
) -> None:
    with orders.client("command") as commands, orders.client("query") as queries:
        started = time.monotonic()
        placed = commands.post("/orders", json={"total": "42.50"})
        assert placed.status_code == 201, placed.text
        order_id, version = placed.json()["order_id"], placed.json()["version"]

        def projected(version: int) -> bool:
            response = queries.get(f"/views/orders/{order_id}")
            return response.status_code == 200 and response.json()["version"] >= version

        wait_for(lambda: projected(version), "order visible in the query API")
        visible_after = time.monotonic() - started
        view = queries.get(f"/views/orders/{order_id}").json()
        assert (view["status"], view["total"], view["customer_id"]) == (
            "placed",
            "42.50",
            "customer-1",
        )
        confirmed = commands.post(
            f"/orders/{order_id}/confirm", json={"expected_version": version}
        )
        assert confirmed.json()["version"] == 2
        wait_for(lambda: projected(2), "confirmation visible in the query API")
        assert queries.get(f"/views/orders/{order_id}").json()["status"] == "confirmed"
        # Read-your-writes is by version: a stale expected version is refused, not applied.
        stale = commands.post(
            f"/orders/{order_id}/cancel", json={"reason": "x", "expected_version": 1}
        )
        assert stale.status_code == 409
        with orders.client("query", "someone-else") as other:
            assert other.get(f"/views/orders/{order_id}").status_code == 404
    print(f"\n[e2e-tier3] command -> query API in {visible_after * 1000:.0f} ms")


def published(orders: Orders) -> float:
    """Events the relay handed to the broker and the broker accepted (this process)."""
    return orders.metric("relay", "events_published_total")


def test_relay_killed_after_publishing_before_marking_loses_and_duplicates_nothing(
    orders: Orders,
) -> None:
    command_db, query_db = (
        Db(orders.databases["command"]),
        Db(orders.databases["query"]),
    )
    lock = Db(orders.databases["command"])
    try:
        orders.processes["relay"].stop()
        ids = place(orders, 100)
        act(orders, ids[:50], "confirm")
        assert (
            command_db.value("SELECT count(*) FROM outbox WHERE published_at IS NULL")
            == 150
        )
        # A SHARE lock lets the relay lock and publish its batch of 100 but not mark it
        # published: it stops exactly in the window a crash makes dangerous.
        lock.execute("BEGIN")
        lock.execute("LOCK TABLE outbox IN SHARE MODE")
        orders.processes["relay"].start()

        def relay_stuck_after_publishing() -> bool:
            waiting = command_db.value(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock' AND query ILIKE 'UPDATE outbox%'"
            )
            return published(orders) == 100 and waiting == 1

        wait_for(relay_stuck_after_publishing, "the relay blocked after publishing 100")
        orders.kill("relay")
        lock.execute("ROLLBACK")
        assert (
            command_db.value("SELECT count(*) FROM outbox WHERE published_at IS NULL")
            == 150
        )

        orders.processes["relay"].start()
        wait_for(
            lambda: (
                command_db.value(
                    "SELECT count(*) FROM outbox WHERE published_at IS NULL"
                )
                == 0
            ),
            "outbox drained by the restarted relay",
        )
        # The killed batch goes out again: 100 repeats on top of the 150.
        wait_for(lambda: published(orders) == 150, "the restarted relay's 150")
        wait_for(
            lambda: (
                query_db.value("SELECT count(*) FROM order_views WHERE version = 2")
                == 50
            ),
            "every confirmation projected",
        )
        wait_for(
            lambda: (
                orders.metric("projector", "events_consumed_total", outcome="duplicate")
                == 100
            ),
            "the projector to skip the 100 repeats",
        )
        assert read_model(query_db) == write_model(command_db)
        assert query_db.value("SELECT count(*) FROM processed_events") == 150
        applied = orders.metric("projector", "events_consumed_total", outcome="applied")
        assert applied == 150
        print(
            f"\n[e2e-tier3] {orders.broker}: relay SIGKILL: 150 events, 250 published "
            f"(100 republished), {applied:.0f} applied, 100 skipped as repeats"
        )
    finally:
        for db in (lock, command_db, query_db):
            db.close()


def test_projector_killed_mid_batch_loses_and_duplicates_nothing(
    orders: Orders,
) -> None:
    command_db, query_db = (
        Db(orders.databases["command"]),
        Db(orders.databases["query"]),
    )
    lock = Db(orders.databases["query"])
    projector = orders.processes["projector"]
    try:
        ids = place(orders, 30)
        wait_for(
            lambda: query_db.value("SELECT count(*) FROM order_views") == 30,
            "placements",
        )
        projector.stop()
        act(orders, ids, "confirm")
        wait_for(
            lambda: (
                command_db.value(
                    "SELECT count(*) FROM outbox WHERE published_at IS NULL"
                )
                == 0
            ),
            "confirmations published",
        )
        # The 15th confirmation waits on this row lock: batch 2 (confirmations 11-20) stops
        # with 11-14 committed and nothing of it acknowledged.
        lock.execute("BEGIN")
        lock.execute(
            "SELECT 1 FROM order_views WHERE order_id = $1::uuid FOR UPDATE", ids[14]
        )
        projector.start(CONSUMER_BATCH_SIZE=str(BATCH))

        def blocked_mid_batch() -> bool:
            confirmed = query_db.value(
                "SELECT count(*) FROM order_views WHERE version = 2"
            )
            waiting = query_db.value(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock' AND query ILIKE 'UPDATE order_views%'"
            )
            return confirmed == 14 and waiting == 1

        wait_for(blocked_mid_batch, "the projector blocked on the 15th confirmation")
        orders.kill("projector")
        lock.execute("ROLLBACK")
        assert (
            query_db.value("SELECT count(*) FROM order_views WHERE version = 2") == 14
        )

        projector.start(CONSUMER_BATCH_SIZE=str(BATCH))
        wait_for(
            lambda: (
                query_db.value("SELECT count(*) FROM order_views WHERE version = 2")
                == 30
            ),
            "every confirmation applied after the restart",
        )
        duplicates = orders.metric(
            "projector", "events_consumed_total", outcome="duplicate"
        )
        if orders.broker == "redis":
            # Confirmations 11-14 came back with the unacknowledged batch and were skipped.
            assert duplicates == 4
        else:
            # RabbitMQ batches what has arrived: the killed batch began somewhere in 6-15.
            assert 0 <= duplicates <= BATCH - 1
        assert query_db.value("SELECT count(*) FROM processed_events") == 60
        assert read_model(query_db) == write_model(command_db)
        print(
            f"\n[e2e-tier3] {orders.broker}: projector SIGKILL mid-batch: 60 events, 14 of "
            "30 confirmations "
            f"applied at the kill, {duplicates:.0f} redelivered and skipped, 30 in the end"
        )
    finally:
        for db in (lock, command_db, query_db):
            db.close()


def test_a_rebuilt_read_model_equals_the_live_one(orders: Orders) -> None:
    command_db, query_db = (
        Db(orders.databases["command"]),
        Db(orders.databases["query"]),
    )
    try:
        ids = place(orders, 40)
        act(orders, ids[:20], "confirm")
        act(orders, ids[10:30], "cancel")
        wait_for(lambda: read_model(query_db) == write_model(command_db), "projection")

        # A rebuild while commands keep coming: the swap catches up under its lock.
        during: list[str] = []
        writer = threading.Thread(
            target=lambda: during.extend(place(orders, 20, "late"))
        )
        writer.start()
        first = orders.rebuild()
        writer.join()
        act(orders, during[:10], "confirm", "late")
        wait_for(lambda: read_model(query_db) == write_model(command_db), "projection")

        oid = query_db.value("SELECT 'order_views'::regclass::oid")
        live = query_db.rows(
            f"SELECT {VIEW_COLUMNS} FROM order_views ORDER BY order_id"
        )
        second = orders.rebuild()
        rebuilt = query_db.rows(
            f"SELECT {VIEW_COLUMNS} FROM order_views ORDER BY order_id"
        )
        assert query_db.value("SELECT 'order_views'::regclass::oid") != oid, (
            "no swap happened"
        )
        assert rebuilt == live
        assert len(rebuilt) == 60
        assert (
            second["events"] == command_db.value("SELECT count(*) FROM events") == 110
        )
        assert second["rows"] == 60

        # The projector and the query API go on with the swapped-in table.
        after = place(orders, 1)[0]
        with orders.client("query") as queries:
            wait_for(
                lambda: queries.get(f"/views/orders/{after}").status_code == 200,
                "a new order projected into the rebuilt table",
            )
        print(
            f"\n[e2e-tier3] rebuild: {first['events']} events in {first['seconds']} s "
            f"(20 commands concurrent); {second['events']} events, {second['rows']} rows "
            f"equal to the live table, in {second['seconds']} s"
        )
    finally:
        command_db.close()
        query_db.close()


def test_only_user_service_signs_and_the_event_log_takes_service_tokens_only(
    orders: Orders,
) -> None:
    """user-service signs every token; the order services verify with its JWKS. The relay's
    GET /events takes the rebuild's client-credentials token and no user's token; the
    order API takes no service token."""
    relay, command = orders.processes["relay"].url, orders.processes["command"].url
    service = bearer(orders.service_token())
    assert httpx.get(f"{relay}/events", headers=service, timeout=10).status_code == 200
    user_tokens = {
        "a user's": TOKENS.bearer(str(uuid.uuid4())),
        "a user's naming the reader": TOKENS.bearer("order-query"),
    }
    for what, headers in user_tokens.items():
        response = httpx.get(f"{relay}/events", headers=headers, timeout=10)
        assert response.status_code == 401, what
    order = {"total": "1.00"}
    placed = httpx.post(
        f"{command}/orders", json=order, headers=user_tokens["a user's"]
    )
    assert placed.status_code == 201, placed.text
    refused = {
        "the service token": service,
        # What any service could mint before user-service alone signed tokens.
        "the old shared secret": TOKENS.bearer("mallory", alg="HS256", secret="x" * 40),
        "another key": TOKENS.bearer("mallory", key=RsaKey.generate(), kid=KEY.kid),
        "HS256 keyed with the public key": TOKENS.bearer(
            "mallory", alg="HS256", secret=KEY.public_pem().decode(), kid=KEY.kid
        ),
    }
    for what, headers in refused.items():
        response = httpx.post(
            f"{command}/orders", json=order, headers=headers, timeout=10
        )
        assert response.status_code == 401, what
    wrong = httpx.post(
        f"{orders.processes['users'].url}/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": "order-query",
            "client_secret": "not-the-secret",
            "audience": "order-command",
        },
        timeout=10,
    )
    assert wrong.status_code == 401
