"""The Tier 3 system per broker (Redis Streams, RabbitMQ), scaffolded once per session
with the virtualenv the Tier 2 suite shares; each test gets fresh databases and a broker
namespace of its own (a Redis database, a RabbitMQ vhost)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from forge_testing import clean_env, rabbitmq_vhost, redis_database
from forge_testing.venvs import Venv
from generated_tier2.system import shared_systems, source_path

from .system import Orders, running_orders

BROKERS = ("redis", "rabbitmq")


@dataclass
class Build:
    projects: dict[str, Path]
    venv: Venv

    @property
    def project(self) -> Path:
        """The Redis variant: the files every variant has alike are checked there."""
        return self.projects["redis"]

    def env(self, broker: str = "redis") -> dict[str, str]:
        """The environment that runs a variant's own code from the shared venv."""
        return clean_env() | {"PYTHONPATH": source_path(self.projects[broker])}


@pytest.fixture(scope="session")
def tier3(tmp_path_factory: pytest.TempPathFactory) -> Build:
    systems = shared_systems(tmp_path_factory)  # shared with the Tier 2 suite
    return Build(systems.tier3, systems.venv)


@pytest.fixture
def broker(request: pytest.FixtureRequest) -> str:
    """Redis Streams unless a test module parametrizes it (test_cqrs: every broker)."""
    return str(getattr(request, "param", "redis"))


@pytest.fixture
def broker_url(
    broker: str, redis_base_url: str, request: pytest.FixtureRequest
) -> Iterator[str]:
    if broker == "rabbitmq":
        request.getfixturevalue("rabbitmq_ready")
        with rabbitmq_vhost() as url:
            yield url
    else:
        with redis_database(redis_base_url) as url:
            yield url


@pytest.fixture
def orders(
    tier3: Build, broker: str, pg_admin_url: str, broker_url: str, tmp_path: Path
) -> Iterator[Orders]:
    with running_orders(
        tier3.projects[broker],
        tier3.venv,
        pg_admin_url,
        broker_url,
        tmp_path / "logs",
        tier3.env(broker)["PYTHONPATH"],
    ) as system:
        system.broker = broker
        yield system
