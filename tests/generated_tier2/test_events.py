"""Events between the Tier 2 services are applied exactly once in effect, each consumer
SIGKILLed mid-batch and restarted, on Redis Streams and RabbitMQ:

- user.registered (user-service) -> notification-service: one welcome per user;
- user.deleted (user-service) -> agent-service: the user's queued jobs are cancelled, each
  with one agent.run.finished written in the same transaction (outbox);
- agent.run.finished (agent-service) -> notification-service: one notice per job.

With the ARQ worker running, a finished run notifies its user, and a deleted user's
running job is interrupted and recorded as cancelled by the worker (which writes its
agent.run.finished).

Trace context across the bus is checked by notification-service's own test_tracing.py,
run here against RabbitMQ (the Redis variant runs in test_own_checks)."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import asyncpg
import httpx
import pytest
from forge_testing import clean_env, run, spawn, throwaway_database, wait_for
from forge_testing.metrics import metric_total
from generated_tier3.system import Db

from .conftest import Build
from .system import (
    GeneratedTier2System,
    running_system,
    source_path,
)

pytestmark = pytest.mark.e2e
EVENTS = 60
BATCH = 10
# Users who also queue an agent job, then delete their account.
LEAVERS = 30
# agent-service is stopped on the leaver whose job row the test locks.
BLOCKED = 14
PASSWORD = "long enough password"
SERVICES = ("user-service", "notification-service", "agent-service")


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


def consumed(url: str, outcome: str, topic: str | None = None) -> float:
    labels = {"outcome": outcome} | ({"topic": topic} if topic is not None else {})
    text = httpx.get(f"{url}/metrics").text
    return metric_total(text, "events_consumed_total", **labels)


def drained(dsn: str) -> bool:
    return scalar(dsn, "SELECT count(*) FROM outbox WHERE published_at IS NULL") == 0


def sign_up_and_queue_jobs(system: GeneratedTier2System) -> tuple[list[str], list[str]]:
    """EVENTS sign-ups; the first LEAVERS each queue a job (no worker runs: it stays
    queued). Returns the leavers' tokens and their job ids."""
    users, agents = (
        system.services["user-service"],
        system.services["agent-service"],
    )
    tokens: list[str] = []
    jobs: list[str] = []
    with (
        httpx.Client(base_url=users.url, timeout=10) as client,
        httpx.Client(base_url=agents.url, timeout=10) as agent_client,
    ):
        for i in range(EVENTS):
            email = f"k{i}-{uuid.uuid4().hex[:6]}@example.com"
            response = client.post(
                "/users/auth/signup",
                json={"email": email, "display_name": f"U{i}", "password": PASSWORD},
            )
            assert response.status_code == 201, response.text
            if i < LEAVERS:
                token = system.token(client, email, PASSWORD)
                queued = agent_client.post(
                    "/agents/run/async",
                    json={"prompt": f"job {i}"},
                    headers={"authorization": f"Bearer {token}"},
                )
                assert queued.status_code == 202, queued.text
                tokens.append(token)
                jobs.append(queued.json()["job_id"])
    return tokens, jobs


def kill_notify_mid_batch(
    system: GeneratedTier2System, kind: str, expected: int, aligned_batches: bool
) -> int:
    """Starts notification-service slowed down, SIGKILLs it once some of a batch of
    `kind` notifications committed, and returns how many there were at the kill."""
    notify, notify_db = (
        system.services["notification-service"],
        system.databases["notification-service"],
    )
    count_sql = f"SELECT count(*) FROM notifications WHERE kind = '{kind}'"
    notify.start(NOTIFY_SEND_DELAY_SECONDS="0.05", CONSUMER_BATCH_SIZE=str(BATCH))

    def mid_batch() -> bool:
        done = scalar(notify_db, count_sql)
        # Some of the current batch committed, its acknowledgement not sent yet.
        return done >= BATCH and (not aligned_batches or 2 <= done % BATCH <= 6)

    wait_for(mid_batch, f"a consumer mid-batch on {kind}")
    notify.kill()
    at_kill = scalar(notify_db, count_sql)
    assert 0 < at_kill < expected
    return at_kill


def exactly_once_through_kills(
    system: GeneratedTier2System, *, aligned_batches: bool
) -> None:
    users, notify, agents = (
        system.services["user-service"],
        system.services["notification-service"],
        system.services["agent-service"],
    )
    users_db, notify_db, agents_db = (
        system.databases["user-service"],
        system.databases["notification-service"],
        system.databases["agent-service"],
    )
    # Every consumer has subscribed (RabbitMQ refuses events no queue is bound to yet);
    # notification-service then goes down while the events are produced.
    notify.stop()
    tokens, jobs = sign_up_and_queue_jobs(system)
    wait_for(lambda: drained(users_db), "outbox drained")
    assert scalar(users_db, "SELECT count(*) FROM outbox") == EVENTS

    # 1. user.registered -> notification-service, killed mid-batch.
    welcomed_at_kill = kill_notify_mid_batch(system, "welcome", EVENTS, aligned_batches)
    notify.start(CONSUMER_BATCH_SIZE=str(BATCH))
    welcomes = "SELECT count(*) FROM notifications WHERE kind = 'welcome'"
    wait_for(lambda: scalar(notify_db, welcomes) >= EVENTS, "every welcome", 60)
    welcome_repeats = consumed(notify.url, "duplicate")
    notify.stop()

    # 2. user.deleted -> agent-service, killed while blocked inside a batch: a test
    # transaction holds the row of leaver BLOCKED's job, so that leaver's cancellation
    # waits after the earlier ones of its batch committed, none acknowledged.
    agents.stop()
    with httpx.Client(base_url=users.url, timeout=10) as client:
        for token in tokens:
            gone = client.delete(
                "/users/me", headers={"authorization": f"Bearer {token}"}
            )
            assert gone.status_code == 204, gone.text
    wait_for(lambda: drained(users_db), "user.deleted published")
    lock, agent_rows = Db(agents_db), Db(agents_db)
    cancelled = "SELECT count(*) FROM agent_jobs WHERE status = 'cancelled'"
    try:
        lock.execute("BEGIN")
        lock.execute(
            "SELECT 1 FROM agent_jobs WHERE id = $1::uuid FOR UPDATE", jobs[BLOCKED]
        )
        agents.start(CONSUMER_BATCH_SIZE=str(BATCH))

        def blocked_mid_batch() -> bool:
            waiting = agent_rows.value(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock' AND query ILIKE 'UPDATE agent_jobs%'"
            )
            return agent_rows.value(cancelled) == BLOCKED and waiting == 1

        wait_for(blocked_mid_batch, f"agent-service blocked on leaver {BLOCKED}")
        agents.kill()
        lock.execute("ROLLBACK")
        assert agent_rows.value(cancelled) == BLOCKED
        agents.start(CONSUMER_BATCH_SIZE=str(BATCH))
        wait_for(lambda: agent_rows.value(cancelled) == LEAVERS, "every job cancelled")
        wait_for(lambda: drained(agents_db), "agent.run.finished published")
        cancel_repeats = consumed(agents.url, "duplicate", "users.events")
        statuses = agent_rows.rows("SELECT status, count(*) FROM agent_jobs GROUP BY 1")
        finished = agent_rows.value("SELECT count(*) FROM outbox")
        per_job = agent_rows.value(
            "SELECT count(DISTINCT payload->'data'->>'job_id') FROM outbox"
        )
        agent_inbox = agent_rows.value("SELECT count(*) FROM processed_events")
    finally:
        lock.close()
        agent_rows.close()
    assert statuses == [("cancelled", LEAVERS)]
    # One agent.run.finished per job: the killed batch's repeats wrote none.
    assert finished == per_job == LEAVERS
    # Every user event once (registered ones are recorded and ignored).
    assert agent_inbox == EVENTS + LEAVERS
    if aligned_batches:
        # Leavers 11-14 came back with the unacknowledged batch and were skipped.
        assert cancel_repeats == BLOCKED - BATCH

    # 3. agent.run.finished -> notification-service, killed mid-batch.
    runs = "SELECT count(*) FROM notifications WHERE kind = 'agent_run_cancelled'"
    runs_at_kill = kill_notify_mid_batch(
        system, "agent_run_cancelled", LEAVERS, aligned_batches
    )
    notify.start(CONSUMER_BATCH_SIZE=str(BATCH))
    wait_for(lambda: scalar(notify_db, runs) >= LEAVERS, "every run notice", 60)
    asyncio.run(asyncio.sleep(1.0))  # late redeliveries would show up here
    applied = scalar(notify_db, "SELECT count(*) FROM notifications")
    distinct = scalar(notify_db, "SELECT count(DISTINCT event_id) FROM notifications")
    inbox = scalar(notify_db, "SELECT count(*) FROM processed_events")
    run_repeats = consumed(notify.url, "duplicate", "agents.events")
    print(
        f"\n[e2e-tier2] user.registered: {EVENTS} sent, {welcomed_at_kill} applied at "
        f"SIGKILL, {welcome_repeats:.0f} repeats skipped; user.deleted: {LEAVERS} sent, "
        f"{BLOCKED} applied at SIGKILL, {cancel_repeats:.0f} repeats skipped, {finished} "
        f"agent.run.finished; notices: {runs_at_kill} at SIGKILL, {run_repeats:.0f} "
        f"repeats skipped; {applied} notifications in the end"
    )
    assert scalar(notify_db, welcomes) == EVENTS
    assert scalar(notify_db, runs) == LEAVERS
    assert applied == distinct == EVENTS + LEAVERS
    # Both user event types and the run events, each recorded once.
    assert inbox == EVENTS + LEAVERS + LEAVERS
    if aligned_batches:
        # The killed batches' committed events came back and were recognised as repeats.
        assert welcome_repeats >= 1
        assert run_repeats >= 1


def test_redis_streams_exactly_once_through_sigkill(
    tier2: Build, pg_admin_url: str, redis_broker_url: str, tmp_path: Path
) -> None:
    with running_system(
        tier2.redis_project,
        tier2.venv,
        pg_admin_url,
        redis_broker_url,
        tmp_path / "logs",
        SERVICES,
        with_gateway=False,
        CONSUMER_NAME="consumer-0",
    ) as system:
        exactly_once_through_kills(system, aligned_batches=True)


def test_rabbitmq_exactly_once_through_sigkill(
    tier2: Build,
    pg_admin_url: str,
    rabbit_url: str,
    redis_broker_url: str,
    tmp_path: Path,
) -> None:
    with running_system(
        tier2.rabbit_project,
        tier2.venv,
        pg_admin_url,
        rabbit_url,
        tmp_path / "logs",
        SERVICES,
        with_gateway=False,
        shadow_sources=True,
        REDIS_URL=redis_broker_url,
    ) as system:
        exactly_once_through_kills(system, aligned_batches=False)


def test_runs_notify_their_user_and_a_deleted_users_running_job_stops(
    tier2: Build, pg_admin_url: str, redis_broker_url: str, tmp_path: Path
) -> None:
    with running_system(
        tier2.redis_project,
        tier2.venv,
        pg_admin_url,
        redis_broker_url,
        tmp_path / "logs",
        SERVICES,
        with_gateway=False,
    ) as system:
        users, notify, agents = (
            system.services["user-service"],
            system.services["notification-service"],
            system.services["agent-service"],
        )
        worker = spawn(
            "worker",
            [str(tier2.venv.python), "-m", "agent_service.worker"],
            log_dir=tmp_path / "logs",
            cwd=agents.cwd,
            # 0.2 s per chunk: a two-word prompt takes a second, 150 words half a minute.
            env=agents.env | {"FAKE_AGENT_DELAY_SECONDS": "0.2"},
        )
        try:
            with (
                httpx.Client(base_url=users.url, timeout=10) as user_client,
                httpx.Client(base_url=agents.url, timeout=10) as agent_client,
                httpx.Client(base_url=notify.url, timeout=10) as notify_client,
            ):
                auth = {}
                for who in ("stays", "leaves"):
                    email = f"{who}-{uuid.uuid4().hex[:6]}@example.com"
                    signed = user_client.post(
                        "/users/auth/signup",
                        json={
                            "email": email,
                            "display_name": who,
                            "password": PASSWORD,
                        },
                    )
                    assert signed.status_code == 201, signed.text
                    token = system.token(user_client, email, PASSWORD)
                    auth[who] = {"authorization": f"Bearer {token}"}

                def job(who: str, prompt: str) -> str:
                    queued = agent_client.post(
                        "/agents/run/async", json={"prompt": prompt}, headers=auth[who]
                    )
                    assert queued.status_code == 202, queued.text
                    return str(queued.json()["job_id"])

                def status(who: str, job_id: str) -> str:
                    response = agent_client.get(
                        f"/agents/jobs/{job_id}", headers=auth[who]
                    )
                    return str(response.json()["status"])

                def notices(who: str) -> list[tuple[str, str]]:
                    response = notify_client.get(
                        "/notify/notifications", headers=auth[who]
                    )
                    return [(n["kind"], n["message"]) for n in response.json()]

                done = job("stays", "hello there")
                long = job("leaves", " ".join(["word"] * 150))
                wait_for(lambda: status("leaves", long) == "running", "a running job")
                gone = user_client.delete("/users/me", headers=auth["leaves"])
                assert gone.status_code == 204, gone.text
                wait_for(
                    lambda: status("leaves", long) == "cancelled", "the job cancelled"
                )
                wait_for(
                    lambda: status("stays", done) == "completed", "the run completed"
                )

                def notified(who: str, kind: str) -> bool:
                    return any(k == kind for k, _ in notices(who))

                wait_for(
                    lambda: notified("stays", "agent_run_completed"), "a run notice"
                )
                wait_for(
                    lambda: notified("leaves", "agent_run_cancelled"), "a cancel notice"
                )
                asyncio.run(asyncio.sleep(1.0))  # a second notice would show up here
                stays, leaves = notices("stays"), notices("leaves")
            assert [k for k, _ in stays if k.startswith("agent_run")] == [
                "agent_run_completed"
            ]
            assert done in dict(stays)["agent_run_completed"]
            assert [k for k, _ in leaves if k.startswith("agent_run")] == [
                "agent_run_cancelled"
            ]
            assert long in dict(leaves)["agent_run_cancelled"]
            # One event per job, the cancelled one written by the worker that stopped it.
            agents_db = system.databases["agent-service"]
            assert scalar(agents_db, "SELECT count(*) FROM outbox") == 2
            assert (
                scalar(
                    agents_db,
                    "SELECT count(*) FROM agent_jobs WHERE status = 'cancelled' "
                    "AND started_at IS NOT NULL AND cancel_requested",
                )
                == 1
            )
        finally:
            worker.stop()


def test_rabbitmq_consumer_span_continues_the_producer_trace(
    tier2: Build, pg_admin_url: str, rabbit_url: str
) -> None:
    """notification-service's tracing test with the RabbitMQ adapter: the W3C headers
    travel as AMQP message headers."""
    service = tier2.rabbit_project / "services" / "notification-service"
    with throwaway_database(pg_admin_url, prefix="e2e_trace") as database_url:
        run(
            [
                str(tier2.venv.python),
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                "tests/test_tracing.py",
            ],
            cwd=service,
            env=clean_env()
            | {
                "DATABASE_URL": database_url,
                "BROKER_URL": rabbit_url,
                "PYTHONPATH": source_path(tier2.rabbit_project),
            },
        )
