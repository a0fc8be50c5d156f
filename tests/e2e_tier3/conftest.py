"""Builds the Tier 3 system once per session (scaffold, one virtualenv, pip cache in
.cache/pip); each test gets fresh databases and a Redis database of its own."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from forge_testing import redis_database

from .system import Orders, Venv, install, running_orders, scaffold


@dataclass
class Build:
    project: Path
    venv: Venv


@pytest.fixture(scope="session")
def tier3(tmp_path_factory: pytest.TempPathFactory) -> Build:
    parent = tmp_path_factory.mktemp("tier3")
    started = time.monotonic()
    project = scaffold(parent)
    venv = install(project, parent / "venv")
    print(
        f"\n[e2e-tier3] scaffolded and installed in {time.monotonic() - started:.0f}s"
    )
    return Build(project, venv)


@pytest.fixture
def redis_broker_url(redis_base_url: str) -> Iterator[str]:
    with redis_database(redis_base_url) as url:
        yield url


@pytest.fixture
def orders(
    tier3: Build, pg_admin_url: str, redis_broker_url: str, tmp_path: Path
) -> Iterator[Orders]:
    with running_orders(
        tier3.project, tier3.venv, pg_admin_url, redis_broker_url, tmp_path / "logs"
    ) as system:
        yield system
