"""Services the tests use, each test in a namespace of its own: throwaway PostgreSQL
databases, Redis logical databases, RabbitMQ vhosts.

PostgreSQL and Redis come from `scripts/services start` (FORGE_PG_URL, FORGE_REDIS_URL);
RabbitMQ is the machine's (`scripts/rabbitmq ensure`). A missing service fails the test: a
skipped end-to-end test would hide exactly what it exists to find.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import pytest

from .paths import REPO_ROOT

SERVICES_HINT = (
    'start the services first: eval "$(scripts/services start)" (scripts/test does it)'
)


def require_env(name: str) -> str:
    value = os.environ.get(name, "").strip()
    if not value:
        pytest.fail(f"{name} is not set; {SERVICES_HINT}", pytrace=False)
    return value


# --- PostgreSQL ---------------------------------------------------------------------------


def _with_database(url: str, database: str, scheme: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(
        (scheme, parts.netloc, "/" + database, parts.query, parts.fragment)
    )


async def _admin_execute(admin_url: str, sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(admin_url, timeout=15)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def create_database(admin_url: str, prefix: str = "forge_test") -> str:
    """Creates an empty database and returns its name."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    asyncio.run(_admin_execute(admin_url, f'CREATE DATABASE "{name}"'))
    return name


def drop_database(admin_url: str, name: str) -> None:
    # FORCE ends sessions a crashed app may have left open (PostgreSQL 13+).
    asyncio.run(
        _admin_execute(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    )


@contextlib.contextmanager
def throwaway_database(admin_url: str, prefix: str = "forge_test") -> Iterator[str]:
    """Yields the SQLAlchemy asyncpg URL of a new database, dropped afterwards."""
    name = create_database(admin_url, prefix)
    try:
        yield _with_database(admin_url, name, "postgresql+asyncpg")
    finally:
        drop_database(admin_url, name)


# --- Redis --------------------------------------------------------------------------------

# DB 0 is left to whoever uses the instance by hand; tests take 1..15 in turn.
_redis_dbs = itertools.cycle(range(1, 16))


@contextlib.contextmanager
def redis_database(base_url: str) -> Iterator[str]:
    """Yields a URL to a Redis logical database, flushed before and after."""
    import redis

    parts = urlsplit(base_url)
    url = urlunsplit((parts.scheme, parts.netloc, f"/{next(_redis_dbs)}", "", ""))
    client = redis.Redis.from_url(url)
    try:
        client.flushdb()
        yield url
    finally:
        with contextlib.suppress(redis.RedisError):
            client.flushdb()
        client.close()


# --- RabbitMQ -----------------------------------------------------------------------------


def ensure_rabbitmq() -> None:
    """Starts the machine's RabbitMQ if it is not running (installs it where it can)."""
    subprocess.run(
        [str(REPO_ROOT / "scripts" / "rabbitmq"), "ensure"], check=True, timeout=600
    )


@contextlib.contextmanager
def rabbitmq_vhost() -> Iterator[str]:
    """Yields the AMQP URL of a vhost of this test's own on the machine's RabbitMQ,
    deleted afterwards."""
    ctl = shutil.which("rabbitmqctl")
    assert ctl, "rabbitmqctl missing: run scripts/rabbitmq ensure"
    vhost = f"forge-e2e-{uuid.uuid4().hex[:8]}"
    subprocess.run([ctl, "-q", "add_vhost", vhost], check=True, timeout=60)
    try:
        subprocess.run(
            [ctl, "-q", "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"],
            check=True,
            timeout=60,
        )
        yield f"amqp://guest:guest@127.0.0.1:5672/{vhost}"
    finally:
        subprocess.run([ctl, "-q", "delete_vhost", vhost], check=False, timeout=60)
