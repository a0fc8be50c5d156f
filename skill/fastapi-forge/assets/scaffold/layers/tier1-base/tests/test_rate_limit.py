"""Rate limiting in Redis: shared by every app instance (worker) using the same Redis."""

from __future__ import annotations

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


async def test_unauthenticated_requests_count_too(make_settings: SettingsFactory) -> None:
    settings = make_settings(rate_limit_requests=2, rate_limit_window_seconds=30)
    async with app_client(settings) as client:
        codes = [(await client.get("/me")).status_code for _ in range(3)]
    assert codes[-1] == 429


async def test_unreachable_redis_fails_open(
    make_settings: SettingsFactory, headers: dict[str, str]
) -> None:
    settings = make_settings(redis_url=f"redis://127.0.0.1:{free_port()}/0")
    async with app_client(settings) as client:
        response = await client.get("/me", headers=headers)
    assert response.status_code == 200
