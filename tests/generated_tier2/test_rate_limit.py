"""agent-service behind the gateway limits each user, not the gateway's address: one
user's budget is theirs whatever X-Forwarded-For they send, and another user keeps theirs."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import pytest

from .conftest import Build
from .system import GeneratedTier2System, running_system

pytestmark = pytest.mark.e2e
LIMIT = 3


def sign_up(system: GeneratedTier2System, gw: httpx.Client) -> dict[str, str]:
    email, password = f"rl-{uuid.uuid4().hex[:8]}@example.com", "long enough password"
    signup = gw.post(
        "/users/auth/signup",
        json={"email": email, "display_name": "Rae", "password": password},
    )
    assert signup.status_code == 201, signup.text
    return {"authorization": f"Bearer {system.token(gw, email, password)}"}


def test_each_user_has_a_bucket_that_forwarded_headers_cannot_choose(
    tier2: Build, pg_admin_url: str, redis_broker_url: str, tmp_path: Path
) -> None:
    with running_system(
        tier2.redis_project,
        tier2.venv,
        pg_admin_url,
        redis_broker_url,
        tmp_path / "logs",
        ("user-service", "agent-service"),
        with_gateway=True,
        RATE_LIMIT_REQUESTS=str(LIMIT),
    ) as system:
        assert system.gateway is not None
        with httpx.Client(base_url=system.gateway.url, timeout=10) as gw:
            alice, bob = sign_up(system, gw), sign_up(system, gw)

            def job(who: dict[str, str], forwarded_for: str) -> int:
                headers = who | {"x-forwarded-for": forwarded_for}
                return gw.get(
                    f"/agents/jobs/{uuid.uuid4()}", headers=headers
                ).status_code

            # A new address per request: were X-Forwarded-For the key, none would be limited.
            alice_codes = [job(alice, f"203.0.113.{i}") for i in range(LIMIT + 2)]
            # Bob, from the very address Alice used last, still has his whole budget.
            bob_codes = [job(bob, f"203.0.113.{LIMIT + 1}") for _ in range(LIMIT)]
    assert alice_codes == [404] * LIMIT + [429, 429], alice_codes
    assert bob_codes == [404] * LIMIT, bob_codes
