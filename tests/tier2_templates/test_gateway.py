"""microservice_gateway.py end to end: a real gateway process in front of real
upstream processes, driven over HTTP and SSE from outside. Breaker states are read
from /health/ready, /metrics and response bodies, never inferred from timing."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from forge_testing.tokens import RsaKey
from httpx_sse import aconnect_sse

from tier2_templates.helpers import (
    KEY,
    TOKENS,
    GatewayWithUpstreams,
    JwksServer,
    user_auth,
)

OTHER_KEY = RsaKey.generate()  # not the issuer's: what another service could sign with

# A bound on how long a test may wait for something it expects; never a measurement.
PATIENCE = 30.0


async def get_json(
    client: httpx.AsyncClient, url: str, **kwargs: Any
) -> dict[str, Any]:
    response = await client.get(url, **kwargs)
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body


async def readiness(
    client: httpx.AsyncClient, system: GatewayWithUpstreams
) -> httpx.Response:
    return await client.get(f"{system.url}/health/ready")


async def breaker_state(
    client: httpx.AsyncClient, system: GatewayWithUpstreams, service: str
) -> str:
    state: str = (await readiness(client, system)).json()["services"][service][
        "breaker"
    ]
    return state


async def wait_for(
    what: str, check: Callable[[], Any], limit: float = PATIENCE, pause: float = 0.1
) -> None:
    deadline = time.monotonic() + limit
    while not await check():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what} after {limit:.0f}s")
        await asyncio.sleep(pause)


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == code, error
    assert error["message"]
    assert error["request_id"] == response.headers["x-request-id"]
    return error


# --------------------------------------------------------------------------- routing


@pytest.mark.parametrize("service", ["users", "agents"])
async def test_request_reaches_its_service_with_the_request_id(
    shared_system: GatewayWithUpstreams, service: str
) -> None:
    request_id = f"test-{uuid.uuid4().hex}"
    async with httpx.AsyncClient() as client:
        response = await client.get(
            f"{shared_system.url}/{service}/echo",
            headers={**user_auth(), "X-Request-ID": request_id},
        )
    assert response.status_code == 200, response.text
    seen = response.json()
    assert seen["service"] == service
    assert seen["raw_path"] == f"/{service}/echo"
    assert seen["headers"]["x-request-id"] == request_id
    assert response.headers["x-request-id"] == request_id
    assert seen["headers"]["x-auth-subject"] == "alice"


async def test_request_id_is_generated_when_missing_or_malformed(
    shared_system: GatewayWithUpstreams,
) -> None:
    async with httpx.AsyncClient() as client:
        for sent in (None, "has spaces", "x" * 200, "semi;colon"):
            headers = user_auth() | ({"X-Request-ID": sent} if sent else {})
            response = await client.get(
                f"{shared_system.url}/users/echo", headers=headers
            )
            assert response.status_code == 200
            returned = response.headers["x-request-id"]
            assert returned and returned != sent
            # The id the client gets back is the one the service logged against.
            assert response.json()["headers"]["x-request-id"] == returned


async def test_path_query_and_bodies_are_relayed_unchanged(
    shared_system: GatewayWithUpstreams,
) -> None:
    async with httpx.AsyncClient() as client:
        url = f"{shared_system.url}/users/echo/a%2Fb/c?q=1&q=two%20words"
        seen = (await client.get(url, headers=user_auth())).json()
        assert seen["raw_path"] == "/users/echo/a%2Fb/c"
        assert seen["query"] == "q=1&q=two%20words"

        for method in ("POST", "PUT", "PATCH", "DELETE"):
            payload = f'{{"method": "{method}", "text": "{"z" * 5000}"}}'
            response = await client.request(
                method,
                f"{shared_system.url}/users/echo",
                content=payload,
                headers={**user_auth(), "content-type": "application/json"},
            )
            assert response.status_code == 200, response.text
            assert response.json()["method"] == method
            assert response.json()["body"] == payload

        # strip_prefix: /bare/users/echo reaches /users/echo of the users service.
        seen = (
            await client.get(
                f"{shared_system.url}/bare/users/echo", headers=user_auth()
            )
        ).json()
        assert seen["service"] == "users"
        assert seen["raw_path"] == "/users/echo"


async def test_hop_by_hop_and_spoofable_headers_are_not_forwarded(
    shared_system: GatewayWithUpstreams,
) -> None:
    headers = {
        **user_auth(),
        "Connection": "keep-alive, X-Hop-Secret",
        "X-Hop-Secret": "for this connection only",
        "Keep-Alive": "timeout=5",
        "Proxy-Authorization": "Basic c2VjcmV0",
        "X-Auth-Subject": "mallory",
        "X-Forwarded-For": "203.0.113.9",
        "X-Custom": "kept",
    }
    async with httpx.AsyncClient() as client:
        del client.headers["accept-encoding"]  # this client accepts no compression
        response = await client.get(f"{shared_system.url}/users/echo", headers=headers)
    seen = response.json()["headers"]
    for dropped in ("x-hop-secret", "keep-alive", "proxy-authorization"):
        assert dropped not in seen, seen
    assert seen["x-auth-subject"] == "alice"
    assert seen["x-forwarded-for"] == "127.0.0.1"
    assert seen["x-custom"] == "kept"
    # The gateway's own HTTP client would ask for gzip unless told otherwise; it
    # must not ask for what the client did not accept.
    assert seen.get("accept-encoding") in (None, "identity")


async def test_unknown_prefix_is_a_structured_404(
    shared_system: GatewayWithUpstreams,
) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.get(
            f"{shared_system.url}/orders/1", headers=user_auth()
        )
    assert_error(response, 404, "unknown_service")


# --------------------------------------------------------------------------- auth


REJECTED_TOKENS: dict[str, Callable[[], dict[str, str]]] = {
    "missing": dict,
    "basic scheme": lambda: {"Authorization": "Basic YWxpY2U6cHc="},
    "empty bearer": lambda: {"Authorization": "Bearer"},
    "garbage": lambda: {"Authorization": "Bearer not.a.token"},
    "alg none": lambda: TOKENS.bearer("alice", alg="none"),
    "other algorithm": lambda: TOKENS.bearer("alice", alg="HS512"),
    "wrong secret": lambda: TOKENS.bearer(
        "alice", alg="HS256", secret="another-secret-" + "q" * 32
    ),
    # What any service could mint before: HS256 with the shared secret.
    "old shared secret": lambda: TOKENS.bearer("alice", alg="HS256"),
    # alg confusion: HS256 keyed with the issuer's public key (anyone can fetch it).
    "public key as HMAC secret": lambda: TOKENS.bearer(
        "alice", alg="HS256", secret=KEY.public_pem().decode(), kid=KEY.kid
    ),
    "another key, the issuer's kid": lambda: TOKENS.bearer(
        "alice", key=OTHER_KEY, kid=KEY.kid
    ),
    "another key, its own kid": lambda: TOKENS.bearer("alice", key=OTHER_KEY),
    "no kid": lambda: TOKENS.bearer("alice", kid=""),
    "wrong issuer": lambda: TOKENS.bearer("alice", iss="someone-else"),
    "service token": lambda: TOKENS.bearer("order-query", token_use="service"),
    "expired": lambda: TOKENS.bearer("alice", lifetime=-60),
    "wrong audience": lambda: TOKENS.bearer("alice", aud="someone-else"),
    "no subject": lambda: TOKENS.bearer(None),
}


@pytest.mark.parametrize("case", list(REJECTED_TOKENS))
async def test_edge_rejects_bad_credentials_before_any_upstream(
    shared_system: GatewayWithUpstreams, case: str
) -> None:
    upstream = shared_system.upstreams["users"].url
    async with httpx.AsyncClient() as client:
        before = (await get_json(client, f"{upstream}/users/stats")).get("echo", 0)
        response = await client.get(
            f"{shared_system.url}/users/echo", headers=REJECTED_TOKENS[case]()
        )
        after = (await get_json(client, f"{upstream}/users/stats")).get("echo", 0)
    code = (
        "unauthorized"
        if case in ("missing", "basic scheme", "empty bearer")
        else "invalid_token"
    )
    assert_error(response, 401, code)
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert after == before, "a rejected request reached the service"


async def test_a_flood_of_unknown_kids_fetches_the_jwks_a_bounded_number_of_times(
    fresh_system: Callable[..., GatewayWithUpstreams],
) -> None:
    jwks = JwksServer(KEY)
    try:
        system = fresh_system(JWKS_URL=jwks.url)
        async with httpx.AsyncClient(timeout=30) as client:
            ok = await client.get(f"{system.url}/users/echo", headers=user_auth())
            assert ok.status_code == 200, ok.text
            fetched = jwks.fetches
            flood = [
                client.get(
                    f"{system.url}/users/echo",
                    headers=TOKENS.bearer("alice", kid=uuid.uuid4().hex),
                )
                for _ in range(200)
            ]
            codes = {r.status_code for r in await asyncio.gather(*flood)}
            still = await client.get(f"{system.url}/users/echo", headers=user_auth())
        assert codes == {401}
        assert still.status_code == 200
        # The first fetch, then none: a refetch waits JWKS_REFETCH_SECONDS (30 s).
        assert fetched == 1
        assert jwks.fetches - fetched <= 1, jwks.fetches
    finally:
        jwks.close()


async def test_a_rotated_out_key_verifies_while_it_is_published(
    fresh_system: Callable[..., GatewayWithUpstreams],
) -> None:
    new_key = RsaKey.generate()
    jwks = JwksServer(new_key, KEY)  # rotation: the new key signs, the old is published
    try:
        system = fresh_system(JWKS_URL=jwks.url, JWKS_CACHE_SECONDS="1")
        old_token = user_auth()
        async with httpx.AsyncClient(timeout=30) as client:
            url = f"{system.url}/users/echo"
            assert (await client.get(url, headers=old_token)).status_code == 200
            new = TOKENS.bearer("alice", key=new_key)
            assert (await client.get(url, headers=new)).status_code == 200
            jwks.keys = [new_key]  # the old key's tokens have expired: it is dropped
            await asyncio.sleep(1.5)  # the cached set expires
            assert (await client.get(url, headers=new)).status_code == 200
            refused = await client.get(url, headers=old_token)
            assert refused.status_code == 401
    finally:
        jwks.close()


async def raw_get(port: int, target: str) -> tuple[int, dict[str, Any]]:
    """A GET with the request target exactly as given (HTTP clients resolve '..')."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        request_head = (
            f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        )
        writer.write(request_head.encode() + b"\r\n")
        await writer.drain()
        raw = await reader.read()
    finally:
        writer.close()
        await writer.wait_closed()
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, json.loads(body)


@pytest.mark.parametrize(
    "target",
    ["/users/echo/public/../../stats", "/users/echo/public/%2e%2e/%2E%2E/stats"],
)
async def test_dot_segments_cannot_reach_past_a_public_path(
    shared_system: GatewayWithUpstreams, target: str
) -> None:
    assert shared_system.gateway is not None
    status, body = await raw_get(shared_system.gateway.port, target)
    assert status == 400
    assert body["error"]["code"] == "invalid_path"


async def test_public_paths_and_gateway_endpoints_need_no_token(
    shared_system: GatewayWithUpstreams,
) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.get(f"{shared_system.url}/users/echo/public/terms")
        assert response.status_code == 200, response.text
        assert "x-auth-subject" not in response.json()["headers"]
        # Only the listed path: its neighbour still needs a token.
        response = await client.get(f"{shared_system.url}/users/echo/publicity")
        assert response.status_code == 401
        for path in ("/health", "/health/ready", "/metrics"):
            assert (await client.get(f"{shared_system.url}{path}")).status_code == 200


# --------------------------------------------------------------------------- SSE


async def test_sse_streams_through_event_by_event(
    shared_system: GatewayWithUpstreams,
) -> None:
    """The upstream sends event n+1 only after the test has seen event n through the
    gateway, so a gateway that buffered the response would never deliver event 0."""
    stream_id = uuid.uuid4().hex
    upstream = shared_system.upstreams["agents"].url
    url = f"{shared_system.url}/agents/stream/{stream_id}?events=3"
    async with httpx.AsyncClient(timeout=PATIENCE) as client:
        async with asyncio.timeout(PATIENCE):
            async with aconnect_sse(client, "GET", url, headers=user_auth()) as source:
                assert source.response.status_code == 200
                assert source.response.headers["content-type"].startswith(
                    "text/event-stream"
                )
                events = source.aiter_sse()
                for index in range(3):
                    event = await anext(events)
                    assert event.event == "token"
                    assert event.json() == {"index": index}
                    progress = await get_json(
                        client, f"{upstream}/agents/stream/{stream_id}/sent"
                    )
                    assert progress["sent"] == index + 1, (
                        "the upstream ran ahead of the client"
                    )
                    await client.post(f"{upstream}/agents/stream/{stream_id}/release")
                with pytest.raises(StopAsyncIteration):
                    await anext(events)


async def test_client_leaving_an_sse_stream_closes_the_upstream_stream(
    shared_system: GatewayWithUpstreams,
) -> None:
    stream_id = uuid.uuid4().hex
    upstream = shared_system.upstreams["agents"].url
    url = f"{shared_system.url}/agents/stream/{stream_id}?events=5"
    async with httpx.AsyncClient(timeout=PATIENCE) as client:
        async with aconnect_sse(client, "GET", url, headers=user_auth()) as source:
            first = await anext(source.aiter_sse())
            assert first.json() == {"index": 0}
        # The upstream generator is parked waiting for a release; it only ends when the
        # gateway drops the upstream connection after the client went away.
        progress_url = f"{upstream}/agents/stream/{stream_id}/sent"

        async def upstream_closed() -> bool:
            return bool((await get_json(client, progress_url))["closed"])

        await wait_for("the upstream stream to be closed", upstream_closed)


# --------------------------------------------------------------------------- breaker


async def test_breaker_opens_fails_fast_and_closes_through_half_open(
    fresh_system: Callable[..., GatewayWithUpstreams],
) -> None:
    system = fresh_system()
    base = system.url
    async with httpx.AsyncClient(timeout=PATIENCE) as client:
        assert (await readiness(client, system)).status_code == 200

        system.stop_upstream("users")
        # Each call is one try and one retry (a refused connection is retried), and
        # one breaker failure however many tries it took (threshold 3).
        for _ in range(3):
            assert await breaker_state(client, system, "users") == "closed"
            failed = await client.get(f"{base}/users/echo", headers=user_auth())
            assert_error(failed, 502, "upstream_connection_error")
        tripping = await client.get(f"{base}/users/echo", headers=user_auth())
        assert_error(tripping, 503, "circuit_open")

        ready = await readiness(client, system)
        assert ready.status_code == 503, "users is required: the gateway is not ready"
        report = ready.json()
        assert report["status"] == "degraded"
        assert report["services"]["users"] == {
            "status": "down",
            "breaker": "open",
            "reachable": False,
            "required": True,
        }
        assert report["services"]["agents"]["status"] == "up"
        assert report["services"]["agents"]["breaker"] == "closed"

        # Fails fast: the breaker answers without calling the service.
        fast = await client.get(f"{base}/users/echo", headers=user_auth())
        error = assert_error(fast, 503, "circuit_open")
        assert error["service"] == "users"
        assert error["breaker"] == "open"
        assert 0 < error["retry_after_seconds"] <= 4
        assert int(fast.headers["retry-after"]) >= 1

        # The other service is unaffected.
        other = await client.get(f"{base}/agents/echo", headers=user_auth())
        assert other.status_code == 200
        assert other.json()["service"] == "agents"

        metrics = (await client.get(f"{base}/metrics")).text
        assert _enum_sample("users", "open") in metrics
        assert _enum_sample("agents", "closed") in metrics

        # The service comes back; the breaker lets a trial call through once the open
        # interval is over.
        users = system.restart_upstream("users")

        async def half_open() -> bool:
            return await breaker_state(client, system, "users") == "half_open"

        await wait_for("the users breaker to become half-open", half_open)

        # One trial at a time (BREAKER_HALF_OPEN_MAX_CALLS=1): hold the trial inside
        # the service and check that a second call is turned away meanwhile.
        hold_id = uuid.uuid4().hex
        trial = asyncio.create_task(
            client.get(f"{base}/users/hold/{hold_id}", headers=user_auth())
        )

        async def trial_arrived() -> bool:
            arrived = await get_json(
                client, f"{users.url}/users/hold/{hold_id}/arrived"
            )
            return bool(arrived["arrived"])

        await wait_for("the trial call to reach the service", trial_arrived)
        turned_away = await client.get(f"{base}/users/echo", headers=user_auth())
        assert assert_error(turned_away, 503, "circuit_open")["breaker"] == "half_open"
        assert await breaker_state(client, system, "users") == "half_open"

        await client.post(f"{users.url}/users/hold/{hold_id}/release")
        assert (await trial).status_code == 200

        assert await breaker_state(client, system, "users") == "closed"
        assert (await readiness(client, system)).status_code == 200
        back = await client.get(f"{base}/users/echo", headers=user_auth())
        assert back.status_code == 200
        metrics = (await client.get(f"{base}/metrics")).text
        assert _enum_sample("users", "closed") in metrics
        for state in ("open", "half_open", "closed"):
            assert _transitions_sample("users", state) in metrics


async def test_client_errors_leave_the_breaker_closed_server_errors_open_it(
    fresh_system: Callable[..., GatewayWithUpstreams],
) -> None:
    system = fresh_system()
    upstream = system.upstreams["users"].url
    async with httpx.AsyncClient(timeout=PATIENCE) as client:
        for _ in range(5):
            response = await client.get(
                f"{system.url}/users/status/404", headers=user_auth()
            )
            assert response.status_code == 404  # the service's own answer, passed on
        assert await breaker_state(client, system, "users") == "closed"

        for _ in range(3):  # 500 is not retried: one failure per call
            response = await client.get(
                f"{system.url}/users/status/500", headers=user_auth()
            )
            assert response.status_code == 500
            assert response.json() == {"status": 500}
        assert await breaker_state(client, system, "users") == "open"
        response = await client.get(
            f"{system.url}/users/status/500", headers=user_auth()
        )
        assert_error(response, 503, "circuit_open")
        hits = await get_json(client, f"{upstream}/users/stats")
        assert hits["GET status/500"] == 3, (
            "the call after the breaker opened got through"
        )


async def test_a_slow_service_times_out_on_its_own_deadline_and_trips_its_breaker(
    fresh_system: Callable[..., GatewayWithUpstreams],
) -> None:
    # users: 1 s deadline (its own), everything else the 5 s default; no retries.
    system = fresh_system(users_spec={"timeout_seconds": 1}, RETRY_ATTEMPTS="0")
    users = system.upstreams["users"].url
    async with httpx.AsyncClient(timeout=PATIENCE) as client:
        for _ in range(
            3
        ):  # held past the deadline: the service does not answer in time
            hold_id = uuid.uuid4().hex
            response = await client.get(
                f"{system.url}/users/hold/{hold_id}", headers=user_auth()
            )
            error = assert_error(response, 504, "upstream_timeout")
            assert error["service"] == "users"
            # Let the abandoned handler finish, so the service can stop cleanly later.
            await client.post(f"{users}/users/hold/{hold_id}/release")
        assert await breaker_state(client, system, "users") == "open"
        assert await breaker_state(client, system, "agents") == "closed"
        metrics = (await client.get(f"{system.url}/metrics")).text
        assert (
            'gateway_upstream_requests_total{outcome="timeout",service="users"} 3.0'
            in (metrics)
        )


async def test_a_service_503_is_passed_on_never_retried(
    fresh_system: Callable[..., GatewayWithUpstreams],
) -> None:
    # The service may have done the work before answering 503: only connect failures
    # are retried (tests/tier2_templates/test_gateway_attacks.py).
    system = fresh_system(BREAKER_FAILURE_THRESHOLD="100")
    upstream = system.upstreams["users"].url
    async with httpx.AsyncClient(timeout=PATIENCE) as client:
        get = await client.get(f"{system.url}/users/status/503", headers=user_auth())
        post = await client.post(f"{system.url}/users/status/503", headers=user_auth())
        hits = await get_json(client, f"{upstream}/users/stats")
    assert get.status_code == post.status_code == 503
    assert hits["GET status/503"] == 1  # RETRY_ATTEMPTS=1, yet one try
    assert hits["POST status/503"] == 1


def _enum_sample(service: str, state: str) -> str:
    return (
        f'gateway_circuit_breaker_state{{gateway_circuit_breaker_state="{state}",'
        f'service="{service}"}} 1.0'
    )


def _transitions_sample(service: str, state: str) -> str:
    labels = f'service="{service}",state="{state}"'
    return f"gateway_circuit_breaker_transitions_total{{{labels}}}"


# ----------------------------------------------------------------------- hot path

# Loaded by the gateway's interpreter at start-up (PYTHONPATH): counts the times its
# import system searches for `sniffio`, the module httpcore asks for on every lock,
# event and pool operation. Python does not remember a failed import, so where it is
# not installed (anyio >= 4.11 no longer brings it) each ask walks sys.path again.
IMPORT_PROBE = """
import os
import sys


class SniffioLookups:
    def find_spec(self, name, path=None, target=None):
        if name == "sniffio":
            with open(os.environ["IMPORT_PROBE_LOG"], "a") as log:
                log.write(".")
        return None


sys.meta_path.insert(0, SniffioLookups())
"""


async def test_proxied_requests_do_not_search_sys_path_for_a_module(
    fresh_system: Callable[..., GatewayWithUpstreams], tmp_path: Path
) -> None:
    probe = tmp_path / "probe"
    probe.mkdir()
    (probe / "sitecustomize.py").write_text(IMPORT_PROBE)
    lookups = tmp_path / "lookups.log"
    lookups.touch()
    system = fresh_system(PYTHONPATH=str(probe), IMPORT_PROBE_LOG=str(lookups))
    async with httpx.AsyncClient() as client:
        auth = user_auth()
        warm = await client.get(f"{system.url}/users/echo", headers=auth)
        assert warm.status_code == 200, warm.text
        before = len(lookups.read_text())
        for _ in range(50):
            response = await client.get(f"{system.url}/users/echo", headers=auth)
            assert response.status_code == 200, response.text
    searches = len(lookups.read_text()) - before
    # Before the fix: ~0.5 ms of CPU per request went to these searches (the Tier 2
    # bench at 0.04 of the service called directly).
    assert searches == 0, f"{searches} sys.path searches for sniffio in 50 requests"
