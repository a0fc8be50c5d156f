"""Builds the Tier 2 system once per session: both broker variants scaffolded, one
virtualenv for all services (pip cache in .cache/pip), RabbitMQ ensured by scripts/rabbitmq."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from forge_testing import REPO_ROOT, redis_database

from .system import Venv, install, rabbit_vhost, scaffold


@dataclass
class Build:
    redis_project: Path
    rabbit_project: Path
    kafka_project: Path
    venv: Venv


@pytest.fixture(scope="session")
def tier2(tmp_path_factory: pytest.TempPathFactory) -> Build:
    parent = tmp_path_factory.mktemp("tier2")
    started = time.monotonic()
    redis_project = scaffold(parent, "redis")
    rabbit_project = scaffold(parent, "rabbitmq")
    kafka_project = scaffold(parent, "kafka")
    venv = install(redis_project, parent / "venv")
    print(
        f"\n[e2e-tier2] scaffolded and installed in {time.monotonic() - started:.0f}s"
    )
    return Build(redis_project, rabbit_project, kafka_project, venv)


@pytest.fixture(scope="session")
def rabbitmq_ready() -> None:
    subprocess.run(
        [str(REPO_ROOT / "scripts" / "rabbitmq"), "ensure"], check=True, timeout=600
    )


@pytest.fixture
def rabbit_url(rabbitmq_ready: None) -> Iterator[str]:
    yield from rabbit_vhost()


@pytest.fixture
def redis_broker_url(redis_base_url: str) -> Iterator[str]:
    with redis_database(redis_base_url) as url:
        yield url
