"""The test plumbing itself: real services from scripts/services, throwaway databases, and
server processes that start, answer and stop."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis
from forge_testing import StartupError, start_uvicorn

APP = textwrap.dedent(
    """
    import os

    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    if os.environ.get("FAIL_AT_START"):
                        raise RuntimeError("refusing to start: FAIL_AT_START is set")
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        body = str(os.getpid()).encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})
    """
)


async def test_postgres_url_is_a_fresh_writable_database(postgres_url: str) -> None:
    assert postgres_url.startswith("postgresql+asyncpg://")
    conn = await asyncpg.connect(postgres_url.replace("+asyncpg", ""))
    try:
        assert (
            await conn.fetchval(
                "select count(*) from pg_tables where schemaname = 'public'"
            )
            == 0
        )
        await conn.execute("create table t (x int)")
        await conn.execute("insert into t values (41)")
        assert await conn.fetchval("select x + 1 from t") == 42
    finally:
        await conn.close()


async def test_redis_url_points_at_an_empty_database(redis_url: str) -> None:
    client = aioredis.Redis.from_url(redis_url)
    try:
        assert await client.dbsize() == 0
        await client.set("k", "v")
        assert await client.get("k") == b"v"
    finally:
        await client.aclose()


def test_uvicorn_with_two_workers_answers_from_both(
    run_uvicorn, tmp_path: Path
) -> None:
    (tmp_path / "tiny.py").write_text(APP)
    server = run_uvicorn("tiny:app", python=sys.executable, cwd=tmp_path, workers=2)
    pids = {httpx.get(server.url + "/health").text for _ in range(60)}
    assert all(pid.isdigit() for pid in pids)
    server.stop()
    assert not server.process.alive()
    with pytest.raises(httpx.ConnectError):
        httpx.get(server.url + "/health", timeout=2)


def test_uvicorn_that_fails_at_startup_reports_its_log(tmp_path: Path) -> None:
    (tmp_path / "tiny.py").write_text(APP)
    with pytest.raises(StartupError, match="FAIL_AT_START is set"):
        server = start_uvicorn(
            "tiny:app",
            python=sys.executable,
            cwd=tmp_path,
            env={"FAIL_AT_START": "1", "PATH": "/usr/bin:/bin"},
            log_dir=tmp_path / "logs",
            timeout=30,
            # With "auto", uvicorn takes a failing startup for missing lifespan support.
            extra_args=["--lifespan", "on"],
        )
        server.stop()  # reached only if it wrongly started


def test_private_redis_can_be_stopped(private_redis) -> None:
    import redis

    client = redis.Redis(port=private_redis.port)
    assert client.ping()
    private_redis.stop()
    with pytest.raises(redis.ConnectionError):
        client.ping()
