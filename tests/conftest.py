"""Fixtures for the repository's tests: real PostgreSQL and Redis from `scripts/services`,
the machine's RabbitMQ, throwaway databases, Redis databases and vhosts, and real uvicorn
processes whose logs are shown when a test fails. The code behind them is forge_testing."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol, TypeVar

import pytest
from forge_testing import (
    LIVE_PROCESSES,
    ManagedProcess,
    Server,
    ensure_rabbitmq,
    rabbitmq_vhost,
    redis_database,
    require_env,
    spawn,
    start_redis_server,
    start_uvicorn,
    throwaway_database,
)


@pytest.fixture(scope="session")
def pg_admin_url() -> str:
    """Admin DSN of the test PostgreSQL (libpq form, database `postgres`)."""
    return require_env("FORGE_PG_URL")


@pytest.fixture(scope="session")
def redis_base_url() -> str:
    return require_env("FORGE_REDIS_URL")


@pytest.fixture(scope="module")
def postgres_url(pg_admin_url: str, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh database for this test module as a `postgresql+asyncpg://` URL, dropped after."""
    with throwaway_database(pg_admin_url, prefix=_db_prefix(request)) as url:
        yield url


@pytest.fixture(scope="module")
def redis_url(redis_base_url: str) -> Iterator[str]:
    """A Redis logical database for this test module, flushed before and after."""
    with redis_database(redis_base_url) as url:
        yield url


@pytest.fixture
def redis_broker_url(redis_base_url: str) -> Iterator[str]:
    """A Redis logical database of this test's own, for a broker (Redis Streams)."""
    with redis_database(redis_base_url) as url:
        yield url


@pytest.fixture(scope="session")
def rabbitmq_ready() -> None:
    ensure_rabbitmq()


@pytest.fixture
def rabbit_url(rabbitmq_ready: None) -> Iterator[str]:
    """The AMQP URL of a RabbitMQ vhost of this test's own, deleted afterwards."""
    with rabbitmq_vhost() as url:
        yield url


@pytest.fixture
def run_uvicorn(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """`run_uvicorn("pkg.main:app", python=..., cwd=..., env=..., workers=2)` starts a real
    uvicorn on a free port, waits for /health and returns a `Server`; stopped on teardown."""
    yield from _stopped_after(start_uvicorn, tmp_path / "logs")


@pytest.fixture
def run_process(tmp_path: Path) -> Iterator[Callable[..., ManagedProcess]]:
    """`run_process(name, argv, cwd=..., env=...)`: any long-running process (a job worker),
    its output logged; stopped on teardown."""
    yield from _stopped_after(spawn, tmp_path / "logs")


class _Stoppable(Protocol):
    def stop(self) -> None: ...


T = TypeVar("T", bound=_Stoppable)


def _stopped_after(
    start: Callable[..., T], log_dir: Path
) -> Iterator[Callable[..., T]]:
    """Yields `start` logging under `log_dir` by default; stops what it started after."""
    started: list[T] = []

    def run(*args: Any, **kwargs: Any) -> T:
        kwargs.setdefault("log_dir", log_dir)
        started.append(start(*args, **kwargs))
        return started[-1]

    yield run
    for thing in started:
        thing.stop()


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[Server]:
    """A Redis of this test's own, for tests that stop it (readiness, reconnects)."""
    server = start_redis_server(tmp_path / "logs")
    yield server
    server.stop()


def _db_prefix(request: pytest.FixtureRequest) -> str:
    stem = "".join(
        c if c.isalnum() else "_" for c in request.module.__name__.rsplit(".", 1)[-1]
    )
    return f"forge_{stem[:30].lower()}"


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    item.stash[_started_key] = time.monotonic()


_started_key = pytest.StashKey[float]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """On failure, attach the logs of every server process that was running during the test."""
    report = yield
    if report.failed:
        started = item.stash.get(_started_key, 0.0)
        for process in LIVE_PROCESSES:
            if process.alive() or (process.stopped_at or 0.0) >= started:
                report.sections.append(
                    (f"server log: {process.name}", process.describe(200))
                )
    return report


def pytest_sessionfinish(session: pytest.Session) -> None:
    """A safety net: no server started by a test outlives the test run."""
    for process in LIVE_PROCESSES:
        process.stop()
