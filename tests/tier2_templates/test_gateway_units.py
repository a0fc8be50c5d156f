"""The gateway's circuit breaker and settings, in process, on a fake clock."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from typing import Any

import httpx
import pytest
from forge_testing import TEMPLATES
from pydantic import ValidationError

from tier2_templates.helpers import gateway_module

gw = gateway_module()
CLOSED, OPEN, HALF_OPEN = (
    gw.BreakerState.CLOSED,
    gw.BreakerState.OPEN,
    gw.BreakerState.HALF_OPEN,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def breaker(clock: FakeClock, changes: list[Any] | None = None, trials: int = 1) -> Any:
    return gw.CircuitBreaker(
        "users",
        failure_threshold=3,
        open_seconds=10.0,
        half_open_max_calls=trials,
        on_change=(lambda name, state: changes.append((name, state)))
        if changes is not None
        else None,
        clock=clock,
    )


def fail(b: Any, times: int = 1) -> None:
    for _ in range(times):
        b.acquire().failure()


def test_opens_after_consecutive_failures_only() -> None:
    b = breaker(FakeClock())
    fail(b, 2)
    b.acquire().success()  # a success resets the count
    fail(b, 2)
    assert b.state is CLOSED
    fail(b)
    assert b.state is OPEN


def test_open_rejects_until_the_interval_ends_then_half_opens() -> None:
    clock = FakeClock()
    b = breaker(clock)
    fail(b, 3)
    clock.now += 4
    with pytest.raises(gw.CircuitOpenError) as rejected:
        b.acquire()
    assert rejected.value.state is OPEN
    assert rejected.value.retry_after == pytest.approx(6.0)
    clock.now += 6
    assert b.state is HALF_OPEN


def test_half_open_admits_a_limited_number_of_trials() -> None:
    clock = FakeClock()
    b = breaker(clock, trials=2)
    fail(b, 3)
    clock.now += 10
    first, second = b.acquire(), b.acquire()
    with pytest.raises(gw.CircuitOpenError) as rejected:
        b.acquire()
    assert rejected.value.state is HALF_OPEN
    first.success()
    assert b.state is CLOSED
    second.failure()  # stale: taken while half-open, the breaker has moved on
    assert b.state is CLOSED


def test_a_failed_trial_reopens_for_a_full_interval() -> None:
    clock = FakeClock()
    b = breaker(clock)
    fail(b, 3)
    clock.now += 10
    b.acquire().failure()
    assert b.state is OPEN
    clock.now += 9.9
    assert b.state is OPEN
    clock.now += 0.1
    assert b.state is HALF_OPEN


def test_an_abandoned_trial_frees_its_slot() -> None:
    clock = FakeClock()
    b = breaker(clock)
    fail(b, 3)
    clock.now += 10
    trial = b.acquire()
    trial.release()  # the client went away: no verdict
    assert b.state is HALF_OPEN
    b.acquire().success()
    assert b.state is CLOSED


def test_outcomes_from_before_a_state_change_are_ignored() -> None:
    clock = FakeClock()
    b = breaker(clock)
    slow = b.acquire()  # started while closed
    fail(b, 3)
    slow.success()  # arrives after the breaker opened: must not close it
    assert b.state is OPEN
    clock.now += 10
    late_failure = b.acquire()
    late_failure.success()
    assert b.state is CLOSED
    late_failure.failure()  # second outcome of one permit: ignored
    assert b.state is CLOSED


def test_responses_cut_off_mid_body_open_the_breaker() -> None:
    # Outside half-open a call is decided when its body is through: the headers came,
    # then the service reset the connection, three times over.
    b = breaker(FakeClock())
    for _ in range(3):
        b.acquire().broke()
    assert b.state is OPEN


def test_a_cut_off_trial_does_not_reopen_the_breaker_it_closed() -> None:
    clock = FakeClock()
    b = breaker(clock)
    fail(b, 3)
    clock.now += 10
    trial = b.acquire()
    trial.success()  # a trial decides at the headers
    trial.broke()  # stale: the breaker has moved on
    assert b.state is CLOSED


def test_transitions_are_reported_in_order() -> None:
    clock = FakeClock()
    changes: list[Any] = []
    b = breaker(clock, changes)
    fail(b, 3)
    clock.now += 10
    b.acquire().success()
    assert changes == [("users", OPEN), ("users", HALF_OPEN), ("users", CLOSED)]


# --------------------------------------------------------------------------- settings


def settings(**values: Any) -> Any:
    base: dict[str, Any] = {
        "services": {"users": "http://users:8000"},
        "jwks_url": "http://user-service:8000/.well-known/jwks.json",
        "jwt_audience": "forge-api",
        "jwt_issuer": "forge-api",
    }
    return gw.GatewaySettings(_env_file=None, **(base | values))


def test_services_accept_a_bare_url_or_an_object() -> None:
    s = settings(
        services={
            "users": "http://users:8000",
            "agents": {"url": "http://agents:8000/api", "timeout_seconds": 30},
        }
    )
    assert str(s.services["users"].url) == "http://users:8000/"
    assert s.services["users"].required is False
    assert s.services["agents"].timeout_seconds == 30


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"services": {}}, "SERVICES is empty"),
        ({"services": {"health": "http://x:1"}}, "not a usable path prefix"),
        ({"services": {"Users": "http://x:1"}}, "not a usable path prefix"),
        ({"services": {"users": "ftp://x:1"}}, "URL scheme"),
        ({"services": {"users": {"url": "http://x:1", "retries": 3}}}, "retries"),
        ({"jwks_url": "file:///etc/passwd"}, "jwks_url"),
    ],
)
def test_bad_settings_fail_at_start_with_a_clear_message(
    values: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        settings(**values)


@pytest.mark.parametrize(
    ("base", "strip", "path", "query", "expected"),
    [
        ("http://u:1", False, b"/users/a%2Fb", b"x=1", "http://u:1/users/a%2Fb?x=1"),
        ("http://u:1", True, b"/users/a", b"", "http://u:1/a"),
        ("http://u:1", True, b"/users", b"", "http://u:1/"),
        ("http://u:1/api/", True, b"/users/a", b"", "http://u:1/api/a"),
        ("http://u:1/api", False, b"/users/a", b"q", "http://u:1/api/users/a?q"),
        # The prefix as sent, however encoded (before: sliced by length, "/ers/a").
        ("http://u:1", True, b"/%75sers/a", b"", "http://u:1/a"),
        ("http://u:1", True, b"/%75%73%65%72%73", b"", "http://u:1/"),
    ],
)
async def test_upstream_urls_keep_the_raw_path(
    base: str, strip: bool, path: bytes, query: bytes, expected: str
) -> None:
    spec = gw.ServiceSpec(url=base, strip_prefix=strip)
    async with httpx.AsyncClient() as client:
        upstream = gw.Upstream(
            "users",
            spec,
            client,
            breaker(FakeClock()),
            1.0,
            requests=asyncio.Semaphore(1),
            streams=asyncio.Semaphore(1),
        )
        assert str(upstream.url_for(path, query)) == expected


@pytest.mark.parametrize(
    ("path", "refused"),
    [
        ("/users/a/../b", True),
        ("/users/a/..\\b", True),
        ("/users/a\\..\\b", True),
        ("/users/a/%2e%2e/b", True),  # decoded once more behind the gateway
        ("/users/a/%252e%252e/b", True),
        ("/users/a/..;/b", True),
        ("/users/a/./b", True),
        ("/users/a..b/c", False),
        ("/users/...", False),
        ("/users/a%20b", False),
    ],
)
def test_dot_segments_are_found_however_disguised(path: str, refused: bool) -> None:
    assert gw.has_dot_segment(path) is refused


def test_importing_the_module_needs_no_environment() -> None:
    # `app` is built on first access only (uvicorn's), so the import above worked
    # without SERVICES or JWKS_URL in the environment.
    assert "app" not in vars(gw)


@pytest.mark.parametrize(
    "args",
    [["check", "--select", "E,F,W,I,UP,B,ASYNC"], ["format", "--check"]],
    ids=["check", "format"],
)
def test_gateway_is_ruff_clean_as_shipped(args: list[str]) -> None:
    path = TEMPLATES / "microservice_gateway.py"
    command = [
        sys.executable,
        "-m",
        "ruff",
        *args,
        "--isolated",
        "--target-version=py311",
    ]
    result = subprocess.run([*command, str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
