"""Fixtures for the per-SDK checks: the runner under test and its settings.

The runner module is the overlay's `sdk.py` as it sits in the skill, assembled with the base
`agents/base.py` into a throwaway `forge_app` package, so these checks test the very files
the scaffold copies.
"""

from __future__ import annotations

import importlib
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest
from pydantic import SecretStr

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # the shared `fakes` package

SCAFFOLD = HERE.parents[2] / "skill" / "fastapi-forge" / "assets" / "scaffold" / "layers"


@dataclass
class RunnerSettings:
    """The `Settings` fields the runners read (CONTRACTS.md), without pydantic-settings."""

    agent_model: str
    agent_base_url: str | None
    agent_api_key: SecretStr | None = SecretStr("sk-test-not-a-real-key")
    agent_timeout_seconds: float = 30.0
    agent_max_turns: int = 4


@pytest.fixture(scope="module")
def runner_module(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> ModuleType:
    """`forge_app.agents.sdk` of the overlay named by the check module's `SDK`."""
    sdk: str = request.module.SDK
    root = tmp_path_factory.mktemp(f"forge_app_{sdk}")
    agents = root / "forge_app" / "agents"
    agents.mkdir(parents=True)
    (root / "forge_app" / "__init__.py").write_text("")
    (agents / "__init__.py").write_text("")
    shutil.copy(SCAFFOLD / "tier1-base" / "src" / "forge_app" / "agents" / "base.py", agents)
    shutil.copy(SCAFFOLD / f"agent-{sdk}" / "src" / "forge_app" / "agents" / "sdk.py", agents)
    sys.path.insert(0, str(root))
    return importlib.import_module("forge_app.agents.sdk")


@pytest.fixture
def base(runner_module: ModuleType) -> ModuleType:
    return importlib.import_module("forge_app.agents.base")
