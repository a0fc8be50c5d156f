"""Rate limiting in Redis: per caller, shared by every app instance (worker) on one Redis."""

from __future__ import annotations

import asyncio
import re
import time

from .conftest import SettingsFactory
from .helpers import app_client, free_port


async def test_limit_gives_429_with_retry_after(
    make_settings: SettingsFactory, headers: dict[str, str]
) -> None:
    settings = make_settings(rate_limit_requests=3, rate_limit_window_seconds=30)
    async with app_client(settings) as client:
        for remaining in (2, 1, 0):
            ok = await client.get("/me", headers=headers)
            assert ok.status_code == 200
            assert ok.headers["x-ratelimit-remaining"] == str(remaining)
        limited = await client.get("/me", headers=headers)
        assert limited.status_code == 429
        assert 1 <= int(limited.headers["retry-after"]) <= 30
        assert limited.json()["error"]["code"] == "rate_limited"
        # Health and metrics stay reachable for probes and scrapers.
        assert (await client.get("/health")).status_code == 200
        assert (await client.get("/metrics")).status_code == 200


async def test_limit_is_shared_between_processes(
    make_settings: SettingsFactory, headers: dict[str, str]
) -> None:
    settings = make_settings(rate_limit_requests=4, rate_limit_window_seconds=30)
    # Two app instances stand for two uvicorn workers: the count lives in Redis.
    async with app_client(settings) as first, app_client(settings) as second:
        statuses = []
        for client in (first, second, first, second, first):
            response = await client.get("/me", headers=headers)
            statuses.append(response.status_code)
    assert statuses[-1] == 429
    assert 429 not in statuses[:4]


async def test_concurrent_requests_get_exactly_the_limit(
    make_settings: SettingsFactory, headers: dict[str, str]
) -> None:
    # Requests that arrive together share one Redis call: each still gets its own place.
    settings = make_settings(rate_limit_requests=7, rate_limit_window_seconds=30)
    async with app_client(settings) as first, app_client(settings) as second:
        responses = await asyncio.gather(
            *(client.get("/me", headers=headers) for client in (first, second) * 10)
        )
    statuses = sorted(response.status_code for response in responses)
    assert statuses == [200] * 7 + [429] * 13
    remaining = sorted(int(r.headers["x-ratelimit-remaining"]) for r in responses)
    assert remaining[-7:] == list(range(7)), remaining


# With --auth none every caller is anonymous and counted per client address: no such test.
# forge:if auth!=none
async def test_each_caller_has_its_own_budget(
    make_settings: SettingsFactory, headers: dict[str, str], other_caller_headers: dict[str, str]
) -> None:
    alice, mallory = headers, other_caller_headers
    settings = make_settings(rate_limit_requests=2, rate_limit_window_seconds=30)
    async with app_client(settings) as client:
        codes = [(await client.get("/me", headers=alice)).status_code for _ in range(3)]
        # Same client address, another caller: a budget of its own.
        other = await client.get("/me", headers=mallory)
    assert codes == [200, 200, 429]
    assert other.status_code == 200
# forge:end


async def test_unreachable_redis_fails_open(
    make_settings: SettingsFactory, headers: dict[str, str]
) -> None:
    settings = make_settings(redis_url=f"redis://127.0.0.1:{free_port()}/0")
    async with app_client(settings) as client:
        response = await client.get("/me", headers=headers)
        metrics = (await client.get("/metrics")).text
    assert response.status_code == 200
    unchecked = re.search(r"^rate_limit_unchecked_total ([0-9.]+)$", metrics, re.MULTILINE)
    assert unchecked is not None
    assert float(unchecked.group(1)) >= 1


async def test_a_silent_redis_costs_at_most_its_timeout(
    make_settings: SettingsFactory, headers: dict[str, str]
) -> None:
    # Accepts connections and never answers: only a read timeout gets the request through.
    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    settings = make_settings(redis_url=f"redis://127.0.0.1:{port}/0", redis_timeout_seconds=0.3)
    async with server, app_client(settings) as client:
        started = time.monotonic()
        response = await client.get("/me", headers=headers)
        elapsed = time.monotonic() - started
    assert response.status_code == 200
    assert elapsed < 3
