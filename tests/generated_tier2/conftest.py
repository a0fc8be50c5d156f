"""Builds the Tier 2 system once per session: both broker variants scaffolded, one
virtualenv for all services (pip cache in .cache/pip), RabbitMQ ensured by scripts/rabbitmq."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from forge_testing import REPO_ROOT, redis_database

from .system import Venv, rabbit_vhost, shared_systems


@dataclass
class Build:
    redis_project: Path
    rabbit_project: Path
    kafka_project: Path
    venv: Venv


@pytest.fixture(scope="session")
def tier2(tmp_path_factory: pytest.TempPathFactory) -> Build:
    systems = shared_systems(tmp_path_factory)  # shared with the Tier 3 suite
    projects = systems.tier2
    return Build(
        projects["redis"], projects["rabbitmq"], projects["kafka"], systems.venv
    )


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
