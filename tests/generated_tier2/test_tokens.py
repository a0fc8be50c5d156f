"""Only user-service can sign a token: the gateway and every service verify with its JWKS,
so a token signed with anything else (the shared secret every service held before, another
key, its public key as an HMAC secret) is refused, at the edge and at each service directly.
A rotated-out key keeps verifying while user-service still publishes it."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import httpx
import pytest
from forge_testing.tokens import JwtMinter, RsaKey, bearer

from .conftest import Build
from .system import OLD_SHARED_SECRET, GeneratedTier2System, running_system

pytestmark = pytest.mark.e2e
ALL = ("user-service", "notification-service", "agent-service")
# What each route answers an accepted token with (no such job: 404; no notifications yet).
ROUTES = {
    "notification-service": ("/notify/notifications", 200),
    "agent-service": (f"/agents/jobs/{uuid.uuid4()}", 404),
}


def user_token(system: GeneratedTier2System, gw: httpx.Client) -> str:
    email, password = f"tok-{uuid.uuid4().hex[:8]}@example.com", "long enough password"
    signup = gw.post(
        "/users/auth/signup",
        json={"email": email, "display_name": "Tia", "password": password},
    )
    assert signup.status_code == 201, signup.text
    return system.token(gw, email, password)


def codes(system: GeneratedTier2System, headers: dict[str, str]) -> dict[str, int]:
    """The answer of the gateway and of each service directly, per service."""
    assert system.gateway is not None
    found = {}
    for name, (path, _) in ROUTES.items():
        for via, base in (
            ("gateway", system.gateway.url),
            ("direct", system.services[name].url),
        ):
            found[f"{name} {via}"] = httpx.get(
                base + path, headers=headers, timeout=10
            ).status_code
    return found


def accepted() -> dict[str, int]:
    return {
        f"{n} {via}": code
        for n, (_, code) in ROUTES.items()
        for via in ("gateway", "direct")
    }


def test_only_user_service_tokens_pass_the_gateway_and_the_services(
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
        assert system.gateway is not None and system.key is not None
        with httpx.Client(base_url=system.gateway.url, timeout=10) as gw:
            token = user_token(system, gw)
        assert codes(system, bearer(token)) == accepted()
        user_id = httpx.get(
            f"{system.services['user-service'].url}/users/me", headers=bearer(token)
        ).json()["id"]
        forged = JwtMinter("", "forge-api", "forge-api", key=system.key)
        refused = {
            "the old shared secret": forged.token(
                user_id, alg="HS256", secret=OLD_SHARED_SECRET
            ),
            "another key, user-service's kid": forged.token(
                user_id, key=RsaKey.generate(), kid=system.key.kid
            ),
            "another key, its own kid": forged.token(user_id, key=RsaKey.generate()),
            "HS256 keyed with the public key": forged.token(
                user_id,
                alg="HS256",
                secret=system.key.public_pem().decode(),
                kid=system.key.kid,
            ),
            "alg none": forged.token(user_id, alg="none", kid=system.key.kid),
        }
        for what, forgery in refused.items():
            found = codes(system, bearer(forgery))
            assert set(found.values()) == {401}, (what, found)


def test_a_rotated_out_key_verifies_while_it_is_published(
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
        JWKS_CACHE_SECONDS="2",
        JWKS_REFETCH_SECONDS="1",
        OIDC_JWKS_CACHE_SECONDS="2",
    ) as system:
        assert system.gateway is not None and system.key is not None
        users = system.services["user-service"]
        with httpx.Client(base_url=system.gateway.url, timeout=10) as gw:
            old = user_token(system, gw)
            assert codes(system, bearer(old)) == accepted()
            # Rotation: a new signing key; the old one's public half still published.
            new_key, previous = tmp_path / "new.pem", tmp_path / "previous.pem"
            new_key.write_bytes(RsaKey.generate().pem)
            previous.write_bytes(system.key.public_pem())
            users.stop()
            users.start(
                JWT_PRIVATE_KEY_FILE=str(new_key),
                JWT_PREVIOUS_PUBLIC_KEY_FILE=str(previous),
            )
            new = user_token(system, gw)
            time.sleep(1.2)  # the refetch cooldown after the verifiers' last fetch
            assert codes(system, bearer(new)) == accepted()
            assert codes(system, bearer(old)) == accepted()
            # The old key's tokens have expired: it is no longer published.
            users.stop()
            users.start(JWT_PRIVATE_KEY_FILE=str(new_key))
            time.sleep(2.5)  # the verifiers' cached key sets expire
            assert codes(system, bearer(new)) == accepted()
            assert set(codes(system, bearer(old)).values()) == {401}
