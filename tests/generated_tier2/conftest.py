"""Builds the Tier 2 system once per session: both broker variants scaffolded, one
virtualenv for all services (pip cache in .cache/pip), RabbitMQ ensured by scripts/rabbitmq."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from forge_testing.venvs import Venv

from .system import shared_systems


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
