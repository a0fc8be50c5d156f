"""Liveness, readiness, metrics, request ids and the error shape."""

from __future__ import annotations

import json
import re

import httpx
import pytest

from .conftest import SettingsFactory
from .helpers import app_client, free_port, uvicorn_process


async def test_liveness(client: httpx.AsyncClient) -> None:
    response = await client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.uses_database
async def test_ready_when_dependencies_answer(client: httpx.AsyncClient) -> None:
    response = await client.get("/health/ready")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "ready"
    assert body["checks"]["redis"] == "ok"
    assert set(body["checks"].values()) == {"ok"}


async def test_not_ready_when_redis_is_down(make_settings: SettingsFactory) -> None:
    closed = f"redis://127.0.0.1:{free_port()}/0"
    settings = make_settings(redis_url=closed, readiness_timeout_seconds=0.5)
    async with app_client(settings) as client:
        response = await client.get("/health/ready")
        assert response.status_code == 503
        body = response.json()
        assert body["status"] == "not_ready"
        assert body["checks"]["redis"] == "failed"
        # Liveness does not depend on Redis.
        assert (await client.get("/health")).status_code == 200


async def test_request_id_is_generated_and_propagated(client: httpx.AsyncClient) -> None:
    generated = (await client.get("/health")).headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", generated)
    echoed = await client.get("/health", headers={"X-Request-ID": "abc-123"})
    assert echoed.headers["x-request-id"] == "abc-123"
    unsafe = await client.get("/health", headers={"X-Request-ID": "bad id\twith spaces"})
    assert unsafe.headers["x-request-id"] != "bad id\twith spaces"


async def test_errors_are_structured_with_the_request_id(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    response = await client.get("/nope", headers={**headers, "X-Request-ID": "req-42"})
    assert response.status_code == 404
    assert response.json() == {
        "error": {"code": "not_found", "message": "Not Found", "request_id": "req-42"}
    }


async def test_me_returns_the_caller(client: httpx.AsyncClient, headers: dict[str, str]) -> None:
    response = await client.get("/me", headers=headers)
    assert response.status_code == 200
    assert response.json()["subject"]


def me_count(metrics: str) -> float:
    match = re.search(
        r'http_requests_total\{method="GET",route="/me",status="200"\} ([0-9.]+)', metrics
    )
    return float(match.group(1)) if match else 0.0


async def test_metrics_count_requests_by_route(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    before = me_count((await client.get("/metrics")).text)
    for _ in range(3):
        await client.get("/me", headers=headers)
    assert me_count((await client.get("/metrics")).text) == before + 3


async def test_cors_from_settings(make_settings: SettingsFactory) -> None:
    settings = make_settings(cors_origins=["https://app.example.com"])
    async with app_client(settings) as client:
        preflight = await client.options(
            "/me",
            headers={
                "Origin": "https://app.example.com",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization,content-type",
            },
        )
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == "https://app.example.com"
        other = await client.get("/health", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers


async def test_metrics_are_aggregated_across_uvicorn_workers(
    make_settings: SettingsFactory, tmp_path_factory: pytest.TempPathFactory
) -> None:
    metrics_dir = tmp_path_factory.mktemp("prometheus")
    env = {"PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
    # Readiness is the counted route: it is not polled by uvicorn_process.
    settings = make_settings(readiness_timeout_seconds=0.2)
    async with uvicorn_process(settings, workers=2, extra_env=env) as base:
        # A fresh connection per request, so the kernel spreads them over both workers.
        for _ in range(20):
            async with httpx.AsyncClient(base_url=base) as fresh:
                await fresh.get("/health/ready")
        # Whichever worker answers a scrape reports the total of all workers.
        for _ in range(4):
            async with httpx.AsyncClient(base_url=base) as fresh:
                text = (await fresh.get("/metrics")).text
            counts = re.findall(
                r'http_requests_total\{method="GET",route="/health/ready",status="\d+"\} ([0-9.]+)',
                text,
            )
            assert sum(float(count) for count in counts) == 20, text


async def test_logs_are_json_lines_with_the_request_id(
    make_settings: SettingsFactory, capfd: pytest.CaptureFixture[str]
) -> None:
    async with app_client(make_settings(log_json=True)) as client:
        await client.get("/health", headers={"X-Request-ID": "log-check-7"})
    lines = [line for line in capfd.readouterr().err.splitlines() if line.startswith("{")]
    records = [json.loads(line) for line in lines]
    access = [r for r in records if r.get("event") == "request" and r.get("path") == "/health"]
    assert access, lines
    assert access[-1]["request_id"] == "log-check-7"
    assert access[-1]["status"] == 200
    assert access[-1]["level"] == "info"
    assert "timestamp" in access[-1]
