"""Fixtures for the Tier 2 template tests (helpers live in helpers.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tier2_templates.helpers import GatewayWithUpstreams, new_system, standard_services


@pytest.fixture(scope="module")
def shared_system(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[GatewayWithUpstreams]:
    """For tests that leave every breaker closed: routing, auth, headers, SSE."""
    system = new_system(tmp_path_factory.mktemp("tier2-shared"))
    try:
        system.start_upstream("users")
        system.start_upstream("agents")
        system.start_gateway(standard_services(system))
        yield system
    finally:
        system.stop()


@pytest.fixture
def fresh_system(tmp_path: Path) -> Iterator[Callable[..., GatewayWithUpstreams]]:
    """A system of the test's own (its breakers start closed; it may stop upstreams)."""
    systems: list[GatewayWithUpstreams] = []

    def launch(
        users_spec: dict[str, Any] | None = None, **settings: str
    ) -> GatewayWithUpstreams:
        system = new_system(tmp_path / f"system{len(systems)}")
        systems.append(system)
        system.start_upstream("users")
        system.start_upstream("agents")
        services = standard_services(system, **(users_spec or {}))
        system.start_gateway(services, **settings)
        return system

    yield launch
    for system in systems:
        system.stop()
