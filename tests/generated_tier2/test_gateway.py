"""Through the gateway to every service, and one service's outage contained by its breaker."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import httpx
import pytest
from forge_testing import wait_for
from forge_testing.metrics import metric_by_label

from .conftest import Build
from .system import running_system

pytestmark = pytest.mark.e2e
ALL = ("user-service", "notification-service", "agent-service")


def transitions(client: httpx.Client, service: str) -> dict[str, float]:
    text = client.get("/metrics").text
    name = "gateway_circuit_breaker_transitions_total"
    return metric_by_label(text, name, "state", service=service)


def test_gateway_reaches_every_service_and_contains_an_outage(
    tier2: Build, pg_admin_url: str, redis_broker_url: str, tmp_path: Path
) -> None:
    with running_system(
        tier2.redis_project,
        tier2.venv,
        pg_admin_url,
        redis_broker_url,
        tmp_path / "logs",
        ALL,
        with_gateway=True,
    ) as system:
        assert system.gateway is not None
        gw = httpx.Client(base_url=system.gateway.url, timeout=10)
        email, password = (
            f"e2e-{uuid.uuid4().hex[:8]}@example.com",
            "long enough password",
        )
        signup = gw.post(
            "/users/auth/signup",
            json={"email": email, "display_name": "Eve", "password": password},
            headers={"x-request-id": "e2e-signup-1"},
        )
        assert signup.status_code == 201, signup.text
        assert signup.headers["x-request-id"] == "e2e-signup-1"
        auth = {"authorization": f"Bearer {system.token(gw, email, password)}"}

        me = gw.get("/users/me", headers=auth)
        assert me.status_code == 200 and me.json()["email"] == email
        assert gw.get("/users/me").status_code == 401  # refused at the edge
        run = gw.post("/agents/run", json={"prompt": "hello there"}, headers=auth)
        assert run.status_code == 200, run.text
        # user.registered went user-service -> outbox -> Redis Streams -> notification-service.
        wait_for(
            lambda: gw.get("/notify/notifications", headers=auth).json() != [],
            "welcome notification",
        )
        assert (
            gw.get("/notify/notifications", headers=auth).json()[0]["kind"] == "welcome"
        )

        # user-service goes away: 3 failures open its breaker, then answers are fast 503s.
        users = system.services["user-service"]
        users.stop()
        codes = [gw.get("/users/me", headers=auth).status_code for _ in range(3)]
        assert codes == [502, 502, 502]
        started = time.perf_counter()
        open_answer = gw.get("/users/me", headers=auth)
        open_latency_ms = (time.perf_counter() - started) * 1000
        assert open_answer.status_code == 503
        error = open_answer.json()["error"]
        assert (error["code"], error["service"], error["breaker"]) == (
            "circuit_open",
            "users",
            "open",
        )
        assert error["request_id"] == open_answer.headers["x-request-id"]
        assert "retry-after" in open_answer.headers
        # The others are unaffected.
        assert gw.get("/notify/notifications", headers=auth).status_code == 200
        assert (
            gw.post(
                "/agents/run", json={"prompt": "still up"}, headers=auth
            ).status_code
            == 200
        )

        # Back on the same address: after the open interval one probe closes the breaker.
        users.start()
        time.sleep(2.1)
        assert gw.get("/users/me", headers=auth).status_code == 200
        seen = transitions(gw, "users")
        assert (
            seen.get("open") == 1
            and seen.get("half_open") == 1
            and seen.get("closed") == 1
        )
        assert gw.get("/users/me", headers=auth).status_code == 200
        print(
            f"\n[e2e-tier2] open-breaker 503 answered in {open_latency_ms:.1f} ms; "
            f"transitions {seen}"
        )
